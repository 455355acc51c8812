// The admin API, served by the primary on admin.host:admin.port (never on a
// proxy port). Every request needs `Authorization: Bearer <token>`; answers
// are JSON.
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ListenConfig } from '../config/types.js';
import type { ReloadOptions, ReloadResult, Status, WhatIfResult } from './types.js';
import { parseDuration } from '../config/duration.js';
import type { Logger } from '../log.js';
import { ErrorCode, SwitchyardError } from '../errors.js';
import type { ServerLatencies } from '../metrics/cluster-metrics.js';
import { isDashboardPath, loadDashboardAssets, serveDashboard } from './dashboard-assets.js';

export interface AdminHandlers {
  /** Read per request, so a reload can change the token. */
  token(): string;
  status(): Promise<Status>;
  reload(options?: ReloadOptions): Promise<ReloadResult>;
  /** Prometheus text summed over the workers (metrics/cluster-metrics.ts). */
  metrics(): Promise<string>;
  /** Per-server latency histograms summed over the workers (the dashboard's p50/p99). */
  latency(): Promise<ServerLatencies>;
  /** Drain (no new requests; in-flight ones finish) or re-enable a server; false if there is no such server. */
  setDrained(upstream: string, address: string, drained: boolean): boolean;
  /** What a change of the named upstream's servers would do; undefined: no such upstream. */
  whatIf(upstream: string, query: URLSearchParams): WhatIfResult | undefined;
}

/** The Prometheus text exposition format, version 0.0.4. */
const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Constant-time: both sides are hashed first, so neither length nor content leaks through timing. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const given = header?.startsWith('Bearer ') ? header.slice(7).trim() : '';
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(token)) && given !== '';
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const json = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
    // Never rendered as a document, whatever a server name or path holds.
    'x-content-type-options': 'nosniff',
    'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
    ...headers,
  });
  res.end(json);
}

/** Limits of `POST /reload?canary=`: long enough to see traffic, short enough to wait for in one request. */
const CANARY_MIN_MS = 1_000;
const CANARY_MAX_MS = 3_600_000;
/** The canary must answer at least this many requests in its window to be judged (`min_requests`). */
const DEFAULT_MIN_REQUESTS = 20;

/** The query of POST /reload: nothing (a plain reload), or canary=DURATION with an optional min_requests=N. */
function reloadOptions(query: URLSearchParams): ReloadOptions | string[] {
  const errors: string[] = [];
  let windowMs: number | undefined;
  let minRequests = DEFAULT_MIN_REQUESTS;
  const seen = new Set<string>();
  for (const [key, value] of query) {
    if (seen.has(key)) {
      errors.push(`${key}: given twice`);
      continue;
    }
    seen.add(key);
    if (key === 'canary') {
      const ms = /^\d+(ms|s|m|h)$/.test(value) ? parseDuration(value) : NaN;
      if (!(ms >= CANARY_MIN_MS && ms <= CANARY_MAX_MS)) errors.push(`canary: expected a duration from 1s to 1h like 30s or 5m, got ${JSON.stringify(value)}`);
      else windowMs = ms;
    } else if (key === 'min_requests') {
      const n = /^\d{1,7}$/.test(value) ? Number(value) : NaN;
      if (!(n >= 1)) errors.push(`min_requests: expected an integer 1..9999999, got ${JSON.stringify(value)}`);
      else minRequests = n;
    } else {
      errors.push(`unknown query parameter ${JSON.stringify(key)}: expected canary=DURATION and optionally min_requests=N`);
    }
  }
  if (seen.has('min_requests') && !seen.has('canary')) errors.push('min_requests applies to a canary reload only (add canary=DURATION)');
  if (errors.length > 0) return errors;
  return windowMs === undefined ? {} : { canary: { windowMs, minRequests } };
}

const ROUTES: Record<string, { method: string; run(h: AdminHandlers, res: http.ServerResponse, query: URLSearchParams): Promise<void> }> = {
  '/status': {
    method: 'GET',
    async run(h, res) {
      send(res, 200, await h.status());
    },
  },
  '/metrics': {
    method: 'GET',
    async run(h, res) {
      const text = await h.metrics();
      res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
      res.end(text);
    },
  },
  '/latency': {
    method: 'GET',
    async run(h, res) {
      send(res, 200, await h.latency());
    },
  },
  '/reload': {
    method: 'POST',
    async run(h, res, query) {
      const options = reloadOptions(query);
      if (Array.isArray(options)) return send(res, 400, { ok: false, errors: options });
      const result = await h.reload(options);
      // 409: a canary that was judged and rolled back (the request was fine, the new config was not), or one still deciding.
      send(res, result.ok ? 200 : result.canary?.state === 'rolled-back' || ('busy' in result && result.busy) ? 409 : 400, result);
    },
  },
};

/** POST /servers/{upstream}/{address}/drain | /enable (the address may be URL-encoded, e.g. [::1]:80). */
const SERVER_ACTION = /^\/servers\/([^/]+)\/([^/]+)\/(drain|enable)$/;

function serverAction(h: AdminHandlers, req: http.IncomingMessage, res: http.ServerResponse, m: RegExpExecArray): void {
  if (req.method !== 'POST') return send(res, 405, { error: 'server actions accept POST only' }, { allow: 'POST' });
  let upstream: string;
  let address: string;
  try {
    upstream = decodeURIComponent(m[1]!);
    address = decodeURIComponent(m[2]!);
  } catch {
    return send(res, 400, { error: 'malformed percent-encoding in the path' });
  }
  const drained = m[3] === 'drain';
  if (!h.setDrained(upstream, address, drained)) return send(res, 404, { error: `no server ${address} in upstream ${upstream}` });
  send(res, 200, { ok: true, upstream, address, drained });
}

/** GET /upstreams/{name}/what-if?remove=ADDR&add=ADDR:W */
const WHAT_IF = /^\/upstreams\/([^/]+)\/what-if$/;

function whatIfAction(h: AdminHandlers, req: http.IncomingMessage, res: http.ServerResponse, name: string, query: URLSearchParams): void {
  if (req.method !== 'GET') return send(res, 405, { error: 'what-if accepts GET only' }, { allow: 'GET' });
  let upstreamName: string;
  try {
    upstreamName = decodeURIComponent(name);
  } catch {
    return send(res, 400, { error: 'malformed percent-encoding in the path' });
  }
  const result = h.whatIf(upstreamName, query);
  if (result === undefined) return send(res, 404, { error: `no upstream ${JSON.stringify(upstreamName)}` });
  if (!result.ok) return send(res, 400, { error: 'invalid what-if query', errors: result.errors });
  send(res, 200, result.body);
}

export function startAdminServer(at: ListenConfig, handlers: AdminHandlers, log: Logger): Promise<AdminServer> {
  const dashboard = loadDashboardAssets();
  const server = http.createServer((req, res) => {
    req.resume(); // no endpoint reads a body
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    if (isDashboardPath(path)) return serveDashboard(dashboard, req, res, path);
    if (!tokenMatches(req.headers.authorization, handlers.token())) {
      send(res, 401, { error: 'unauthorized: send Authorization: Bearer <admin.token>' }, {
        'www-authenticate': 'Bearer realm="switchyard"',
      });
      return;
    }
    const action = SERVER_ACTION.exec(path);
    if (action) return serverAction(handlers, req, res, action);
    const question = WHAT_IF.exec(path);
    if (question) return whatIfAction(handlers, req, res, question[1]!, url.searchParams);
    const route = ROUTES[path];
    if (!route) {
      send(res, 404, { error: `no such endpoint: ${path}` });
      return;
    }
    if (req.method !== route.method) {
      send(res, 405, { error: `${path} accepts ${route.method} only` }, { allow: route.method });
      return;
    }
    route.run(handlers, res, url.searchParams).catch((err: Error) => {
      log.error({ err, path }, 'admin request failed');
      if (!res.headersSent) send(res, 500, { error: err.message });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(new SwitchyardError(ErrorCode.AdminListen, `admin API could not listen on ${at.host}:${at.port}: ${err.message}`));
    });
    server.listen(at.port, at.host, () => {
      const port = (server.address() as { port: number }).port;
      log.info({ admin: `${at.host}:${port}` }, 'admin API listening');
      resolve({
        port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
