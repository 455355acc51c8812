// Runs fuzz cases against the real proxy (dist/cli.js, 2 workers) in front of
// the strict backend, a few cases at a time, and judges each batch once its
// forwards have had time to arrive. Route layout: /admin needs an API key,
// `/` is open, both on the same upstream, so a smuggled or misrouted request
// shows up as a keyless /admin request at the backend.

import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { API_KEY, MARKER_RE, connBytes, generateCase, type ClientConn, type FuzzCase } from './generate.js';
import { judge, targetMarker, type Finding, type Observation } from './oracle.js';
import { parseResponse } from '../helpers/raw-client.js';
import { startStrictBackend, type ForwardedRequest, type IllFramed, type StrictBackend } from './strict-backend.js';

/** Longer than the proxy's own headers and request timeouts below, so a "hang" outlived them. */
const CASE_DEADLINE_MS = 6000;

export interface Target {
  sy: Switchyard;
  backend: StrictBackend;
  stop(): Promise<void>;
}

/** One worker puts every client on the same upstream pool: the likeliest place for crossings. */
export async function startTarget(workers = 2): Promise<Target> {
  const backend = await startStrictBackend();
  const sy = await startSwitchyard({
    workers,
    // Errors only: the log is capped, and a worker's dying words must fit in it.
    logging: { level: 'error', access: false },
    limits: { headers_timeout: '2s', request_timeout: '3s', max_body_bytes: 1048576 },
    upstreams: {
      app: { servers: [{ address: `127.0.0.1:${backend.port}` }], retries: 0, timeouts: { connect: '1s', response: '3s', idle: '30s' } },
    },
    routes: [
      { match: { host: '*', path: '/admin' }, upstream: 'app', auth: { api_key: { keys: [{ name: 'fuzz', key: API_KEY }] } } },
      { match: { host: '*', path: '/' }, upstream: 'app' },
    ],
  });
  return {
    sy,
    backend,
    async stop() {
      await sy.stop();
      await backend.close();
    },
  };
}

/** Writes one client connection's bytes (cut at its split points) and reads what comes back. */
async function drive(port: number, conn: ClientConn): Promise<Observation> {
  const bytes = connBytes(conn);
  // Responses expected if the proxy keeps going: up to the first message that ends the connection.
  let expected = conn.messages.findIndex((m) => m.cls === 'terminal' || m.cls === 'frame-error');
  expected = expected < 0 ? conn.messages.filter((m) => m.cls !== 'smuggled').length : expected + 1;
  const obs: Observation = { responses: [], tunnel: Buffer.alloc(0), closed: false, timedOut: false };
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
  socket.on('error', () => {});
  let buf = Buffer.alloc(0);
  let tunnelled = false;
  // After an answer with Connection: close, a client reads nothing more, so
  // later bytes (say a body sent on an answer to a malformed HEAD) desync nothing.
  let lastResponse = false;
  let wake: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    if (tunnelled) obs.tunnel = Buffer.concat([obs.tunnel, d]);
    else buf = Buffer.concat([buf, d]);
    wake?.();
  });
  socket.on('close', () => {
    obs.closed = true;
    wake?.();
  });
  let deadline = Date.now() + CASE_DEADLINE_MS;
  const done = (): boolean => {
    for (;;) {
      if (tunnelled || lastResponse || obs.malformed !== undefined) break;
      let parsed: ReturnType<typeof parseResponse>;
      try {
        parsed = parseResponse(buf, conn.messages[obs.responses.length]?.method ?? 'GET', obs.closed);
      } catch (err) {
        obs.malformed = `${(err as Error).message}; bytes ${JSON.stringify(buf.toString('latin1').slice(0, 300))}`;
        break;
      }
      if (parsed === 'need-more') break;
      const raw = buf.subarray(0, parsed.consumed);
      buf = buf.subarray(parsed.consumed);
      const res = parsed.response;
      if (res.status >= 100 && res.status < 200 && res.status !== 101) continue;
      obs.responses.push({ status: res.status, raw, headers: res.rawHeaders, body: res.body, complete: res.complete });
      lastResponse = res.rawHeaders.some(([n, v]) => n.toLowerCase() === 'connection' && /(^|,)\s*close\s*(,|$)/i.test(v));
      if (res.status === 101) {
        tunnelled = true;
        obs.tunnel = buf;
        // The echo of the tunnel data is a courtesy of the backend: wait briefly.
        deadline = Math.min(deadline, Date.now() + 1000);
      }
    }
    if (obs.closed || lastResponse || obs.malformed !== undefined) return true;
    // After a 101 the rest of the bytes are tunnel data: wait for their echo.
    if (tunnelled) {
      const at = obs.responses.length;
      const rest = conn.messages.slice(at).reduce((s, m) => s + m.bytes.length, 0);
      return obs.tunnel.length >= rest;
    }
    return obs.responses.length >= expected;
  };
  await new Promise<void>((resolve) => socket.once('connect', resolve).once('error', () => resolve()));
  let from = 0;
  const end = conn.abortAt ?? bytes.length;
  for (const at of [...conn.splits.filter((x) => x < end), end]) {
    if (socket.destroyed) break;
    socket.write(bytes.subarray(from, at));
    from = at;
    if (at < end) await sleep(conn.pause);
  }
  if (conn.abortAt !== undefined) {
    // Let the cut bytes reach the proxy, then reset: what was cut is not a request.
    await sleep(20);
    socket.resetAndDestroy();
    obs.closed = true;
    return obs;
  }
  if (conn.halfClose && !socket.destroyed) socket.end();
  while (!done()) {
    const left = deadline - Date.now();
    if (left <= 0) {
      // After a 101 a missing echo is the tunnel's business, not a hang of the HTTP side.
      obs.timedOut = !tunnelled;
      break;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    wake = undefined;
  }
  socket.destroy();
  return obs;
}

export async function runCase(port: number, fc: FuzzCase): Promise<Observation[]> {
  const out: Observation[] = [];
  // A second connection starts only after the first: it checks that nothing of
  // the first one's messages (on a pooled upstream connection) reaches it.
  for (const conn of fc.conns) out.push(await drive(port, conn));
  return out;
}

export interface RunOptions {
  seed: number;
  /** Case indexes to run. */
  cases: Iterable<number>;
  /** Cases in flight at once. */
  lanes?: number;
  batch?: number;
  onFinding?: (f: Finding, fc: FuzzCase) => void;
  onProgress?: (done: number) => void;
}

export interface RunResult {
  cases: number;
  findings: Finding[];
  /** Requests the backend received: a fuzzer that forwards nothing proves nothing. */
  forwarded: number;
  /** Client-side responses by status ("101", "400", ...) and closes without one. */
  statuses: Map<string, number>;
}

const caseOf = (marker: string): number => Number(marker.split('.')[1]);

/**
 * Runs the cases in batches; after each, waits until the backend is quiet,
 * then judges every case of the batch (and late forwards of earlier ones,
 * from their regenerated bytes) and checks that no worker exited.
 */
export async function runCases(target: Target, o: RunOptions): Promise<RunResult> {
  const all = [...o.cases];
  const lanes = o.lanes ?? 4;
  const batchSize = o.batch ?? 40;
  const findings: Finding[] = [];
  const { backend, sy } = target;
  const report = (f: Finding, fc: FuzzCase): void => {
    findings.push(f);
    o.onFinding?.(f, fc);
  };
  let workers = sy.workerPids().sort().join(',');
  const workerCount = sy.workerPids().length;
  let outputSeen = sy.output().length;
  let done = 0;
  let forwardedCount = 0;
  const statuses = new Map<string, number>();
  const tally = (key: string): void => void statuses.set(key, (statuses.get(key) ?? 0) + 1);
  for (let b = 0; b < all.length; b += batchSize) {
    const batch = all.slice(b, b + batchSize).map((i) => generateCase(o.seed, i));
    const observations = new Map<number, Observation[]>();
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(lanes, batch.length) }, async () => {
        while (next < batch.length) {
          const fc = batch[next++]!;
          observations.set(fc.index, await runCase(sy.port, fc));
        }
      }),
    );
    // Forwards of a batch may trail its last response slightly.
    let count = -1;
    for (let i = 0; i < 20 && count !== backend.requests.length + backend.illFramed.length; i++) {
      count = backend.requests.length + backend.illFramed.length;
      await sleep(25);
    }
    const forwarded = new Map<number, ForwardedRequest[]>();
    const illFramed = new Map<number, IllFramed[]>();
    const stray: ForwardedRequest[] = [];
    for (const obs of observations.values()) {
      for (const conn of obs) {
        for (const res of conn.responses) tally(String(res.status));
        if (conn.responses.length === 0) tally('closed-without-answer');
      }
    }
    forwardedCount += backend.requests.length;
    for (const req of backend.requests.splice(0)) {
      const marker = targetMarker(req);
      if (marker === undefined || !marker.startsWith(`FZ${o.seed}.`)) stray.push(req);
      else forwarded.set(caseOf(marker), [...(forwarded.get(caseOf(marker)) ?? []), req]);
    }
    for (const bad of backend.illFramed.splice(0)) {
      const marker = bad.bytes.toString('latin1').match(MARKER_RE)?.[0];
      const index = marker === undefined ? -1 : caseOf(marker);
      illFramed.set(index, [...(illFramed.get(index) ?? []), bad]);
    }
    const inBatch = new Set(batch.map((fc) => fc.index));
    for (const fc of batch) for (const f of judge(fc, observations.get(fc.index), forwarded.get(fc.index) ?? [], illFramed.get(fc.index) ?? [])) report(f, fc);
    for (const index of new Set([...forwarded.keys(), ...illFramed.keys()])) {
      if (inBatch.has(index)) continue;
      // A late forward of an earlier case, judged from its regenerated bytes; -1: no marker at all.
      const fc = index < 0 ? { seed: o.seed, index: -1, conns: [] } : generateCase(o.seed, index);
      for (const f of judge(fc, undefined, forwarded.get(index) ?? [], illFramed.get(index) ?? [])) report(f, fc);
    }
    const unknown: FuzzCase = { seed: o.seed, index: -1, conns: [] };
    for (const f of judge(unknown, undefined, stray, [])) report(f, unknown);
    if (sy.workerPids().sort().join(',') !== workers) {
      const culprit = await isolateCrash(target, batch, workerCount);
      const what = culprit === undefined ? `during cases ${batch[0]!.index}..${batch.at(-1)!.index} (not reproduced by any one of them alone)` : 'running this case alone';
      const f: Finding = { seed: o.seed, index: (culprit ?? batch[0]!).index, kind: 'worker-exit', detail: `a worker exited ${what}; proxy output: ${sy.output().slice(outputSeen, outputSeen + 3000)}` };
      report(f, culprit ?? batch[0]!);
      await workersBack(sy, workerCount);
      workers = sy.workerPids().sort().join(',');
    }
    outputSeen = sy.output().length;
    done += batch.length;
    o.onProgress?.(done);
  }
  return { cases: done, findings, forwarded: forwardedCount, statuses };
}

/** Waits (bounded) until the primary has respawned its workers. */
async function workersBack(sy: Switchyard, count: number): Promise<void> {
  for (let i = 0; i < 100 && sy.workerPids().length < count; i++) await sleep(100);
  await sleep(300);
}

/** Replays a batch one case at a time to find the case that kills a worker. */
async function isolateCrash(target: Target, batch: FuzzCase[], count: number): Promise<FuzzCase | undefined> {
  await workersBack(target.sy, count);
  for (const fc of batch) {
    const before = target.sy.workerPids().sort().join(',');
    await runCase(target.sy.port, fc);
    await sleep(200);
    if (target.sy.workerPids().sort().join(',') !== before) return fc;
  }
  return undefined;
}

/** One finding with everything needed to replay it by hand. */
export function formatFinding(f: Finding, fc: FuzzCase): string {
  const lines = [`FINDING seed=${f.seed} case=${f.index} ${f.kind}: ${f.detail}`];
  if (f.forwarded !== undefined) lines.push(`  backend received: ${JSON.stringify(f.forwarded)}`);
  fc.conns.forEach((c, i) => {
    lines.push(`  connection ${i} bytes${c.splits.length ? ` (written in pieces cut at ${c.splits.join(',')})` : ''}: ${JSON.stringify(connBytes(c).toString('latin1'))}`);
    for (const m of c.messages) lines.push(`    ${m.marker} ${m.cls}${m.keyed ? ' keyed' : ''}: ${m.what.join('; ')}`);
  });
  lines.push(`  replay: npm run fuzz -- --seed ${f.seed} --case ${f.index}`);
  return lines.join('\n');
}
