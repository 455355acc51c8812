// The admin API, served by the primary on admin.host:admin.port (never on a
// proxy port). Every request needs `Authorization: Bearer <token>`; answers
// are JSON.
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ListenConfig } from '../config/types.js';
import type { ReloadResult, Status } from './types.js';
import type { Logger } from '../log.js';
import type { ServerLatencies } from '../metrics/cluster-metrics.js';
import { isDashboardPath, loadDashboardAssets, serveDashboard } from './dashboard-assets.js';

export interface AdminHandlers {
  /** Read per request, so a reload can change the token. */
  token(): string;
  status(): Promise<Status>;
  reload(): Promise<ReloadResult>;
  /** Prometheus text summed over the workers (metrics/cluster-metrics.ts). */
  metrics(): Promise<string>;
  /** Per-server latency histograms summed over the workers (the dashboard's p50/p99). */
  latency(): Promise<ServerLatencies>;
  /** Drain (no new requests; in-flight ones finish) or re-enable a server; false if there is no such server. */
  setDrained(upstream: string, address: string, drained: boolean): boolean;
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

const ROUTES: Record<string, { method: string; run(h: AdminHandlers, res: http.ServerResponse): Promise<void> }> = {
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
    async run(h, res) {
      const result = await h.reload();
      send(res, result.ok ? 200 : 400, result);
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

export function startAdminServer(at: ListenConfig, handlers: AdminHandlers, log: Logger): Promise<AdminServer> {
  const dashboard = loadDashboardAssets();
  const server = http.createServer((req, res) => {
    req.resume(); // no endpoint reads a body
    const requestPath = new URL(req.url ?? '/', 'http://admin').pathname;
    if (isDashboardPath(requestPath)) return serveDashboard(dashboard, req, res, requestPath);
    if (!tokenMatches(req.headers.authorization, handlers.token())) {
      send(res, 401, { error: 'unauthorized: send Authorization: Bearer <admin.token>' }, {
        'www-authenticate': 'Bearer realm="switchyard"',
      });
      return;
    }
    const path = requestPath;
    const action = SERVER_ACTION.exec(path);
    if (action) return serverAction(handlers, req, res, action);
    const route = ROUTES[path];
    if (!route) {
      send(res, 404, { error: `no such endpoint: ${path}` });
      return;
    }
    if (req.method !== route.method) {
      send(res, 405, { error: `${path} accepts ${route.method} only` }, { allow: route.method });
      return;
    }
    route.run(handlers, res).catch((err: Error) => {
      log.error({ err, path }, 'admin request failed');
      if (!res.headersSent) send(res, 500, { error: err.message });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(new Error(`admin API could not listen on ${at.host}:${at.port}: ${err.message}`));
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
