// Client-side helpers for the gateway integration tests: one request with any
// Host and headers (repeated ones too), a pool of such requests run with
// bounded concurrency, a small JWKS server, Prometheus text lookups and the
// JSON access-log lines a Switchyard instance printed.
import http from 'node:http';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import net from 'node:net';
import type { Backend, ReceivedRequest } from './backend.js';
import { admin, waitForStatus, workersReady } from './admin-status.js';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  /** Name/value pairs as received. */
  rawHeaders: string[];
  body: string;
}

export interface SendOptions {
  port: number;
  path?: string;
  method?: string;
  /** The Host header (default "gateway.test"). */
  host?: string;
  /** An array value sends the header once per element. */
  headers?: OutgoingHttpHeaders;
  body?: string;
  /** A keep-alive agent to reuse connections; default: a fresh connection. */
  agent?: http.Agent;
  /** Local (client) address to connect from, e.g. 127.0.0.2; ignored with an agent. */
  localAddress?: string;
  timeoutMs?: number;
}

/** One request to 127.0.0.1:port; resolves with the whole response, rejects after timeoutMs. */
export function send(o: SendOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: OutgoingHttpHeaders = { host: o.host ?? 'gateway.test', ...o.headers };
    if (o.body !== undefined) headers['content-length'] = Buffer.byteLength(o.body);
    const req = http.request(
      { host: '127.0.0.1', port: o.port, path: o.path ?? '/', method: o.method ?? 'GET', headers, agent: o.agent ?? false, ...(o.localAddress ? { localAddress: o.localAddress } : {}) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(o.timeoutMs ?? 10_000, () => req.destroy(new Error(`${o.method ?? 'GET'} ${o.path ?? '/'}: no answer within ${o.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Runs `fn` over `items` with at most `concurrency` in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], concurrency: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return out;
}

/** Every value of a header in a backend-recorded request (case-insensitive), one per line received. */
export function receivedAll(req: ReceivedRequest, name: string): string[] {
  const lower = name.toLowerCase();
  const out: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === lower) out.push(req.rawHeaders[i + 1]!);
  return out;
}

/** Every value of a response header, one per line received. */
export function replyAll(reply: Reply, name: string): string[] {
  const lower = name.toLowerCase();
  const out: string[] = [];
  for (let i = 0; i < reply.rawHeaders.length; i += 2) if (reply.rawHeaders[i]!.toLowerCase() === lower) out.push(reply.rawHeaders[i + 1]!);
  return out;
}

/** The names of the Access-Control-* headers in a response. */
export function corsHeaderNames(reply: Reply): string[] {
  const out: string[] = [];
  for (let i = 0; i < reply.rawHeaders.length; i += 2) if (/^access-control-/i.test(reply.rawHeaders[i]!)) out.push(reply.rawHeaders[i]!);
  return out;
}

/** The requests recorded by any of `backends` that carry `X-Test-Seq: seq`, with the backend's index. */
export function findBySeq(backends: readonly Backend[], seq: string): Array<{ backend: number; req: ReceivedRequest }> {
  const out: Array<{ backend: number; req: ReceivedRequest }> = [];
  backends.forEach((b, backend) => {
    for (const req of b.requests) if (req.headers['x-test-seq'] === seq) out.push({ backend, req });
  });
  return out;
}

/** Waits (bounded) until /status shows `count` ready workers, so every worker takes connections. */
export async function waitWorkersReady(adminPort: number, count: number): Promise<void> {
  await waitForStatus(adminPort, `${count} ready workers`, (s) => workersReady(s, count), 15_000);
}

export interface JwksServer {
  url: string;
  /** GETs of the JWKS document so far. */
  fetches: number;
  /** What the server hands out from now on. */
  document: unknown;
  close(): Promise<void>;
}

/** Serves `document` as JSON at /.well-known/jwks.json on a free loopback port. */
export async function startJwksServer(document: unknown): Promise<JwksServer> {
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    jwksServer.fetches++;
    const body = JSON.stringify(jwksServer.document);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const jwksServer: JwksServer = {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    fetches: 0,
    document,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return jwksServer;
}

/** GET /metrics with the admin token; throws unless 200. */
export async function metricsText(adminPort: number): Promise<string> {
  const res = await admin(adminPort, '/metrics');
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${res.body}`);
  return res.body;
}

/**
 * The value of the sample of `name` whose labels include all of `labels`
 * (summed if several match), or undefined when no sample matches.
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const open = line.indexOf('{');
    const labelText = open >= 0 && open < line.indexOf(' ') ? line.slice(open + 1, line.lastIndexOf('}')) : '';
    const have = new Map<string, string>();
    for (const m of labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have.set(m[1]!, m[2]!);
    if (!Object.entries(labels).every(([k, v]) => have.get(k) === v)) continue;
    total = (total ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** The JSON log lines in `output` (non-JSON lines skipped). */
export function logLines(output: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line cut by the output cap
    }
  }
  return out;
}

/**
 * Diagnostics for a rate-limit test's miss: what an exact token bucket
 * (`rate` a second, `burst`) would admit for requests sent at `sentAt` (ms,
 * ascending), and the longest pause between two. A machine so overloaded that
 * the load pauses for longer than burst / rate loses tokens whatever the
 * limiter does; this tells that case apart from a limiter that counts wrong.
 */
export function idealBucket(sentAt: readonly number[], rate: number, burst: number): { admitted: number; longestPauseMs: number } {
  let tokens = burst;
  let last = sentAt[0] ?? 0;
  let admitted = 0;
  let longestPauseMs = 0;
  for (const t of sentAt) {
    longestPauseMs = Math.max(longestPauseMs, t - last);
    tokens = Math.min(burst, tokens + ((t - last) * rate) / 1000);
    last = t;
    if (tokens >= 1) {
      tokens -= 1;
      admitted++;
    }
  }
  return { admitted, longestPauseMs: Math.round(longestPauseMs) };
}

/**
 * The reference for a rate-limit test under load: the limiter decided each
 * request somewhere between the client sending it and the answer arriving,
 * so an exact bucket is run over both ends (a client paused shows as a gap in
 * both, a proxy paused as answers bunched after the pause) and the count a
 * correct limiter admits is taken to lie between the two. On a quiet machine
 * the two agree with burst + rate x T; a limiter counting per worker or not
 * refilling is far outside both.
 */
export function idealBucketRange(
  sentAt: readonly number[],
  answeredAt: readonly number[],
  rate: number,
  burst: number,
): { low: number; high: number; longestPauseMs: number; windowMs: number } {
  const ascending = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);
  const sent = ascending(sentAt);
  const answered = ascending(answeredAt);
  const bySent = idealBucket(sent, rate, burst);
  const byAnswer = idealBucket(answered, rate, burst);
  return {
    low: Math.min(bySent.admitted, byAnswer.admitted),
    high: Math.max(bySent.admitted, byAnswer.admitted),
    longestPauseMs: Math.max(bySent.longestPauseMs, byAnswer.longestPauseMs),
    // Every decision fell between the first send and the last answer.
    // (From the sorted copies: spreading tens of thousands of times into Math.max overflows the stack.)
    windowMs: answered[answered.length - 1]! - sent[0]!,
  };
}
