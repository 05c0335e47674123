// The console's entry point: the project picker, the signed-in key, sign-out, and a small
// hash router (#/ operations, #/op/{id}, #/attention, #/picture). Each view is a module
// whose render(main, ctx) returns a cleanup function (closing its watch stream, timers).

import { get, signOut } from './api.js';
import { h, mount } from './dom.js';
import * as operations from './operations.js';
import * as operation from './operation.js';
import * as attention from './attention.js';
import * as picture from './picture.js';

const main = document.getElementById('view');
const picker = document.getElementById('project');
let cleanup = () => {};
let projects = [];

function currentProject() {
  return picker.value || null;
}

function route() {
  const hash = window.location.hash.replace(/^#/, '') || '/';
  const [path, qs] = hash.split('?');
  const params = new URLSearchParams(qs || '');
  if (params.get('project') && projects.includes(params.get('project'))) {
    picker.value = params.get('project');
    sessionStorage.setItem('opsd.project', picker.value);
  }
  const parts = path.split('/').filter(Boolean);
  for (const id of ['nav-ops', 'nav-attention', 'nav-picture']) {
    document.getElementById(id).classList.remove('active');
  }
  cleanup();
  cleanup = () => {};
  const project = currentProject();
  const ctx = { project, params };
  if (parts[0] === 'op' && parts[1]) {
    cleanup = operation.render(main, { ...ctx, id: decodeURIComponent(parts[1]) });
    return;
  }
  if (!project) {
    mount(main, h('p', { class: 'empty' }, 'This key may not see any project with operations yet.'));
    return;
  }
  if (parts[0] === 'attention') {
    document.getElementById('nav-attention').classList.add('active');
    cleanup = attention.render(main, ctx);
  } else if (parts[0] === 'picture') {
    document.getElementById('nav-picture').classList.add('active');
    cleanup = picture.render(main, ctx);
  } else {
    document.getElementById('nav-ops').classList.add('active');
    cleanup = operations.render(main, ctx);
  }
}

async function loadProjects() {
  const list = await get('/v1/projects');
  projects = list.items.map((p) => p.project_id);
  mount(picker, projects.map((p) => h('option', { value: p }, p)));
}

// A fresh opsd has no project until its first operation is created: look again every
// 2 s until one appears, so a console opened first comes alive without a reload.
function waitForProjects() {
  const timer = setInterval(async () => {
    try {
      await loadProjects();
    } catch {
      return;
    }
    if (projects.length) {
      clearInterval(timer);
      route();
    }
  }, 2000);
}

async function start() {
  const [me] = await Promise.all([get('/console/session'), loadProjects()]);
  mount(document.getElementById('whoami'), `${me.name} · ${me.role}`);
  const saved = sessionStorage.getItem('opsd.project');
  if (saved && projects.includes(saved)) picker.value = saved;
  picker.addEventListener('change', () => {
    sessionStorage.setItem('opsd.project', picker.value);
    const [path] = (window.location.hash.replace(/^#/, '') || '/').split('?');
    const view = path.startsWith('/op/') ? '/' : path;
    window.location.hash = `#${view}?project=${encodeURIComponent(picker.value)}`;
  });
  document.getElementById('sign-out').addEventListener('click', () => signOut());
  window.addEventListener('hashchange', route);
  route();
  if (!projects.length) waitForProjects();
}

start().catch((e) => mount(main, h('p', { class: 'error' }, `Cannot load the console: ${e.message}`)));
