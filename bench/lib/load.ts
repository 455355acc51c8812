// Load drivers: autocannon in-process (default) or wrk as a child process.
// Both report the same shape so cells are comparable whichever ran them.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { LatencyHistogram } from './histogram.js';

export interface LoadSpec {
  url: string;
  method: 'GET' | 'POST';
  body?: Buffer;
  connections: number;
  durationSec: number;
  /** Open a new TCP connection for every request (and ask the server to close). */
  newConnectionPerRequest: boolean;
}

export interface LoadResult {
  /** Completed responses (any status). */
  requests: number;
  seconds: number;
  /** 2xx responses per second: a system that fails fast can't post a big number. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Socket errors and timeouts. */
  errors: number;
  non2xx: number;
}

export type Driver = (spec: LoadSpec, tmp: string) => Promise<LoadResult>;

/** Private parts of autocannon 8's Client (lib/httpClient.js) used to reconnect. */
interface ClientInternals {
  _doRequest(...args: unknown[]): void;
  _destroyConnection(): void;
  _connect(): void;
  on(event: 'response', fn: () => void): void;
}

/**
 * Makes an autocannon client use a fresh connection per request. Its own
 * `reconnectRate` drops the response it resets on from the stats, and it always
 * writes `Connection: keep-alive` (an added `Connection: close` would make a
 * contradictory pair). Instead: after each response is counted, the next
 * request first closes the old socket (client-side close) and connects anew;
 * the new socket then sends it. Latency thus includes the connect, as with wrk.
 * Relies on autocannon 8's Client internals (lib/httpClient.js).
 */
function reconnectEachRequest(client: autocannon.Client): void {
  const c = client as unknown as ClientInternals;
  const doRequest = c._doRequest;
  let answered = false;
  c.on('response', () => {
    answered = true;
  });
  c._doRequest = function (this: ClientInternals, ...args: unknown[]) {
    if (answered) {
      answered = false;
      this._destroyConnection();
      this._connect(); // calls _doRequest again, now on the new socket
      return;
    }
    doRequest.apply(this, args);
  };
}

export const autocannonDriver: Driver = async (spec) => {
  const headers: Record<string, string> = {};
  if (spec.body) headers['content-type'] = 'application/octet-stream';
  const latency = new LatencyHistogram();
  const options: autocannon.Options = {
    url: spec.url,
    method: spec.method,
    body: spec.body,
    headers,
    connections: spec.connections,
    duration: spec.durationSec,
    setupClient: spec.newConnectionPerRequest ? reconnectEachRequest : undefined,
  };
  const r = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(options, (err, result) => (err ? reject(err) : resolve(result)));
    instance.on('response', (_client, _status, _bytes, ms) => latency.record(ms));
  });
  const requests = r['1xx'] + r['2xx'] + r['3xx'] + r['4xx'] + r['5xx'];
  return {
    requests,
    seconds: r.duration,
    rps: (requests - r.non2xx) / r.duration,
    p50Ms: latency.percentile(50),
    p99Ms: latency.percentile(99),
    errors: r.errors,
    non2xx: r.non2xx,
  };
};

/** wrk's durations: "812.00us", "1.23ms", "2.01s", "1.00m". */
function wrkMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) return NaN;
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(m[1]) * scale;
}

export function parseWrk(out: string, durationSec: number): LoadResult {
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? 0);
  const requests = num(/(\d+) requests in/);
  const seconds = wrkMs(/requests in ([\d.]+\w+)/.exec(out)?.[1] ?? '') / 1000 || durationSec;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests,
    seconds,
    rps: (requests - num(/Non-2xx or 3xx responses: (\d+)/)) / seconds,
    p50Ms: wrkMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99Ms: wrkMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    errors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
  };
}

/**
 * wrk with one thread (the machine has 2 cores, shared with the proxy and
 * backends), two from 1,000 connections, where one thread's event loop would
 * become the bottleneck and measure wrk instead of the proxy. For a new connection per request it sends `Connection: close`:
 * wrk reconnects whenever a response is not keep-alive.
 */
export function wrkDriver(wrk: string): Driver {
  return (spec, tmp) => {
    const threads = spec.connections >= 1000 ? 2 : 1;
    const args = [`-t${threads}`, `-c${spec.connections}`, `-d${spec.durationSec}s`, '--latency', '--timeout', '10s'];
    if (spec.newConnectionPerRequest) args.push('-H', 'Connection: close');
    if (spec.method !== 'GET' || spec.body) {
      const lua = join(tmp, `wrk-${spec.method}-${spec.body?.length ?? 0}.lua`);
      const body = spec.body ? `wrk.body = string.rep("x", ${spec.body.length})\n` : '';
      writeFileSync(
        lua,
        `wrk.method = "${spec.method}"\n${body}wrk.headers["Content-Type"] = "application/octet-stream"\n`,
      );
      args.push('-s', lua);
    }
    args.push(spec.url);
    return new Promise((resolve, reject) => {
      execFile(wrk, args, { encoding: 'utf8', maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`wrk failed: ${err.message}\n${stderr}`));
        else resolve(parseWrk(stdout, spec.durationSec));
      });
    });
  };
}
