// The x0tta6bl4 dashboard: plain JavaScript and SVG, no third-party code.
// State comes from /api/state on (re)connect and live from /api/events (SSE).
'use strict';

const LOOKS = ['healthy', 'anomalous', 'rerouted', 'incident'];
const GLYPH = ['', '!', '↷', '✕'];
const SVGNS = 'http://www.w3.org/2000/svg';
const S = { mesh: null, instance: null, frame: null, incidents: new Map(), view: 'mesh', detail: null, historyTimer: null };

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
function sv(tag, attrs, ...kids) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store' });
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
}
const pct = (x) => (x === null || x === undefined ? 'not measured' : `${(x * 100).toFixed(1)}%`);
const ms = (x) => (x === null || x === undefined ? '—' : `${Math.round(x)} ms`);
const clock = (ns) => (ns ? new Date(ns / 1e6).toISOString().slice(11, 23) : '—');
function ago(ns) {
  const s = Math.max(0, (Date.now() - ns / 1e6) / 1000);
  return s < 90 ? `${Math.round(s)} s ago` : `${Math.round(s / 60)} min ago`;
}
function setConn(text, down) {
  const c = document.getElementById('conn');
  c.textContent = text;
  c.classList.toggle('down', !!down);
}

// ---- the mesh ----------------------------------------------------------------

function linkName(a, b) {
  const [x, y] = [S.mesh.names[a], S.mesh.names[b]].sort();
  return `${x}-${y}`;
}

function drawMesh() {
  const svg = document.getElementById('mesh');
  svg.replaceChildren();
  const m = S.mesh;
  if (m.mode === 'nodes') {
    const r = Math.max(7, Math.min(20, 300 / Math.sqrt(m.names.length)));
    const links = sv('g', { id: 'links' });
    m.links.forEach(([a, b], i) => {
      const [p, q] = [m.pos[a], m.pos[b]];
      const g = sv('g', { 'data-link': linkName(a, b), 'data-look': 'healthy', 'data-index': i });
      g.append(sv('line', { x1: p[0], y1: p[1], x2: q[0], y2: q[1], class: 'link look-0' }));
      g.append(sv('text', { x: (p[0] + q[0]) / 2, y: (p[1] + q[1]) / 2, class: 'glyph' }, ''));
      g.append(sv('title', {}, `link ${linkName(a, b)}: healthy`));
      links.append(g);
    });
    const nodes = sv('g', { id: 'nodes' });
    m.names.forEach((name, i) => {
      const p = m.pos[i];
      const g = sv('g', { 'data-node': name, 'data-look': 'healthy', class: 'node look-0', tabindex: 0 });
      g.append(sv('circle', { cx: p[0], cy: p[1], r }));
      g.append(sv('text', { x: p[0], y: p[1] }, m.names.length <= 60 ? name : ''));
      g.append(sv('title', {}, `node ${name}: healthy`));
      nodes.append(g);
    });
    svg.append(links, nodes);
  } else {
    const links = sv('g', { id: 'links' });
    const most = Math.max(1, ...m.region_links.map((l) => l[2]));
    for (const [a, b, count] of m.region_links) {
      const [p, q] = [m.regions[a].pos, m.regions[b].pos];
      links.append(sv('line', { x1: p[0], y1: p[1], x2: q[0], y2: q[1], stroke: '#b0bec5', 'stroke-width': 1 + 5 * count / most },
        sv('title', {}, `${count} links between region ${a + 1} and region ${b + 1}`)));
    }
    const nodes = sv('g', { id: 'nodes' });
    const biggest = Math.max(...m.regions.map((r) => r.size));
    m.regions.forEach((reg, i) => {
      const g = sv('g', { 'data-region': i + 1, 'data-look': 'healthy', class: 'node look-0', tabindex: 0 });
      g.append(sv('circle', { cx: reg.pos[0], cy: reg.pos[1], r: 8 + 18 * Math.sqrt(reg.size / biggest) }));
      g.append(sv('text', { x: reg.pos[0], y: reg.pos[1] }, String(i + 1)));
      g.append(sv('title', {}, `${reg.name}: ${reg.size} nodes, healthy`));
      nodes.append(g);
    });
    svg.append(links, nodes);
  }
  const count = m.mode === 'nodes' ? `${m.names.length} nodes, ${m.links.length} links` : `${m.nodes} nodes and ${m.link_count} links in ${m.regions.length} regions`;
  svg.setAttribute('aria-label', `mesh topology: ${count}`);
  document.getElementById('mesh-title').textContent = `Mesh · ${count}`;
  if (S.frame) applyFrame(S.frame);
}

function lookText(code, loss, rtt) {
  const parts = [LOOKS[code]];
  if (loss !== undefined) parts.push(`loss ${pct(loss)}`);
  if (rtt !== undefined && rtt !== null) parts.push(`RTT ${rtt.toFixed(2)} ms`);
  return parts.join(' · ');
}

function applyFrame(f) {
  S.frame = f;
  if (!S.mesh) return;
  document.getElementById('window-info').textContent = `last window ${clock(f.start)}–${clock(f.end)} UTC (event time)`;
  const hot = [];
  if (S.mesh.mode === 'nodes' && f.links) {
    document.querySelectorAll('#links > g').forEach((g) => {
      const [code, loss, rtt] = f.links[+g.dataset.index] || [0, null, null];
      const name = g.dataset.link;
      g.dataset.look = LOOKS[code];
      g.firstChild.setAttribute('class', `link look-${code}`);
      g.children[1].textContent = GLYPH[code];
      g.lastChild.textContent = `link ${name}: ${lookText(code, loss, rtt)}`;
      if (code) hot.push([code, `link ${name}`, lookText(code, loss, rtt)]);
    });
    document.querySelectorAll('#nodes > g').forEach((g, i) => {
      const code = f.nodes[i] || 0;
      const name = g.dataset.node;
      g.dataset.look = LOOKS[code];
      g.setAttribute('class', `node look-${code}`);
      if (S.mesh.names.length <= 60) g.children[1].textContent = name + GLYPH[code];
      g.lastChild.textContent = `node ${name}: ${LOOKS[code]}`;
      if (code) hot.push([code, `node ${name}`, LOOKS[code]]);
    });
  } else if (f.regions) {
    document.querySelectorAll('#nodes > g').forEach((g, i) => {
      const [worst, anomalous, rerouted, incident, loss] = f.regions[i] || [0, 0, 0, 0, 0];
      const reg = S.mesh.regions[i];
      g.dataset.look = LOOKS[worst];
      g.setAttribute('class', `node look-${worst}`);
      g.children[1].textContent = `${i + 1}${GLYPH[worst]}`;
      g.lastChild.textContent = `${reg.name}: ${reg.size} nodes · ${LOOKS[worst]} · ${incident} in incidents, ${rerouted} rerouted around, ${anomalous} anomalous · worst loss ${pct(loss / 1000)}`;
    });
    for (const h of f.hot) hot.push([h.look, h.element, lookText(h.look, h.loss, h.rtt)]);
    if (f.hot_total > f.hot.length) hot.push([0, `and ${f.hot_total - f.hot.length} more`, '']);
  }
  hot.sort((x, y) => y[0] - x[0]);
  const list = document.getElementById('hot');
  list.replaceChildren(...(hot.length ? hot.map(([code, what, text]) => el('li', { 'data-look': LOOKS[code] }, `${GLYPH[code]} ${what}: ${text}`)) : [el('li', { text: 'every element healthy' })]));
}

function hover(ev) {
  const box = document.getElementById('hover');
  const t = ev.target.closest('g[data-link], g[data-node], g[data-region]');
  if (!t) { box.hidden = true; return; }
  box.textContent = t.querySelector('title').textContent;
  const wrap = box.parentElement.getBoundingClientRect();
  box.style.left = `${ev.clientX - wrap.left + 12}px`;
  box.style.top = `${ev.clientY - wrap.top + 12}px`;
  box.hidden = false;
}

// ---- incidents ---------------------------------------------------------------

function renderIncidents() {
  const all = [...S.incidents.values()].sort((a, b) => b.detected_at - a.detected_at);
  document.getElementById('no-incidents').hidden = all.length > 0;
  const table = document.getElementById('incident-table');
  table.hidden = all.length === 0;
  table.tBodies[0].replaceChildren(...all.map((i) => el('tr', { 'data-incident': i.id, 'data-element': i.element, 'data-kind': i.kind, 'data-state': i.state },
    el('td', {}, el('a', { href: `#/incident/${encodeURIComponent(i.id)}`, text: i.id })),
    el('td', { class: `state state-${i.state}`, text: i.state }),
    el('td', { text: i.kind ? `${i.kind} on ${i.element}` : 'not diagnosed' }),
    el('td', { class: 'num', text: i.confidence === null ? '—' : i.confidence.toFixed(2) }),
    el('td', { text: ago(i.detected_at) }),
    el('td', { class: 'num', text: `${i.applied} / ${i.actions}` }),
    el('td', { text: i.outcome + (i.reopened ? ` (reopened ${i.reopened}×)` : '') }))));
}

function actionText(a) {
  switch (a.type) {
    case 'route-replace': return `route to ${a.destination} via ${a.primary}${a.backup ? ` (backup ${a.backup})` : ''}`;
    case 'route-withdraw': return `withdraw our route to ${a.destination}`;
    case 'link-drain': return `drain the link to ${a.peer}`;
    case 'link-restore': return `restore the link to ${a.peer}`;
    default: return `${a.type} ${JSON.stringify(a)}`;
  }
}

function pathPoints(path) {
  return path.map((n) => S.mesh.pos[S.mesh.names.indexOf(n)]).filter(Boolean).map((p) => p.join(',')).join(' ');
}

function incidentMap(d) {
  const m = S.mesh;
  if (m.mode !== 'nodes') return el('p', { class: 'note', text: 'The mesh is drawn by region; the route changes are listed below.' });
  const svg = sv('svg', { viewBox: '0 0 1000 1000', class: 'incident-map', role: 'img', 'aria-label': 'routes before (dashed grey) and after (solid blue) the repair' });
  svg.append(sv('defs', {}, sv('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 8, refY: 5, markerWidth: 5, markerHeight: 5, orient: 'auto-start-reverse' }, sv('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#1565c0' }))));
  for (const [a, b] of m.links) {
    const [p, q] = [m.pos[a], m.pos[b]];
    svg.append(sv('line', { x1: p[0], y1: p[1], x2: q[0], y2: q[1], stroke: '#cfd8dc', 'stroke-width': 3 }));
  }
  const e = d.incident.root_cause && d.incident.root_cause.element;
  if (e && e.type === 'link') {
    const [p, q] = [m.pos[m.names.indexOf(e.a)], m.pos[m.names.indexOf(e.b)]];
    if (p && q) svg.append(sv('line', { x1: p[0], y1: p[1], x2: q[0], y2: q[1], class: 'fault' }, sv('title', {}, `fault: link ${e.a}-${e.b}`)));
  }
  for (const r of d.routes.filter((r) => r.drawn)) {
    svg.append(sv('polyline', { points: pathPoints(r.before), class: 'route-before' }, sv('title', {}, `before: ${r.before.join(' → ')}`)));
    svg.append(sv('polyline', { points: pathPoints(r.after), class: 'route-after' }, sv('title', {}, `after: ${r.after.join(' → ')}`)));
  }
  m.names.forEach((name, i) => {
    const p = m.pos[i];
    const faulty = e && e.type === 'node' && e.id === name;
    svg.append(sv('circle', { cx: p[0], cy: p[1], r: 12, fill: faulty ? '#ffebee' : '#fff', stroke: faulty ? '#c62828' : '#78909c', 'stroke-width': faulty ? 5 : 2 }));
    if (m.names.length <= 60) svg.append(sv('text', { x: p[0], y: p[1], 'font-size': 13, 'text-anchor': 'middle', 'dominant-baseline': 'central' }, name + (faulty ? '✕' : '')));
  });
  return svg;
}

// A table of `rows` ({cells: [text or Node], attrs}) under `head`.
function table(head, rows, attrs) {
  return el('table', attrs || {}, el('thead', {}, el('tr', {}, head.map((h) => el('th', { text: h })))),
    el('tbody', {}, rows.map((r) => el('tr', r.attrs || {}, r.cells.map((c) => el('td', {}, c instanceof Node ? c : String(c)))))));
}

async function showIncident(id) {
  const box = document.getElementById('view-incident');
  let d;
  try {
    d = await getJSON(`/api/incidents/${encodeURIComponent(id)}`);
  } catch (e) {
    box.replaceChildren(el('h2', { text: `Incident ${id}` }), el('p', { text: `Not in the running job's memory (${e.message.trim()}). The History view queries every incident on record.` }));
    return;
  }
  S.detail = id;
  const i = d.incident;
  const rc = i.root_cause;
  const t0 = i.opened_at;
  const rel = (ns) => (ns ? `+${((ns - t0) / 1e6).toFixed(0)} ms` : '—');
  const causeText = rc ? `${rc.kind} on ${d.summary.element}, confidence ${rc.confidence.toFixed(2)}` : 'not diagnosed';
  const symptoms = [...i.symptoms].sort((a, b) => a.window_start - b.window_start);
  const touches = (e) => rc && (JSON.stringify(e) === JSON.stringify(rc.element) || [e.a, e.b, e.id].some((n) => n && [rc.element.a, rc.element.b, rc.element.id].includes(n)));
  const causes = d.deciding ? d.deciding.causes.filter((c) => touches(c.element)) : [];
  const total = causes.reduce((s, c) => s + c.confidence, 0) || 1;
  const elText = (e) => (e.type === 'link' ? `link ${e.a}-${e.b}` : `node ${e.id}`);
  box.replaceChildren(...[
    el('p', {}, el('a', { href: '#/incidents', text: '← all incidents' })),
    el('h2', { text: `Incident ${i.incident_id}` }),
    el('p', { id: 'incident-cause', 'data-kind': rc ? rc.kind : '', 'data-element': d.summary.element || '' }, el('strong', { text: 'Root cause: ' }), causeText),
    el('p', {}, `State `, el('span', { class: `state state-${i.state}`, id: 'incident-state', text: i.state }), ` · outcome ${i.outcome} · opened ${clock(i.opened_at)} UTC · detected ${rel(i.detected_at)} (MTTD ${ms(i.mttd_ms)}) · mitigated ${rel(i.mitigated_at)} (MTTR ${ms(i.mttr_ms)}) · resolved ${rel(i.resolved_at)}${i.reopened_at.length ? ` · reopened ${i.reopened_at.length}×` : ''}`),
    el('h3', { text: 'Evidence' }),
    rc ? el('ul', {}, rc.evidence.map((line) => el('li', { text: line }))) : el('p', { text: 'none yet' }),
    rc && rc.reporters.length ? el('p', { text: `Independent reporters: ${rc.reporters.join(', ')}` }) : null,
    el('h4', { text: 'Symptoms by window (what each element showed; robust z-scores against its own baseline)' }),
    symptoms.length ? table(['Window', 'Element', 'Feature', 'Value', 'Score'], symptoms.map((s) => ({ cells: [rel(s.window_start), elText(s.element), s.feature, s.value.toFixed(3), s.score.toFixed(1)] }))) : el('p', { class: 'note', text: 'no symptoms kept (hard evidence such as carrier loss needs none)' }),
    el('h3', { text: 'Hypotheses in the deciding window' }),
    causes.length ? table(['Hypothesis', 'Confidence (calibrated)', 'Share of the window\'s belief', 'Reporters', ''],
      causes.map((c) => ({ cells: [`${c.kind} on ${elText(c.element)}`, c.confidence.toFixed(2), `${(100 * c.confidence / total).toFixed(0)}%`, c.reporters.join(', ') || '—', JSON.stringify(c.element) === JSON.stringify(rc.element) && c.kind === rc.kind ? 'chosen' : ''] })), { id: 'incident-hypotheses' })
      : el('p', { class: 'note', text: 'not kept for this incident (it was restored from a checkpoint)' }),
    rc && rc.ambiguity.length ? el('p', { text: `Not ruled out: ${rc.ambiguity.map(elText).join(', ')}` }) : null,
    el('h3', { text: 'Plan' }),
    el('p', { text: `${d.routes_total} route change(s); dashed grey: the route before, blue: after (up to 12 drawn).` }),
    incidentMap(d),
    d.routes.length ? table(['Node', 'Destination', 'Before', 'After', 'Backup'], d.routes.map((r) => ({ cells: [r.target, r.destination, r.before.join(' → '), r.after.join(' → '), r.backup || '—'] }))) : null,
    el('h3', { text: 'Commands' }),
    i.actions.length ? table(['Command', 'Node', 'Action', 'Issued', 'Status', 'Answered', 'Reason'],
      i.actions.map((a) => ({ attrs: { 'data-status': a.status || 'pending' }, cells: [a.command_id.slice(0, 18), a.target, actionText(a.action), rel(a.issued_at), a.status || 'pending', rel(a.acked_at), a.reason || ''] })), { id: 'incident-commands' })
      : el('p', { text: 'No commands: the job did not act (see why below).' }),
    el('h3', { text: 'Verification and explanation' }),
    el('p', { text: verification(i) }),
    el('pre', { text: i.explanation })].filter(Boolean));
}

function verification(i) {
  switch (i.state) {
    case 'verifying': return 'Every command applied; the repair is being checked against the traffic its links lose.';
    case 'resolved': return `Resolved: the element was shown healthy by both ends' probes and the routes were handed back (${i.outcome}).`;
    case 'failed': return 'Failed: the repair was refused or did not cut the loss, and was rolled back.';
    case 'mitigating': return 'Commands sent; waiting for the actuators to answer.';
    case 'closed': return 'Closed with its job, which kept no checkpoint to hand it over.';
    default: return i.outcome === 'no_action' ? 'No action taken (see the explanation).' : 'Diagnosed; no repair yet.';
  }
}

// ---- history -----------------------------------------------------------------

function tsMs(v) {
  if (typeof v === 'number') return v / 1e6;
  const s = String(v);
  return Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : `${s}Z`);
}

function chart(rows) {
  const pts = rows.filter((r) => r.mttd_ms !== undefined || r.mttr_ms !== undefined).map((r) => ({ t: tsMs(r.opened_at), d: r.mttd_ms, r: r.mttr_ms, id: r.incident_id }));
  if (!pts.length) return null;
  const W = 760, H = 260, L = 60, B = 30;
  const t0 = Math.min(...pts.map((p) => p.t)), t1 = Math.max(...pts.map((p) => p.t), t0 + 1);
  const top = 1.15 * Math.max(1, ...pts.flatMap((p) => [p.d || 0, p.r || 0]));
  const x = (t) => L + (W - L - 20) * (t - t0) / (t1 - t0);
  const y = (v) => H - B - (H - B - 20) * v / top;
  const svg = sv('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': 'MTTD (orange circles) and MTTR (blue squares) of each incident over time' });
  svg.append(sv('line', { x1: L, y1: H - B, x2: W - 10, y2: H - B, stroke: '#999' }), sv('line', { x1: L, y1: 10, x2: L, y2: H - B, stroke: '#999' }));
  svg.append(sv('text', { x: 4, y: 20 }, `${Math.round(top)} ms`), sv('text', { x: 4, y: H - B }, '0 ms'));
  svg.append(sv('text', { x: L, y: H - 8 }, new Date(t0).toISOString().slice(0, 19).replace('T', ' ')), sv('text', { x: W - 170, y: H - 8 }, new Date(t1).toISOString().slice(0, 19).replace('T', ' ')));
  for (const p of pts) {
    if (p.d !== undefined && p.d !== null) svg.append(sv('circle', { cx: x(p.t), cy: y(p.d), r: 6, class: 'series-mttd' }, sv('title', {}, `${p.id}: MTTD ${p.d} ms`)));
    if (p.r !== undefined && p.r !== null) svg.append(sv('rect', { x: x(p.t) - 5, y: y(p.r) - 5, width: 10, height: 10, class: 'series-mttr' }, sv('title', {}, `${p.id}: MTTR ${p.r} ms`)));
  }
  return svg;
}

function queryTable(q, id) {
  const rows = q.rows || [];
  if (!rows.length) return el('p', { class: 'note', text: 'no rows' });
  const cols = Object.keys(rows.reduce((a, r) => Object.assign(a, r), {}));
  return table(cols, rows.map((r) => ({ cells: cols.map((c) => (r[c] === undefined ? '—' : r[c])) })), { id });
}

async function showHistory() {
  const box = document.getElementById('history-body');
  let h;
  try {
    h = await getJSON('/api/history');
  } catch (e) {
    box.replaceChildren(el('p', { text: `The history could not be read: ${e.message}` }));
    return;
  }
  const q = h.queries;
  const sqlOf = (name) => el('details', {}, el('summary', { text: `SQL: ${name} (x0tta6bl4 sql --saved ${name})` }), el('pre', { text: q[name].sql }));
  if (!q['mttr-over-time'].rows.length) {
    box.replaceChildren(el('p', { id: 'history-empty', text: `No incidents on record yet in ${h.data_dir}. The job writes its incidents there every few seconds; once one is detected it shows here with its time to detect (MTTD) and to mitigate (MTTR), and recurring faults appear under flapping links.` }));
    return;
  }
  box.replaceChildren(...[
    el('h3', { text: 'MTTD and MTTR over time' }), el('p', { class: 'note', text: q['mttr-over-time'].description }), chart(q['mttr-over-time'].rows),
    el('p', { class: 'note', text: 'Orange circles: time to detect. Blue squares: time to mitigate (routes moved off the fault, every command applied).' }),
    queryTable(q['mttr-over-time'], 'history-incidents'), sqlOf('mttr-over-time'),
    el('h3', { text: 'By root-cause kind' }), queryTable(q['mttr-by-root-cause'], 'history-by-kind'), sqlOf('mttr-by-root-cause'),
    el('h3', { text: 'Flapping links' }), el('p', { class: 'note', text: q['flapping-links'].description }),
    q['flapping-links'].rows.length ? queryTable(q['flapping-links'], 'history-flapping') : el('p', { text: 'None: no link was blamed by three or more incidents within one hour.' }), sqlOf('flapping-links'),
    el('h3', { text: 'Incidents per day' }), queryTable(q['incidents-per-day'], 'history-per-day'), sqlOf('incidents-per-day')].filter(Boolean));
}

function scheduleHistory() {
  if (S.view !== 'history') return;
  clearTimeout(S.historyTimer);
  // The job snapshots its history every 2 s: read it once after that, not on a timer.
  S.historyTimer = setTimeout(showHistory, 2500);
}

// ---- model -------------------------------------------------------------------

async function showModel() {
  const box = document.getElementById('model-body');
  const m = await getJSON('/api/model');
  if (!m.report) {
    box.replaceChildren(el('p', { id: 'model-version', text: `In service: ${m.served}` }), el('p', { text: m.note }));
    return;
  }
  const r = m.report;
  const rows = [];
  for (const [detector, kinds] of Object.entries(r.comparison || {})) {
    for (const [kind, s] of Object.entries(kinds)) {
      rows.push({ cells: [detector, kind, s.precision.toFixed(3), s.recall.toFixed(3), s.f1.toFixed(3), s.pr_auc === null || s.pr_auc === undefined ? '—' : s.pr_auc.toFixed(3), s.window_fpr.toFixed(4), `${s.detected} / ${s.events}`] });
    }
  }
  box.replaceChildren(
    el('p', { id: 'model-version' }, el('strong', { text: 'In service: ' }), m.served, ` (${m.source})`),
    el('p', { text: `Decision threshold ${Number(r.threshold).toFixed(3)} · trained on ${r.train_node_windows} node-windows in ${Number(r.train_seconds).toFixed(0)} s · held-out scenarios: ${r.held_out} · promotion: ${r.promotion}` }),
    el('h3', { text: 'Report card (held-out scenarios, against the baselines)' }),
    table(['Detector', 'Fault kind', 'Precision', 'Recall', 'F1', 'PR-AUC', 'Window FPR', 'Detected'], rows, { id: 'model-card' }),
    el('h3', { text: 'Precision–recall curve' }),
    el('img', { src: '/api/model/pr.png', alt: 'Precision-recall curve of the model on the held-out scenarios', width: 640 }));
}

// ---- navigation and the live feed ---------------------------------------------

function route() {
  const hash = location.hash || '#/mesh';
  const [, view, arg] = hash.split('/');
  S.view = view === 'incident' ? 'incident' : (['mesh', 'incidents', 'history', 'model'].includes(view) ? view : 'mesh');
  document.querySelectorAll('.view').forEach((v) => { v.hidden = v.id !== `view-${S.view}`; });
  document.querySelectorAll('nav a').forEach((a) => {
    if (a.dataset.view === S.view || (S.view === 'incident' && a.dataset.view === 'incidents')) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  });
  S.detail = null;
  if (S.view === 'incident') showIncident(decodeURIComponent(arg || ''));
  if (S.view === 'history') showHistory();
  if (S.view === 'model') showModel().catch((e) => { document.getElementById('model-body').textContent = e.message; });
}

async function sync() {
  const st = await getJSON('/api/state');
  if (S.instance !== st.instance) {
    // A new job (a restart): its mesh and incidents replace the old ones.
    S.mesh = await getJSON('/api/mesh');
    S.incidents.clear();
    S.frame = null;
    drawMesh();
  }
  S.instance = st.instance;
  for (const i of st.incidents) S.incidents.set(i.id, i);
  if (st.frame) applyFrame(st.frame);
  renderIncidents();
}

function connect() {
  const es = new EventSource('/api/events');
  es.onopen = () => {
    setConn('live');
    sync().catch((e) => setConn(`connected, but the state could not be read: ${e.message}`, true));
  };
  es.onerror = () => setConn('connection to the job lost: reconnecting…', true);
  es.addEventListener('window', (e) => applyFrame(JSON.parse(e.data)));
  es.addEventListener('incident', (e) => {
    const i = JSON.parse(e.data);
    S.incidents.set(i.id, i);
    renderIncidents();
    if (S.view === 'incident' && S.detail === i.id) showIncident(i.id);
    scheduleHistory();
  });
  es.addEventListener('lagged', (e) => setConn(`live (skipped ${e.data} updates: the page was too slow)`));
}

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', () => {
  document.getElementById('mesh').addEventListener('mousemove', hover);
  document.getElementById('mesh').addEventListener('mouseleave', () => { document.getElementById('hover').hidden = true; });
  route();
  sync().then(() => { window.x0MeshDrawnAt = performance.now(); }).catch((e) => setConn(`the job does not answer: ${e.message}`, true));
  connect();
});
