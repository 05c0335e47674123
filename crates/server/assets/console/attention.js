// Needs attention: operations `unknown` (a worker vanished or a producer gave up),
// `failed` in the last hours, running longer than the p95 of their kind and type, and
// leases with less than half their time left. Refreshed every 5 seconds.

import { get } from './api.js';
import { badge, fmtMs, fmtTime, h, mount } from './dom.js';

const HOURS = 6;

function link(id) {
  return h('a', { href: `#/op/${encodeURIComponent(id)}`, class: 'mono' }, id);
}

function section(title, id, headers, rows, empty) {
  return h('section', { class: 'attention', id },
    h('h2', {}, title, h('span', { class: 'count' }, String(rows.length))),
    rows.length
      ? h('table', {}, h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))), h('tbody', {}, rows))
      : h('p', { class: 'muted' }, empty));
}

async function draw(main, project) {
  const since = new Date(Date.now() - HOURS * 3_600_000).toISOString();
  const [unknown, failed, stats] = await Promise.all([
    get('/v1/operations', { project_id: project, status: 'unknown', sort: 'updated_at:desc', limit: 100 }),
    get('/v1/operations', { project_id: project, status: 'failed', sort: 'updated_at:desc', limit: 100 }),
    get('/v1/operations/stats', { project_id: project, hours: HOURS }),
  ]);
  const recentFailed = failed.items.filter((op) => op.updated_at >= since);
  mount(main,
    h('div', { class: 'view-head' }, h('h1', {}, 'Needs attention'), h('span', { class: 'muted' }, `project ${project}, last ${HOURS} hours`)),
    section('Unknown', 'att-unknown', ['Operation', 'Kind', 'Type', 'Resource', 'Message', 'Since'],
      unknown.items.map((op) => h('tr', {}, h('td', {}, link(op.id)), h('td', {}, op.kind), h('td', {}, op.type),
        h('td', { class: 'mono' }, op.resource_id), h('td', { class: 'message' }, op.status_message ?? ''), h('td', { class: 'time' }, fmtTime(op.updated_at)))),
      'No operation is in an unknown state.'),
    section('Failed recently', 'att-failed', ['Operation', 'Kind', 'Type', 'Resource', 'Error', 'Failed at'],
      recentFailed.map((op) => h('tr', {}, h('td', {}, link(op.id)), h('td', {}, op.kind), h('td', {}, op.type),
        h('td', { class: 'mono' }, op.resource_id),
        h('td', { class: 'message' }, op.error?.errors?.map((e) => `${e.code}: ${e.message}`).join('; ') ?? op.status_message ?? ''),
        h('td', { class: 'time' }, fmtTime(op.ended_at ?? op.updated_at)))),
      `Nothing failed in the last ${HOURS} hours.`),
    section('Running longer than usual', 'att-long', ['Operation', 'Kind', 'Type', 'Running for', 'Usual (p95)'],
      stats.long_running.map((l) => h('tr', {}, h('td', {}, link(l.id)), h('td', {}, l.kind), h('td', {}, l.type),
        h('td', {}, fmtMs(l.running_ms)), h('td', {}, fmtMs(l.p95_ms)))),
      'Every running operation is within the usual time of its kind and type.'),
    section('Leases about to expire', 'att-leases', ['Operation', 'Kind', 'Type', 'Worker', 'Expires', 'Lease'],
      stats.expiring_leases.map((l) => h('tr', {}, h('td', {}, link(l.id)), h('td', {}, l.kind), h('td', {}, l.type),
        h('td', { class: 'mono' }, l.worker), h('td', { class: 'time' }, fmtTime(l.lease_expires_at)), h('td', {}, fmtMs(l.lease_ms)))),
      'No lease is close to running out.'),
    h('p', { class: 'muted' }, badge('unknown'), ' operations need a reconciler; see the README on leases.'));
}

export function render(main, { project }) {
  mount(main, h('p', { class: 'muted' }, 'Loading…'));
  const tick = () => draw(main, project).catch((e) => mount(main, h('p', { class: 'error' }, e.message)));
  tick();
  const timer = setInterval(tick, 5000);
  return () => clearInterval(timer);
}
