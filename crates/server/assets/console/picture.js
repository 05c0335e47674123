// A picture of a project from GET /v1/operations/stats: operations per minute by status
// (stacked bars, SVG drawn here — no chart library) and run-time p50/p95 by kind and
// type. Refreshed every 10 seconds.

import { get } from './api.js';
import { fmtMs, h, mount, s } from './dom.js';
import { STATUSES } from './operations.js';

const W = 960;
const H = 220;
const PAD = { l: 40, r: 10, t: 10, b: 24 };

function activityChart(stats) {
  const from = new Date(stats.from).getTime();
  const to = new Date(stats.to).getTime();
  const minutes = Math.max(1, Math.ceil((to - from) / 60_000));
  const byMinute = new Map();
  for (const m of stats.per_minute) {
    const i = Math.floor((new Date(m.minute).getTime() - from) / 60_000);
    if (!byMinute.has(i)) byMinute.set(i, {});
    byMinute.get(i)[m.status] = m.operations;
  }
  let max = 1;
  for (const v of byMinute.values()) max = Math.max(max, STATUSES.reduce((a, st) => a + (v[st] || 0), 0));
  const bw = (W - PAD.l - PAD.r) / minutes;
  const y = (n) => PAD.t + (H - PAD.t - PAD.b) * (1 - n / max);
  const bars = [];
  for (const [i, v] of byMinute) {
    let acc = 0;
    for (const st of STATUSES) {
      const n = v[st] || 0;
      if (!n) continue;
      bars.push(s('rect', { x: (PAD.l + i * bw).toFixed(2), y: y(acc + n).toFixed(2), width: Math.max(1, bw - 0.5).toFixed(2),
        height: (y(acc) - y(acc + n)).toFixed(2), class: `fill-${st}` }, s('title', {}, `${n} ${st}`)));
      acc += n;
    }
  }
  const ticks = [];
  const every = minutes > 720 ? 120 : minutes > 180 ? 60 : minutes > 60 ? 15 : 5;
  for (let i = 0; i <= minutes; i += every) {
    const x = PAD.l + i * bw;
    const t = new Date(from + i * 60_000);
    ticks.push(s('line', { x1: x, x2: x, y1: H - PAD.b, y2: H - PAD.b + 4, class: 'axis' }),
      // The last label ends at the axis' end instead of overflowing the chart.
      s('text', { x, y: H - 6, class: 'tick', 'text-anchor': i + every > minutes ? 'end' : 'middle' }, t.toTimeString().slice(0, 5)));
  }
  return s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', id: 'activity', role: 'img', 'aria-label': 'operations per minute by status' },
    s('line', { x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b, class: 'axis' }),
    s('text', { x: PAD.l - 6, y: PAD.t + 8, class: 'tick', 'text-anchor': 'end' }, String(max)),
    s('text', { x: PAD.l - 6, y: H - PAD.b, class: 'tick', 'text-anchor': 'end' }, '0'),
    ticks, bars);
}

function durationTable(stats) {
  if (!stats.durations.length) return h('p', { class: 'muted' }, 'No operation finished in this window.');
  const max = Math.max(1, ...stats.durations.map((d) => d.p95_ms));
  return h('table', { class: 'durations', id: 'durations' },
    h('thead', {}, h('tr', {}, ['Kind', 'Type', 'Finished', 'p50', 'p95', ''].map((t, i) => h('th', { class: i >= 2 && i <= 4 ? 'num' : null }, t)))),
    h('tbody', {}, stats.durations.map((d) => h('tr', {},
      h('td', {}, d.kind), h('td', {}, d.type), h('td', { class: 'num' }, String(d.finished)),
      h('td', { class: 'num' }, fmtMs(d.p50_ms)), h('td', { class: 'num' }, fmtMs(d.p95_ms)),
      h('td', { class: 'spark' }, s('svg', { viewBox: '0 0 200 14', class: 'bars' },
        s('rect', { x: 0, y: 2, height: 10, width: (200 * d.p95_ms / max).toFixed(1), class: 'p95' }),
        s('rect', { x: 0, y: 2, height: 10, width: (200 * d.p50_ms / max).toFixed(1), class: 'p50' })))))));
}

export function render(main, { project, params }) {
  const hours = params.get('hours') || '6';
  const pick = h('select', { id: 'hours' }, ['1', '3', '6', '12', '24', '48'].map((v) => h('option', { value: v, selected: v === hours }, `${v} h`)));
  pick.addEventListener('change', () => { window.location.hash = `#/picture?project=${encodeURIComponent(project)}&hours=${pick.value}`; });
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  mount(main, h('div', { class: 'view-head' }, h('h1', {}, 'Picture'), h('label', {}, 'Last ', pick)), body);
  const tick = () => get('/v1/operations/stats', { project_id: project, hours }).then((stats) => mount(body,
    h('h2', {}, 'Operations per minute by status'),
    h('div', { class: 'legend' }, STATUSES.map((st) => h('span', {}, h('i', { class: `swatch fill-${st}` }), st))),
    activityChart(stats),
    h('h2', {}, 'Run time of finished operations'),
    durationTable(stats))).catch((e) => mount(body, h('p', { class: 'error' }, e.message)));
  tick();
  const timer = setInterval(tick, 10_000);
  return () => clearInterval(timer);
}
