// A project's operations: filters, both sorts, cursor paging — all in the URL hash, so a
// view can be shared and reloaded — and live updates from the watch stream: changed rows
// update in place (status, progress bar, message), new operations appear at the top of
// the first page of a newest-first list.

import { get, watch } from './api.js';
import { badge, fmtTime, h, mount } from './dom.js';

export const KINDS = ['vm', 'volume', 'vpc', 'firewall_rule', 'nks_cluster', 'nks_node_pool',
  'connect_connection', 'nks_load_balancer', 'nks_node'];
export const TYPES = ['create', 'update', 'delete', 'restart'];
export const STATUSES = ['pending', 'running', 'done', 'failed', 'unknown'];
const SORTS = ['created_at:desc', 'created_at:asc', 'updated_at:desc', 'updated_at:asc'];
const LIMITS = ['5', '10', '20', '50', '100'];
const FILTERS = ['kind', 'status', 'type', 'resource_id', 'created_at_min', 'created_at_max'];

function select(name, values, current, blank) {
  return h('select', { name, id: `f-${name}` },
    blank ? h('option', { value: '' }, blank) : null,
    values.map((v) => h('option', { value: v, selected: v === current }, v)));
}

// datetime-local holds local time without a zone; the API wants RFC 3339.
function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const off = d.getTimezoneOffset() * 60_000;
  return new Date(d.getTime() - off).toISOString().slice(0, 19);
}
function fromLocalInput(v) {
  return v ? new Date(v).toISOString() : '';
}

function hashFor(project, params) {
  const q = new URLSearchParams({ project });
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  return `#/?${q.toString()}`;
}

function row(op) {
  const tr = h('tr', { 'data-id': op.id, class: 'op-row' });
  fillRow(tr, op);
  tr.addEventListener('click', () => { window.location.hash = `#/op/${encodeURIComponent(op.id)}`; });
  return tr;
}

function fillRow(tr, op) {
  tr.dataset.version = op.version;
  mount(tr,
    h('td', { class: 'time' }, fmtTime(op.created_at)),
    h('td', {}, op.kind),
    h('td', {}, op.type),
    h('td', { class: 'mono' }, op.resource_id),
    h('td', { class: 'status' }, badge(op.status)),
    h('td', { class: 'progress' }, h('progress', { max: 100, value: op.progress }), ` ${op.progress}%`),
    h('td', { class: 'message' }, op.status_message ?? ''),
    h('td', { class: 'time' }, fmtTime(op.updated_at)),
    h('td', {}, h('a', { href: `#/op/${encodeURIComponent(op.id)}`, class: 'mono' }, op.id.slice(-12))));
}

// Whether a changed operation belongs in this list's filters (the watch applies the
// equality filters; the time range is checked here).
function inRange(op, p) {
  const t = new Date(op.created_at).getTime();
  if (p.created_at_min && t < new Date(p.created_at_min).getTime()) return false;
  if (p.created_at_max && t > new Date(p.created_at_max).getTime()) return false;
  return true;
}

export function render(main, { project, params }) {
  const p = Object.fromEntries(FILTERS.map((f) => [f, params.get(f) || '']));
  const sort = params.get('sort') || 'created_at:desc';
  const limit = params.get('limit') || '20';
  const cursor = params.get('cursor') || '';

  const form = h('form', { class: 'filters', id: 'filters' },
    h('label', {}, 'Kind', select('kind', KINDS, p.kind, 'any')),
    h('label', {}, 'Status', select('status', STATUSES, p.status, 'any')),
    h('label', {}, 'Type', select('type', TYPES, p.type, 'any')),
    h('label', {}, 'Resource', h('input', { name: 'resource_id', id: 'f-resource_id', value: p.resource_id, placeholder: 'resource id' })),
    h('label', {}, 'Created from', h('input', { type: 'datetime-local', step: 1, name: 'created_at_min', id: 'f-created_at_min', value: toLocalInput(p.created_at_min) })),
    h('label', {}, 'to', h('input', { type: 'datetime-local', step: 1, name: 'created_at_max', id: 'f-created_at_max', value: toLocalInput(p.created_at_max) })),
    h('label', {}, 'Sort', select('sort', SORTS, sort)),
    h('label', {}, 'Per page', select('limit', LIMITS, limit)),
    h('button', { type: 'submit' }, 'Apply'),
    h('a', { href: `#/?project=${encodeURIComponent(project)}`, class: 'reset' }, 'Reset'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const next = {};
    for (const f of FILTERS) next[f] = String(fd.get(f) || '');
    next.created_at_min = fromLocalInput(next.created_at_min);
    next.created_at_max = fromLocalInput(next.created_at_max);
    next.sort = String(fd.get('sort'));
    next.limit = String(fd.get('limit'));
    window.location.hash = hashFor(project, next);
  });

  // data-state says when the page's rows are in (tests and screen readers wait on it).
  const tbody = h('tbody', { id: 'ops-body', 'data-state': 'loading' });
  const live = h('span', { class: 'live', id: 'live' }, 'connecting…');
  const total = h('span', { id: 'total', class: 'muted' });
  const prev = h('button', { type: 'button', id: 'prev', disabled: true }, '← Newer page');
  const next = h('button', { type: 'button', id: 'next', disabled: true }, 'Older page →');
  if (sort.endsWith(':asc')) { prev.textContent = '← Previous page'; next.textContent = 'Next page →'; }
  mount(main,
    h('div', { class: 'view-head' }, h('h1', {}, 'Operations'), live, total),
    form,
    h('table', { class: 'ops' },
      h('thead', {}, h('tr', {}, ['Created', 'Kind', 'Type', 'Resource', 'Status', 'Progress', 'Message', 'Updated', 'Id'].map((t) => h('th', {}, t)))),
      tbody),
    h('div', { class: 'pager' }, prev, next));

  const base = { ...p, sort, limit };
  const query = { project_id: project, ...p, sort, limit, cursor };

  get('/v1/operations', query).then((page) => {
    mount(tbody, page.items.length ? page.items.map(row) : h('tr', { class: 'empty' }, h('td', { colspan: 9 }, 'No operations match.')));
    mount(total, `${page.pagination.total_count} operations`);
    tbody.dataset.state = 'ready';
    const go = (c) => () => { window.location.hash = hashFor(project, { ...base, cursor: c }); };
    if (page.pagination.previous_cursor) { prev.disabled = false; prev.addEventListener('click', go(page.pagination.previous_cursor)); }
    if (page.pagination.next_cursor) { next.disabled = false; next.addEventListener('click', go(page.pagination.next_cursor)); }
  }).catch((e) => {
    mount(tbody, h('tr', {}, h('td', { colspan: 9, class: 'error' }, e.message)));
    tbody.dataset.state = 'error';
  });

  // New rows go on top only where the top is "now": first page, newest first.
  const topIsNow = !cursor && sort.endsWith(':desc');
  const watchFilters = { kind: p.kind, status: p.status, type: p.type, resource_id: p.resource_id };
  return watch(project, watchFilters, (op) => {
    // `reset`: the changes since the last event seen are gone (retention); list again.
    if (!op) { window.dispatchEvent(new HashChangeEvent('hashchange')); return; }
    const existing = tbody.querySelector(`tr[data-id="${CSS.escape(op.id)}"]`);
    if (existing) {
      if (Number(existing.dataset.version) >= op.version) return;
      fillRow(existing, op);
      existing.classList.add('flash');
      setTimeout(() => existing.classList.remove('flash'), 800);
      if (topIsNow && sort.startsWith('updated_at')) tbody.prepend(existing);
      return;
    }
    const isNew = op.version === 1;
    if (topIsNow && inRange(op, p) && (isNew || sort.startsWith('updated_at'))) {
      tbody.querySelector('tr.empty')?.remove();
      const tr = row(op);
      tr.classList.add('flash');
      tbody.prepend(tr);
      while (tbody.children.length > Number(limit)) tbody.lastElementChild.remove();
      if (isNew) {
        const n = parseInt(total.textContent, 10);
        if (!Number.isNaN(n)) mount(total, `${n + 1} operations`);
      }
    }
  }, (state) => { live.textContent = state === 'live' ? '● live' : 'reconnecting…'; live.className = `live ${state}`; });
}
