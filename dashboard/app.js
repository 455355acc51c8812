// The Switchyard dashboard: polls the admin API (GET /status and
// GET /latency) every POLL_MS while the tab is visible, and renders what it
// gets. Plain DOM, no framework, no build step.
//
// Safety: every value from the server (server names, route paths, anything a
// config author or another feature put in /status) is written with
// textContent or as an attribute value, never parsed as markup; the page's
// CSP allows no inline script either. The admin token lives in one variable
// of this module only (no cookie, no storage), so another site cannot make
// the browser act with it.

const POLL_MS = 2000;
/** Points kept per sparkline: the last five minutes. */
const HISTORY = 150;

let token = '';
let timer;
/** The last poll's answer, so the server filter can re-render without asking again. */
let last;
/** The previous poll, for rates: server key → { t, requests, failures }, and the previous latency histograms. */
let previous = { t: 0, servers: new Map(), latency: new Map() };
/** server key ("upstream\0address") → req/s history; plus "" for the total. */
const history = new Map();

const $ = (id) => document.getElementById(id);

/** An element with text and attributes; children are nodes or strings (always text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'text') node.textContent = String(v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// ---- API -------------------------------------------------------------------

class Unauthorized extends Error {}

async function api(path, method = 'GET') {
  const res = await fetch(path, { method, headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized('the admin API refused the token');
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || (body.errors ?? []).join('; ') || `HTTP ${res.status}`);
  return body;
}

// ---- formatting ------------------------------------------------------------

function duration(seconds) {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}
const rate = (n) => (n === undefined ? '–' : n >= 100 ? n.toFixed(0) : n.toFixed(1));
const percent = (n) => (n === undefined ? '–' : `${(n * 100).toFixed(n < 0.1 ? 2 : 1)}%`);
const ms = (s) => (s === undefined ? '–' : s >= 1 ? `${s.toFixed(2)} s` : `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`);

/** Any JSON value as short text, for fields this page does not know. */
function plain(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

// ---- sparklines --------------------------------------------------------------

const SVG = 'http://www.w3.org/2000/svg';

function sparkline() {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', `0 0 ${HISTORY} 20`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.append(document.createElementNS(SVG, 'polyline'));
  return svg;
}

function drawSparkline(svg, points) {
  const max = Math.max(1, ...points.map((p) => p ?? 0));
  // Right-aligned; the first minute is stretched so a fresh page already shows a line.
  const span = Math.max(points.length, 30);
  const step = (HISTORY - 1) / (span - 1);
  const coords = points.map((p, i) => `${((span - points.length + i) * step).toFixed(1)},${(19 - ((p ?? 0) / max) * 18).toFixed(1)}`);
  svg.firstChild.setAttribute('points', coords.join(' '));
}

function remember(key, value) {
  let h = history.get(key);
  if (h === undefined) history.set(key, (h = []));
  h.push(value);
  if (h.length > HISTORY) h.shift();
  return h;
}

// ---- latency -------------------------------------------------------------------

/**
 * The q-quantile of the requests between two cumulative histograms, with
 * linear interpolation inside the bucket (as Prometheus' histogram_quantile).
 */
function quantile(q, bounds, now, before) {
  const counts = now.map((c, i) => c - (before?.[i] ?? 0));
  const total = counts[counts.length - 1];
  if (!(total > 0) || counts.some((c) => c < 0)) return undefined;
  const rank = q * total;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] >= rank) {
      if (i === bounds.length) return bounds[bounds.length - 1]; // in +Inf: the largest finite bound
      const lower = i === 0 ? 0 : bounds[i - 1];
      const below = i === 0 ? 0 : counts[i - 1];
      const inBucket = counts[i] - below;
      return lower + (bounds[i] - lower) * (inBucket > 0 ? (rank - below) / inBucket : 1);
    }
  }
  return undefined;
}

// ---- rendering -------------------------------------------------------------------

const KNOWN_STATUS_KEYS = new Set([
  'version', 'pid', 'uptimeSeconds', 'configFile', 'scheduling', 'workers', 'crashLoop',
  'unresponsiveWorkers', 'requests', 'activeConnections', 'activeRequests', 'upstreams', 'routes',
]);
const KNOWN_SERVER_KEYS = new Set([
  'address', 'weight', 'healthy', 'drained', 'active', 'activeConnections', 'requests', 'failures', 'ejectedUntil', 'tableShare',
]);

function serverState(s, now) {
  if (!s.healthy) return 'down';
  if (s.ejectedUntil > now) return 'ejected';
  if (s.drained) return 'drained';
  return 'up';
}

/** Replaces a table's content: a header row, then rows of cells (nodes or text). */
function fillTable(table, headers, rows) {
  const head = el('tr', {}, ...headers.map((h) => el('th', { class: h.num ? 'num' : undefined, text: h.label ?? h })));
  table.replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
}

function renderTotals(status, totalRate, servers) {
  const up = servers.filter((s) => s.state === 'up').length;
  const spark = sparkline();
  drawSparkline(spark, remember('', totalRate));
  const card = (label, value, extra) => el('div', { class: 'card' }, el('div', { class: 'value', text: value }), el('div', { class: 'label', text: label }), ...(extra ? [extra] : []));
  $('totals').replaceChildren(
    card('requests / s', rate(totalRate), spark),
    card('active requests', status.activeRequests),
    card('client connections', status.activeConnections),
    card('servers up', `${up} / ${servers.length}`),
    card('workers', status.workers.filter((w) => w.state === 'ready').length),
  );
}

function renderWorkers(status) {
  const rows = status.workers.map((w) =>
    el('tr', {},
      el('td', { class: 'num', text: w.slot }),
      el('td', { class: 'num', text: w.pid ?? '–' }),
      el('td', {}, el('span', { class: `badge ${w.state}`, text: w.state })),
      el('td', { class: 'num', text: duration(w.uptimeSeconds) }),
      el('td', { class: 'num', text: w.restarts }),
    ),
  );
  fillTable($('workers'), ['slot', { label: 'pid', num: true }, 'state', { label: 'uptime', num: true }, { label: 'restarts', num: true }], rows);
}

/** Rows are kept per server and updated in place, so hundreds of servers cost a few text writes per poll. */
const rowCache = new Map();

function serverRow(key, upstream, s) {
  let row = rowCache.get(key);
  if (row !== undefined) return row;
  const cells = {};
  const td = (name, cls) => (cells[name] = el('td', { class: cls }));
  const drain = el('button', { type: 'button', 'data-action': 'drain', text: 'Drain' });
  const enable = el('button', { type: 'button', 'data-action': 'enable', text: 'Enable' });
  for (const b of [drain, enable]) {
    b.addEventListener('click', () => serverAction(upstream, s.address, b.dataset.action, b));
  }
  const spark = sparkline();
  const tr = el('tr', { 'data-server': s.address, 'data-upstream': upstream },
    td('address'), td('weight', 'num'), td('state'), td('active', 'num'), td('connections', 'num'),
    td('rate', 'num'), el('td', {}, spark), td('errors', 'num'), td('p50', 'num'), td('p99', 'num'),
    td('share', 'num'), td('extra', 'wrap'), el('td', {}, drain, ' ', enable));
  cells.address.textContent = s.address;
  row = { tr, cells, spark, drain, enable };
  rowCache.set(key, row);
  return row;
}

function renderUpstreams(status, perServer) {
  const filter = $('filter').value.trim().toLowerCase();
  const container = $('upstreams');
  const seen = new Set();
  const sections = [];
  for (const [name, upstream] of Object.entries(status.upstreams)) {
    const rows = [];
    for (const s of upstream.servers) {
      const key = `${name}\0${s.address}`;
      seen.add(key);
      const view = perServer.get(key);
      const row = serverRow(key, name, s);
      const c = row.cells;
      c.weight.textContent = s.weight;
      c.state.replaceChildren(el('span', { class: `badge ${view.state}`, text: view.state }));
      c.active.textContent = s.active;
      c.connections.textContent = s.activeConnections;
      c.rate.textContent = rate(view.rate);
      c.errors.textContent = percent(view.errorRate);
      c.p50.textContent = ms(view.p50);
      c.p99.textContent = ms(view.p99);
      c.share.textContent = s.tableShare === undefined ? '' : percent(s.tableShare);
      c.extra.textContent = Object.entries(s).filter(([k]) => !KNOWN_SERVER_KEYS.has(k)).map(([k, v]) => `${k}: ${plain(v)}`).join(', ');
      drawSparkline(row.spark, history.get(key) ?? []);
      row.drain.hidden = s.drained;
      row.enable.hidden = !s.drained;
      row.tr.classList.toggle('hidden', filter !== '' && !`${name} ${s.address} ${view.state}`.toLowerCase().includes(filter));
      rows.push(row.tr);
    }
    const table = el('table', { 'data-upstream': name });
    fillTable(table, ['server', { label: 'weight', num: true }, 'state', { label: 'active', num: true }, { label: 'conns', num: true },
      { label: 'req/s', num: true }, 'last 5 min', { label: 'errors', num: true }, { label: 'p50', num: true }, { label: 'p99', num: true },
      { label: upstream.balance === 'source' ? 'table share' : '', num: true }, '', ''], rows);
    sections.push(el('h3', {}, name, ' ', el('span', { class: 'muted', text: `${upstream.balance}, ${upstream.servers.length} servers` })), table);
  }
  for (const key of rowCache.keys()) if (!seen.has(key)) rowCache.delete(key);
  container.replaceChildren(...sections);
}

function renderRoutes(status) {
  const rows = (status.routes ?? []).map((r) =>
    el('tr', {},
      el('td', { class: 'num', text: r.order }),
      el('td', { text: r.group }),
      el('td', { class: 'wrap', text: r.path }),
      el('td', { text: [r.methods?.join(',') ?? '', ...(r.headers ?? [])].filter(Boolean).join(' ') }),
      el('td', { text: r.upstream }),
      el('td', { class: 'wrap', text: r.name }),
      el('td', { class: 'wrap', text: (r.checks ?? []).join(', ') }),
    ),
  );
  fillTable($('routes'), [{ label: '#', num: true }, 'host', 'path', 'conditions', 'upstream', 'name', 'checks'], rows);
}

/** Sections other features add to /status appear here as tables, whatever their shape. */
function renderExtra(status) {
  const sections = [];
  for (const [key, value] of Object.entries(status)) {
    if (KNOWN_STATUS_KEYS.has(key)) continue;
    if (key === 'dsr') sections.push(dsrView(value));
    else sections.push(el('section', { 'data-extra': key }, el('h2', { text: key }), genericView(value)));
  }
  $('extra').replaceChildren(...sections);
}

/** The DSR tier (issue 13): the forwarder process, then per entry its totals and its servers. */
function dsrView(dsr) {
  const f = dsr.forwarder;
  const sections = [el('h2', {}, 'Direct Server Return ', el('span', { class: 'muted', text: `forwarder pid ${f.pid ?? '–'}, ${f.state}, up ${duration(f.uptimeSeconds)}, ${f.restarts} restarts` }))];
  for (const e of dsr.entries) {
    const c = e.counters;
    const drops = c ? Object.entries(c.drops).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') : '';
    const totals = c ? `${c.forwardedPackets} packets, ${(c.forwardedBytes / 1e6).toFixed(1)} MB forwarded, ${c.flows} flows now, ${c.flowsCreated} created${drops ? `, dropped: ${drops}` : ''}` : '';
    const rows = e.servers.map((s) =>
      el('tr', {},
        el('td', { text: s.address }),
        el('td', { class: 'num', text: s.weight }),
        el('td', {}, el('span', { class: `badge ${s.drained ? 'drained' : s.healthy ? 'up' : 'down'}`, text: s.drained ? 'drained' : s.healthy ? 'up' : 'down' })),
        el('td', { class: 'num', text: s.connections }),
        el('td', { class: 'num', text: s.packets }),
        el('td', { class: 'num', text: (s.bytes / 1e6).toFixed(1) }),
      ),
    );
    const table = el('table', { 'data-dsr': e.vip });
    fillTable(table, ['server', { label: 'weight', num: true }, 'state', { label: 'conns', num: true }, { label: 'packets', num: true }, { label: 'MB', num: true }], rows);
    const title = `${e.vip}:${e.ports.join(',')} on ${e.interface} -> ${e.upstream} (${e.method}${e.dscp === undefined ? '' : `, dscp ${e.dscp}`})`;
    sections.push(el('h3', {}, title, ' ', el('span', { class: e.error ? 'error' : 'muted', text: e.error ?? totals })), table);
  }
  return el('section', { 'data-extra': 'dsr' }, ...sections);
}

function genericView(value) {
  if (Array.isArray(value) && value.every((v) => v !== null && typeof v === 'object' && !Array.isArray(v))) {
    const keys = [...new Set(value.flatMap((v) => Object.keys(v)))];
    const table = el('table');
    fillTable(table, keys, value.map((v) => el('tr', {}, ...keys.map((k) => el('td', { class: 'wrap', text: plain(v[k]) })))));
    return table;
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const table = el('table');
    fillTable(table, ['key', 'value'], Object.entries(value).map(([k, v]) => el('tr', {}, el('td', { text: k }), el('td', { class: 'wrap', text: plain(v) }))));
    return table;
  }
  return el('p', { text: plain(value) });
}

function render(status, latency) {
  const t = Date.now();
  const dt = (t - previous.t) / 1000;
  const bounds = latency.bucketsSeconds;
  const latencyBy = new Map(latency.servers.map((l) => [`${l.upstream}\0${l.address}`, l.cumulative]));
  const perServer = new Map();
  const allServers = [];
  let totalRate = 0;
  for (const [name, upstream] of Object.entries(status.upstreams)) {
    for (const s of upstream.servers) {
      const key = `${name}\0${s.address}`;
      const before = previous.servers.get(key);
      // Counts of a worker that exited leave the sums: a drop is no rate.
      const dr = before ? s.requests - before.requests : undefined;
      const df = before ? s.failures - before.failures : undefined;
      const valid = dr !== undefined && dr >= 0 && df >= 0 && dt > 0;
      const now = latencyBy.get(key);
      const view = {
        state: serverState(s, t),
        rate: valid ? dr / dt : undefined,
        errorRate: valid && dr > 0 ? df / dr : undefined,
        p50: now ? quantile(0.5, bounds, now, previous.latency.get(key)) : undefined,
        p99: now ? quantile(0.99, bounds, now, previous.latency.get(key)) : undefined,
      };
      if (view.rate !== undefined) totalRate += view.rate;
      remember(key, view.rate);
      perServer.set(key, view);
      allServers.push(view);
    }
  }
  for (const key of history.keys()) if (key !== '' && !perServer.has(key)) history.delete(key);
  previous = {
    t,
    servers: new Map(Object.entries(status.upstreams).flatMap(([name, u]) => u.servers.map((s) => [`${name}\0${s.address}`, s]))),
    latency: latencyBy,
  };

  $('identity').textContent = `v${status.version} · pid ${status.pid} · up ${duration(status.uptimeSeconds)} · ${status.configFile} · ${status.scheduling}`;
  $('updated').textContent = `updated ${new Date(t).toLocaleTimeString()}`;
  const alerts = [];
  if (status.crashLoop) alerts.push('Workers are crash-looping: respawning stopped (fix the cause, then reload).');
  if (status.unresponsiveWorkers.length > 0) alerts.push(`Workers not answering: ${status.unresponsiveWorkers.join(', ')} (their counts are missing).`);
  if (latency.workersMissing > 0) alerts.push(`${latency.workersMissing} worker(s) missed the latency poll.`);
  $('alerts').textContent = alerts.join(' ');
  renderTotals(status, previous.t && dt > 0 ? totalRate : undefined, allServers);
  renderWorkers(status);
  renderUpstreams(status, perServer);
  last = { status, perServer };
  renderRoutes(status);
  renderExtra(status);
}

// ---- actions -------------------------------------------------------------------

async function serverAction(upstream, address, action, button) {
  button.disabled = true;
  try {
    await api(`/servers/${encodeURIComponent(upstream)}/${encodeURIComponent(address)}/${action}`, 'POST');
    await poll();
  } catch (err) {
    failed(err);
  } finally {
    button.disabled = false;
  }
}

async function reloadConfig() {
  const button = $('reload');
  button.disabled = true;
  $('updated').textContent = 'reloading…';
  try {
    await api('/reload', 'POST');
    $('alerts').textContent = '';
    await poll();
  } catch (err) {
    failed(err, 'Reload refused: ');
  } finally {
    button.disabled = false;
  }
}

// ---- polling and sign-in ------------------------------------------------------------

function failed(err, prefix = '') {
  if (err instanceof Unauthorized) return signOut(err.message);
  $('alerts').textContent = `${prefix}${err.message}`;
}

async function poll() {
  clearTimeout(timer);
  try {
    const [status, latency] = await Promise.all([api('/status'), api('/latency')]);
    render(status, latency);
  } catch (err) {
    failed(err);
  }
  schedule();
}

/** Polls only while the tab is visible and someone is signed in: a closed or hidden dashboard costs the proxy nothing. */
function schedule() {
  clearTimeout(timer);
  if (token !== '' && document.visibilityState === 'visible') timer = setTimeout(poll, POLL_MS);
}

function signIn(given) {
  token = given;
  previous = { t: 0, servers: new Map(), latency: new Map() };
  history.clear();
  rowCache.clear();
  $('login').hidden = true;
  $('view').hidden = false;
  $('reload').hidden = false;
  $('signout').hidden = false;
  void poll();
}

function signOut(message = '') {
  token = '';
  clearTimeout(timer);
  $('view').hidden = true;
  $('reload').hidden = true;
  $('signout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
  $('token').value = '';
  $('token').focus();
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  $('login-error').textContent = '';
  signIn($('token').value);
});
$('signout').addEventListener('click', () => signOut());
$('reload').addEventListener('click', () => void reloadConfig());
$('filter').addEventListener('input', () => last && renderUpstreams(last.status, last.perServer));
document.addEventListener('visibilitychange', () => (document.visibilityState === 'visible' && token !== '' ? void poll() : clearTimeout(timer)));
