// Many distinct clients for balancing tests: client i gets its own loopback
// source address (127.1.x.y; Linux routes all of 127.0.0.0/8 to `lo`, so any
// of them can be bound without set-up) and sends one short request on a fresh
// connection with `Connection: close`. A raw net.Socket is used instead of
// node:http because tens of thousands of one-shot requests must fit in a few
// seconds, and this needs no agent, no parser and no header objects.
import net from 'node:net';

/** Addresses per third octet: hosts .1 to .250, so no .0 or .255 ever appears. */
const HOSTS_PER_BLOCK = 250;

/** The source address of client `i` (0 <= i < 64,000): 127.1.x.y. */
export function clientAddress(i: number): string {
  if (!Number.isInteger(i) || i < 0 || i >= 256 * HOSTS_PER_BLOCK) throw new RangeError(`client index out of range: ${i}`);
  return `127.1.${Math.floor(i / HOSTS_PER_BLOCK)}.${(i % HOSTS_PER_BLOCK) + 1}`;
}

export interface ShortResponse {
  status: number;
  /** Everything after the head, as latin1 text. */
  body: string;
}

/**
 * GET `path` from 127.0.0.1:`port` with the socket bound to `localAddress`;
 * resolves when the server closes. Rejects on errors, on a timeout and on a
 * response without a status line.
 */
export function getOnce(port: number, localAddress: string, path = '/', timeoutMs = 10_000): Promise<ShortResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error(`no complete response from ${localAddress} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => socket.end(`GET ${path} HTTP/1.1\r\nHost: switchyard.test\r\nConnection: close\r\n\r\n`));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', (hadError) => {
      clearTimeout(timer);
      if (hadError) return; // 'error' rejected already
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n/.exec(text);
      const headEnd = text.indexOf('\r\n\r\n');
      if (!m || headEnd < 0) {
        reject(new Error(`bad response for ${localAddress}: ${JSON.stringify(text.slice(0, 200))}`));
        return;
      }
      resolve({ status: Number(m[1]), body: text.slice(headEnd + 4) });
    });
  });
}

/** Runs fn over 0..count-1 with at most `concurrency` calls in flight; results by index. */
export async function mapPool<R>(count: number, concurrency: number, fn: (i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(count);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return out;
}

/**
 * Which upstream answered each of `count` clients: the body of a 200 answer
 * (identity backends answer their own address), or `status <code>`, or
 * `error <code>` for a failed connection: a test compares these strings, so
 * a failure shows up as a client "moving" rather than aborting the round.
 */
export function whoServes(port: number, count: number, concurrency = 64): Promise<string[]> {
  return mapPool(count, concurrency, async (i) => {
    try {
      const res = await getOnce(port, clientAddress(i));
      return res.status === 200 ? res.body : `status ${res.status}`;
    } catch (err) {
      return `error ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
  });
}

/** How many entries of `assignment` name each key (keys with no entries count 0). */
export function countBy(assignment: readonly string[], keys: readonly string[] = []): Map<string, number> {
  const counts = new Map<string, number>(keys.map((k) => [k, 0]));
  for (const a of assignment) counts.set(a, (counts.get(a) ?? 0) + 1);
  return counts;
}

export interface Load {
  /** Stops issuing requests and resolves once every one in flight has settled. */
  stop(): Promise<{ ok: number; failed: number }>;
}

/**
 * Keeps `concurrency` one-shot GETs in flight until stop(), client addresses
 * cycling over clientAddress(0..clients-1). Failures (resets while a worker
 * dies, error statuses) are counted, not thrown.
 */
export function startLoad(port: number, concurrency: number, clients = 10_000): Load {
  let stopped = false;
  let ok = 0;
  let failed = 0;
  let next = 0;
  const lane = async (): Promise<void> => {
    while (!stopped) {
      const i = next++ % clients;
      try {
        const res = await getOnce(port, clientAddress(i));
        if (res.status === 200) ok++;
        else failed++;
      } catch {
        failed++;
      }
    }
  };
  const lanes = Promise.all(Array.from({ length: concurrency }, lane));
  return {
    async stop() {
      stopped = true;
      await lanes;
      return { ok, failed };
    },
  };
}
