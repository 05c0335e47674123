// Starts the vendored Swagger UI on /openapi.json. "Try it out" requests go to this
// server with the console session cookie; writes carry the page's CSRF token. No request
// leaves this origin: the spec validator badge (an outside service) is off.
/* global SwaggerUIBundle */
const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';
window.addEventListener('DOMContentLoaded', () => {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    validatorUrl: null,
    deepLinking: true,
    tryItOutEnabled: false,
    withCredentials: true,
    requestInterceptor: (req) => {
      if (req.method && req.method.toUpperCase() !== 'GET') req.headers['x-csrf-token'] = csrf;
      return req;
    },
  });
});
