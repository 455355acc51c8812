// The systems under test. Each starts as a 2-worker (or 2-thread) setup on a
// fresh loopback port in front of the two backends and is stopped after its
// cells; `pid` is the root of the process tree whose CPU and memory are billed
// to it (none for `direct`, which is the backend itself).
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { awaitSwitchyardStatus, readyWorkerPids, switchyardStatus } from './admin.js';
import type { ProxyFront } from './front.js';
import { proxyConf, streamConf } from './nginx.js';
import { freePort } from './ports.js';
import { startProcess } from './process.js';
import { hasPackage, type Tools } from './tools.js';
import { redisServerAvailable, startRedis } from '../../test/helpers/redis.js';
import type { SchedulingPolicy } from '../../src/config/types.js';

export interface Running {
  port: number;
  /** Root of the measured process tree; undefined when nothing is measured. */
  pid?: number;
  stop(): Promise<void>;
  /** What it wrote on stderr so far (warnings worth a note). */
  stderr(): string;
  /** For a cluster whose root `pid` is the primary: its serving workers' pids now. */
  workerPids?(): Promise<number[]>;
  /** Switchyard: its admin API (GET /status, /metrics), for the soak's sampling. */
  admin?: { port: number; token: string };
  /** A query string every request must carry (the gateway variant's API key). */
  query?: string;
}

export interface StartContext {
  tmp: string;
  backends: number[];
  tools: Tools;
}

export interface SystemDef {
  name: string;
  description: string;
  /** Why it cannot run here, or undefined when it can. */
  unavailable(tools: Tools): string | undefined;
  start(ctx: StartContext): Promise<Running>;
}

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SWITCHYARD_CLI = join(REPO, 'dist/cli.js');
const READY_PATH = '/100b';
const ADMIN_TOKEN = 'bench';

const script = (rel: string): string => fileURLToPath(new URL(`../${rel}`, import.meta.url));

/** A Node script taking `PORT HOST:PORT,HOST:PORT [CERT KEY]` (bench/servers, bench/candidates); with `tlsFiles` it serves TLS. */
function nodeScript(name: string, description: string, rel: string, pkg?: string, tlsFiles?: [cert: string, key: string]): SystemDef {
  return {
    name,
    description,
    unavailable: () => (!pkg || hasPackage(pkg) ? undefined : `npm package ${pkg} is not installed`),
    async start({ backends }) {
      const port = await freePort();
      const list = backends.map((p) => `127.0.0.1:${p}`).join(',');
      const args = [script(rel), String(port), list, ...(tlsFiles ?? [])];
      const proc = await startProcess(name, process.execPath, args, { port, path: READY_PATH, tls: tlsFiles !== undefined });
      return { port, pid: proc.pid, stop: proc.stop, stderr: proc.stderr };
    },
  };
}

/** The config Switchyard is run with (format: /work/shared/design.md, "Config"). */
export function switchyardYaml(
  port: number,
  adminPort: number,
  backends: number[],
  balance: string,
  scheduling: SchedulingPolicy = 'kernel',
  gateway: Gateway = false,
  redisUrl?: string,
  front: ProxyFront = {},
): string {
  const servers = backends.map((p) => `      - { address: 127.0.0.1:${p}, weight: 1 }`).join('\n');
  const http2 = front.http2 ? ', http2: true' : '';
  // Switchyard's defaults for the rest: TLS 1.2 and 1.3, its cipher list, session tickets from the primary.
  const tls = front.tls ? `, tls: { certificates: [{ cert: "${front.tls.cert}", key: "${front.tls.key}" }] }` : '';
  return `workers: 2
scheduling: ${scheduling}
listen:
  - { host: 127.0.0.1, port: ${port}, backlog: 16384${http2}${tls} }
admin: { host: 127.0.0.1, port: ${adminPort}, token: ${ADMIN_TOKEN} }
logging: { level: warn, access: false }
shutdown_timeout: 2s
${redisUrl === undefined ? '' : `redis: { url: "${redisUrl}" }\n`}upstreams:
  app:
    balance: ${balance}
    servers:
${servers}
routes:
  - match: { host: "*", path: / }
    upstream: app
${gateway ? gatewayRoute(gateway) : ''}`;
}

/** No gateway checks, or the gateway route with its rate limit in this instance's shared memory or in Redis. */
type Gateway = false | 'instance' | 'global';

/** The gateway variant's route checks: an API key (query, so wrk needs no script), a scope, a rate limit that never refuses. */
const GATEWAY_KEY = 'bench-gateway-key-0123456789';
const gatewayRoute = (scope: 'instance' | 'global'): string => `    auth:
      api_key: { keys: [{ name: bench, key: "${GATEWAY_KEY}", scopes: [bench] }], query: key }
      forward: { subject: X-Client }
    authorize: { scopes: [bench] }
    rate_limit: { rate: 1000000/s, burst: 1000000, key: api-key, scope: ${scope} }
`;

/**
 * A before/after comparison in one run: SWITCHYARD_BASELINE_CLI=/path/to/other/dist/cli.js
 * adds `switchyard-baseline`, the same config on that build.
 */
const BASELINE_CLI = process.env.SWITCHYARD_BASELINE_CLI;

function switchyard(name: string, balance: string, scheduling: SchedulingPolicy = 'kernel', gateway: Gateway = false, cli = SWITCHYARD_CLI): SystemDef {
  const checks = gateway === 'global' ? ', route with API-key auth, scope check and a global rate limit (redis-server on loopback)' : gateway ? ', route with API-key auth, scope check and rate limit' : '';
  return {
    name,
    description: `Switchyard${cli === SWITCHYARD_CLI ? '' : ` (${cli})`}, 2 workers, balance ${balance}, scheduling ${scheduling}${checks}`,
    unavailable: () =>
      !existsSync(cli)
        ? `${cli} missing (run npm run build)`
        : gateway === 'global' && !redisServerAvailable()
          ? 'redis-server not installed (Debian package redis-server)'
          : undefined,
    async start({ tmp, backends }) {
      const port = await freePort();
      const adminPort = await freePort();
      // Its CPU is not billed to Switchyard's tree: with leases it is a call per 50,000 requests here.
      const redis = gateway === 'global' ? await startRedis() : undefined;
      const file = join(tmp, `${name}.yaml`);
      writeFileSync(file, switchyardYaml(port, adminPort, backends, balance, scheduling, gateway, redis?.url));
      const ready = gateway ? `${READY_PATH}?key=${GATEWAY_KEY}` : READY_PATH;
      let proc: Awaited<ReturnType<typeof startProcess>>;
      try {
        proc = await startProcess(name, process.execPath, [cli, '--config', file], { port, path: ready }, REPO);
      } catch (err) {
        await redis?.stop();
        throw err;
      }
      const stop = async (): Promise<void> => {
        await proc.stop();
        await redis?.stop();
      };
      try {
        // A variant that silently ran the other policy would measure nothing.
        const status = await awaitSwitchyardStatus(adminPort, ADMIN_TOKEN);
        if (status.scheduling !== scheduling) throw new Error(`/status says scheduling ${status.scheduling}, configured ${scheduling}`);
      } catch (err) {
        await stop();
        throw err;
      }
      return {
        port,
        pid: proc.pid,
        stop,
        stderr: proc.stderr,
        workerPids: async () => readyWorkerPids(await switchyardStatus(adminPort, ADMIN_TOKEN)),
        admin: { port: adminPort, token: ADMIN_TOKEN },
        ...(gateway ? { query: `key=${GATEWAY_KEY}` } : {}),
      };
    },
  };
}

/**
 * HAProxy under test: nbthread 2, mode http with http-reuse always (or mode
 * tcp for the L4 bench). `front` adds TLS (`ssl crt`, HAProxy's default protocols and
 * ciphers; its session tickets and cache are one process's, shared by both
 * threads) and/or HTTP/2 (ALPN h2 over TLS, `proto h2` without);
 * `readyPort` is an extra plain HTTP/1.1 bind for the start-up check.
 */
export function haproxyConf(port: number, backends: number[], front: ProxyFront = {}, readyPort?: number, mode: 'http' | 'tcp' = 'http'): string {
  const servers = backends.map((p, i) => `  server s${i} 127.0.0.1:${p}`).join('\n');
  const bind = front.tls ? ` ssl crt ${front.tls.combined} alpn ${front.http2 ? 'h2,http/1.1' : 'http/1.1'}` : front.http2 ? ' proto h2' : '';
  return `global
  nbthread 2
  # 8,000 clients plus their server sockets; HAProxy asks for 2 fds per connection.
  maxconn 9500
defaults
  mode ${mode}
${mode === 'http' ? '  http-reuse always\n' : ''}  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:${port}${bind}
${readyPort === undefined ? '' : `  bind 127.0.0.1:${readyPort}\n`}  default_backend be
backend be
  balance roundrobin
${servers}
`;
}

/**
 * Switchyard, nginx and HAProxy presenting the same `front` (TLS, HTTP/2) to
 * the client, each otherwise as in SYSTEMS: the TLS and HTTP/2 benches'
 * systems. Start-up checks go over TLS where there is TLS; nginx and HAProxy
 * get an extra plain port for it under h2c (Switchyard's h2c listener also
 * answers HTTP/1.1).
 */
export function frontSystems(front: ProxyFront): SystemDef[] {
  const tls = front.tls !== undefined;
  const h2c = front.http2 === true && !tls;
  const switchyardFront = (name: string, cli: string): SystemDef => ({
    name,
    description: `Switchyard${cli === SWITCHYARD_CLI ? '' : ` (${cli})`}, 2 workers, balance round-robin, scheduling kernel${tls ? ', TLS listener' : ''}${front.http2 ? ', http2' : ''}`,
    unavailable: () => (existsSync(cli) ? undefined : `${cli} missing (run npm run build)`),
    async start({ tmp, backends }) {
      const port = await freePort();
      const adminPort = await freePort();
      const file = join(tmp, `${name}-front.yaml`);
      writeFileSync(file, switchyardYaml(port, adminPort, backends, 'round-robin', 'kernel', false, undefined, front));
      const proc = await startProcess(name, process.execPath, [cli, '--config', file], { port, path: READY_PATH, tls }, REPO);
      return {
        port,
        pid: proc.pid,
        stop: proc.stop,
        stderr: proc.stderr,
        workerPids: async () => readyWorkerPids(await switchyardStatus(adminPort, ADMIN_TOKEN)),
      };
    },
  });
  return [
    switchyardFront('switchyard', SWITCHYARD_CLI),
    ...(BASELINE_CLI === undefined ? [] : [switchyardFront('switchyard-baseline', BASELINE_CLI)]),
    {
      name: 'nginx',
      description: `nginx proxy, worker_processes 2, upstream keepalive 64${tls ? ', ssl' : ''}${front.http2 ? ', http2' : ''}`,
      unavailable: (t) => (t.nginx ? undefined : 'nginx not installed (bench/install-peers.sh)'),
      async start({ tmp, backends, tools }) {
        const port = await freePort();
        const readyPort = h2c ? await freePort() : undefined;
        const prefix = join(tmp, 'nginx-front');
        const file = join(tmp, 'nginx-front.conf');
        writeFileSync(file, proxyConf(prefix, port, backends, front, readyPort));
        const args = ['-p', prefix, '-e', join(prefix, 'logs/error.log'), '-c', file];
        const proc = await startProcess('nginx', tools.nginx!, args, { port: readyPort ?? port, path: READY_PATH, tls: tls && readyPort === undefined });
        return { port, pid: proc.pid, stop: proc.stop, stderr: proc.stderr };
      },
    },
    {
      name: 'haproxy',
      description: `HAProxy, nbthread 2, mode http, http-reuse always${tls ? ', ssl' : ''}${front.http2 ? ', h2' : ''}`,
      unavailable: (t) => (t.haproxy ? undefined : 'haproxy not installed (bench/install-peers.sh)'),
      async start({ tmp, backends, tools }) {
        const port = await freePort();
        const readyPort = h2c ? await freePort() : undefined;
        const file = join(tmp, 'haproxy-front.cfg');
        writeFileSync(file, haproxyConf(port, backends, front, readyPort));
        const proc = await startProcess('haproxy', tools.haproxy!, ['-db', '-f', file], { port: readyPort ?? port, path: READY_PATH, tls: tls && readyPort === undefined });
        return { port, pid: proc.pid, stop: proc.stop, stderr: proc.stderr };
      },
    },
    // Over TLS with HTTP/1.1: the least any Node front end pays per TLS handshake and request (no upstream at all).
    ...(front.tls === undefined || front.http2 ? [] : [nodeScript('node-floor', 'reference, not a proxy: tls.createServer answering 100 B itself, 2-worker node:cluster (SCHED_NONE)', 'servers/node-floor.mjs', undefined, [front.tls.cert, front.tls.key])]),
  ];
}

export const SYSTEMS: SystemDef[] = [
  {
    name: 'direct',
    description: 'straight to backend 0 (the ceiling; nothing measured)',
    unavailable: () => undefined,
    start: async ({ backends }) => ({ port: backends[0]!, stop: async () => {}, stderr: () => '' }),
  },
  switchyard('switchyard', 'round-robin'),
  switchyard('switchyard-source', 'source'),
  switchyard('switchyard-least-conn', 'least-conn'),
  switchyard('switchyard-sched-rr', 'round-robin', 'round-robin'),
  switchyard('switchyard-gateway', 'round-robin', 'kernel', 'instance'),
  switchyard('switchyard-gateway-global', 'round-robin', 'kernel', 'global'),
  ...(BASELINE_CLI === undefined ? [] : [switchyard('switchyard-baseline', 'round-robin', 'kernel', false, BASELINE_CLI)]),
  {
    name: 'nginx',
    description: 'nginx proxy, worker_processes 2, upstream keepalive 64',
    unavailable: (t) => (t.nginx ? undefined : 'nginx not installed (bench/install-peers.sh)'),
    async start({ tmp, backends, tools }) {
      const port = await freePort();
      const prefix = join(tmp, 'nginx-proxy');
      const file = join(tmp, 'nginx-proxy.conf');
      writeFileSync(file, proxyConf(prefix, port, backends));
      const args = ['-p', prefix, '-e', join(prefix, 'logs/error.log'), '-c', file];
      const proc = await startProcess('nginx', tools.nginx!, args, { port, path: READY_PATH });
      return { port, pid: proc.pid, stop: proc.stop, stderr: proc.stderr };
    },
  },
  {
    name: 'haproxy',
    description: 'HAProxy, nbthread 2, mode http, http-reuse always',
    unavailable: (t) => (t.haproxy ? undefined : 'haproxy not installed (bench/install-peers.sh)'),
    start: (ctx) => startHaproxy('haproxy', 'http', ctx),
  },
  nodeScript('http-proxy', 'node-http-proxy, 2-worker node:cluster, keep-alive agent', 'servers/http-proxy.mjs', 'http-proxy'),
  nodeScript('fastify', '@fastify/http-proxy on fastify 5, 2-worker node:cluster', 'servers/fastify-proxy.mjs', '@fastify/http-proxy'),
  nodeScript('node-floor', 'reference, not a proxy: llhttp over net answering 100 B itself, 2-worker node:cluster (SCHED_NONE)', 'servers/node-floor.mjs'),
  nodeScript('node-proxy-floor', 'reference: the least a Node proxy does (llhttp over net both ways, one backend connection per client, no checks), 2-worker node:cluster', 'servers/node-proxy-floor.mjs'),
  nodeScript('cand-http-agent', 'candidate: node:http + http.request, keep-alive agent', 'candidates/http-agent.mjs'),
  nodeScript('cand-undici', 'candidate: node:http + undici Pool.dispatch', 'candidates/undici-pool.mjs', 'undici'),
];

async function startHaproxy(name: string, mode: 'http' | 'tcp', { tmp, backends, tools }: StartContext): Promise<Running> {
  const port = await freePort();
  const file = join(tmp, `${name}.cfg`);
  writeFileSync(file, haproxyConf(port, backends, {}, undefined, mode));
  // -db: foreground, no master process; the one process holds both threads.
  const proc = await startProcess(name, tools.haproxy!, ['-db', '-f', file], { port, path: READY_PATH });
  return { port, pid: proc.pid, stop: proc.stop, stderr: proc.stderr };
}

/** Switchyard as an L4 balancer: one mode: tcp listener, round-robin over the backends. */
export function switchyardTcpYaml(port: number, adminPort: number, backends: number[]): string {
  return `workers: 2
listen:
  - { host: 127.0.0.1, port: ${port}, mode: tcp, upstream: app, backlog: 16384 }
admin: { host: 127.0.0.1, port: ${adminPort}, token: ${ADMIN_TOKEN} }
logging: { level: warn, access: false }
shutdown_timeout: 2s
upstreams:
  app: { balance: round-robin, servers: [${backends.map((p) => `{ address: "127.0.0.1:${p}" }`).join(', ')}] }
routes: [{ match: { path: / }, upstream: app }]
`;
}

/** The L4 systems of bench/l4-tcp.ts: each relays TCP to the backends, 2 workers or threads. */
export const L4_SYSTEMS: SystemDef[] = [
  {
    name: 'switchyard',
    description: 'Switchyard mode: tcp, 2 workers, round-robin',
    unavailable: () => (existsSync(SWITCHYARD_CLI) ? undefined : `${SWITCHYARD_CLI} missing (run npm run build)`),
    async start({ tmp, backends }) {
      const port = await freePort();
      const file = join(tmp, 'switchyard-tcp.yaml');
      writeFileSync(file, switchyardTcpYaml(port, await freePort(), backends));
      const proc = await startProcess('switchyard', process.execPath, [SWITCHYARD_CLI, '--config', file], { port, path: READY_PATH }, REPO);
      return { port, pid: proc.pid, stop: proc.stop, stderr: proc.stderr };
    },
  },
  {
    name: 'nginx-stream',
    description: 'nginx stream module, worker_processes 2',
    unavailable: (t) => (t.nginx ? undefined : 'nginx not installed (bench/install-peers.sh)'),
    async start({ tmp, backends, tools }) {
      const port = await freePort();
      const prefix = join(tmp, 'nginx-stream');
      const file = join(tmp, 'nginx-stream.conf');
      writeFileSync(file, streamConf(prefix, port, backends));
      const args = ['-p', prefix, '-e', join(prefix, 'logs/error.log'), '-c', file];
      const proc = await startProcess('nginx-stream', tools.nginx!, args, { port, path: READY_PATH });
      return { port, pid: proc.pid, stop: proc.stop, stderr: proc.stderr };
    },
  },
  {
    name: 'haproxy-tcp',
    description: 'HAProxy mode tcp, nbthread 2',
    unavailable: (t) => (t.haproxy ? undefined : 'haproxy not installed (bench/install-peers.sh)'),
    start: (ctx) => startHaproxy('haproxy-tcp', 'tcp', ctx),
  },
];
