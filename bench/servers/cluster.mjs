// @ts-check
// Shared node:cluster wrapper for the Node peers, candidates and fallback
// backend. These processes are measured, so they are plain JavaScript run by
// bare `node`: a TypeScript loader would add its own memory and CPU to them.
import cluster from 'node:cluster';

/**
 * Forks `workers` workers that each run `startWorker()`. SIGTERM to the primary
 * stops every worker and then the primary; a worker dying on its own is fatal,
 * so a crash shows up as a failed bench cell instead of silently fewer workers.
 * @param {number} workers
 * @param {() => void} startWorker
 */
export function runCluster(workers, startWorker) {
  if (!cluster.isPrimary) {
    process.on('SIGTERM', () => process.exit(0));
    startWorker();
    return;
  }
  let stopping = false;
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    console.error(`worker ${worker.process.pid} died (code ${code}, signal ${signal})`);
    process.exit(1);
  });
  process.on('SIGTERM', () => {
    stopping = true;
    const alive = Object.values(cluster.workers ?? {});
    if (alive.length === 0) process.exit(0);
    for (const w of alive) w?.process.kill('SIGTERM');
  });
}

/**
 * Hop-by-hop headers (RFC 9110 7.6.1) that a proxy must not forward.
 * @type {ReadonlySet<string>}
 */
export const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authorization', 'proxy-authenticate',
]);

/**
 * Copies a header object without hop-by-hop headers (nor those named in Connection).
 * @param {import('node:http').IncomingHttpHeaders} headers
 * @returns {Record<string, string | string[]>}
 */
export function endToEnd(headers) {
  /** @type {Record<string, string | string[]>} */
  const out = {};
  const named = typeof headers.connection === 'string'
    ? headers.connection.toLowerCase().split(',').map((s) => s.trim())
    : [];
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || named.includes(k)) continue;
    out[k] = v;
  }
  return out;
}

/**
 * Parses `PORT BACKEND[,BACKEND...]` from argv (backends as host:port).
 * @returns {{ port: number, backends: { host: string, port: number }[] }}
 */
export function proxyArgs() {
  const [port, list] = process.argv.slice(2);
  if (!port || !list) {
    console.error('usage: node <script> PORT HOST:PORT[,HOST:PORT...]');
    process.exit(2);
  }
  const backends = list.split(',').map((a) => {
    const i = a.lastIndexOf(':');
    return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
  });
  return { port: Number(port), backends };
}
