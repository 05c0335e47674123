// One operation: every field, the change diffs (from → to, with their JSON types), error
// and warnings, and the history as a timeline. Live while it runs: each change to it on
// the project's watch stream re-reads it and its history.

import { get, watch } from './api.js';
import { badge, fmtTime, h, mount } from './dom.js';

const TIME_FIELDS = new Set(['created_at', 'updated_at', 'started_at', 'ended_at']);
const SECTIONS = new Set(['details', 'error', 'warnings']);

function typeOf(v) {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  return typeof v;
}

function value(v) {
  return h('span', { class: 'val' }, h('code', {}, Array.isArray(v) ? JSON.stringify(v) : String(v)),
    h('span', { class: 'type' }, typeOf(v)));
}

function fields(op) {
  const rows = Object.entries(op).filter(([k]) => !SECTIONS.has(k)).map(([k, v]) => h('tr', {},
    h('th', {}, k),
    h('td', { 'data-field': k },
      k === 'status' ? badge(v)
        : k === 'progress' ? [h('progress', { max: 100, value: v }), ` ${v}%`]
          : TIME_FIELDS.has(k) && v ? [fmtTime(v), h('span', { class: 'muted' }, ` ${v}`)]
            : v === null || v === undefined ? h('span', { class: 'muted' }, '—')
              : typeof v === 'object' ? h('code', {}, JSON.stringify(v)) : String(v))));
  return h('table', { class: 'fields', id: 'fields' }, h('tbody', {}, rows));
}

function diffs(op) {
  const changes = Object.entries(op.details?.changes ?? {});
  if (!changes.length) return h('p', { class: 'muted' }, 'No changes recorded.');
  return h('table', { class: 'diffs', id: 'diffs' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Field'), h('th', {}, 'From'), h('th', {}, ''), h('th', {}, 'To'))),
    h('tbody', {}, changes.map(([name, d]) => h('tr', {},
      h('td', { class: 'mono' }, name), h('td', {}, value(d.from)), h('td', { class: 'arrow' }, '→'), h('td', {}, value(d.to))))));
}

function problems(op) {
  const out = [];
  if (op.error?.errors?.length) {
    out.push(h('h2', {}, 'Error'), h('ul', { class: 'errors', id: 'errors' }, op.error.errors.map((e) =>
      h('li', {}, h('code', {}, e.code), ' ', e.message, e.location ? h('span', { class: 'muted' }, ` at ${e.location}`) : null))));
  }
  if (op.warnings?.length) {
    out.push(h('h2', {}, 'Warnings'), h('ul', { class: 'warnings', id: 'warnings' }, op.warnings.map((w) =>
      h('li', {}, h('code', {}, w.code), ' ', w.message,
        w.data?.length ? h('span', { class: 'muted' }, ` (${w.data.map((d) => `${d.key}=${d.value}`).join(', ')})`) : null))));
  }
  return out;
}

function timeline(events) {
  return h('ol', { class: 'timeline', id: 'timeline' }, events.map((e) => h('li', {},
    h('span', { class: 'time' }, fmtTime(e.at)),
    h('span', { class: 'ver' }, `v${e.version}`),
    badge(e.status),
    h('span', { class: 'muted' }, ` ${e.progress}%`),
    e.status_message ? h('span', { class: 'message' }, ` ${e.status_message}`) : null)));
}

export function render(main, { id }) {
  mount(main, h('p', { class: 'muted' }, 'Loading…'));
  let stop = () => {};
  let closed = false;
  const load = async () => {
    const [op, events] = await Promise.all([
      get(`/v1/operations/${encodeURIComponent(id)}`),
      get(`/v1/operations/${encodeURIComponent(id)}/events`),
    ]);
    if (closed) return null;
    const list = Array.isArray(events) ? events : (events.items ?? events.events ?? []);
    mount(main,
      h('div', { class: 'view-head' },
        h('a', { href: `#/?project=${encodeURIComponent(op.project_id)}` }, '← Operations'),
        h('h1', {}, `${op.kind} ${op.type} `, h('span', { class: 'mono' }, op.resource_id)), badge(op.status),
        h('span', { class: 'live', id: 'live' }, ['done', 'failed'].includes(op.status) ? 'finished' : '● live')),
      h('div', { class: 'columns' },
        h('section', {}, h('h2', {}, 'Fields'), fields(op)),
        h('section', {}, h('h2', {}, 'Changes'), diffs(op), problems(op), h('h2', {}, 'Timeline'), timeline(list))));
    return op;
  };
  load().then((op) => {
    if (!op || closed) return;
    stop = watch(op.project_id, { resource_id: op.resource_id }, (changed) => {
      // null is a `reset` (history gone): read the operation again, as for a change.
      if (!changed || changed.id === op.id) load().catch(() => {});
    });
  }).catch((e) => mount(main, h('p', { class: 'error' }, e.status === 404 ? 'No such operation (or this key may not see it).' : e.message)));
  return () => { closed = true; stop(); };
}
