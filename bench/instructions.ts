// User-space instructions per proxied POST 4 KB, counted by callgrind: a
// number that repeats (within ~5%) where req/s and CPU time on a shared
// 2-core VM swing by 20-50% between runs, so a change of a few percent in
// the data path can be seen. Kernel work (the syscalls, the same for every
// Node proxy) is not counted. Measures Switchyard with one worker and the
// node-proxy-floor reference (servers/node-proxy-floor.mjs) under valgrind;
// 8 keep-alive connections send `--warm` requests each, the counters are
// zeroed, then `--count` more each on the same connections (new connections
// would make V8 deoptimise and recompile inside the window; bench/README.md,
// "Instructions per request").
//   node --import tsx bench/instructions.ts [--cli dist/cli.js] [--warm 2500] [--count 250]
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from './lib/ports.js';

const { values } = parseArgs({
  options: {
    cli: { type: 'string', default: fileURLToPath(new URL('../dist/cli.js', import.meta.url)) },
    warm: { type: 'string', default: '2500' },
    count: { type: 'string', default: '250' },
  },
});
const CONNECTIONS = 8;
const WARM = Number(values.warm);
const COUNT = Number(values.count);
const REQUEST = `POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n${'x'.repeat(4096)}`;

const tmp = mkdtempSync(join(tmpdir(), 'sy-instructions-'));
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

/** `n` requests on each socket, one at a time, each answered "ok\n" (the backend's POST answer). */
function requests(sockets: net.Socket[], n: number): Promise<unknown> {
  return Promise.all(
    sockets.map(
      (s) =>
        new Promise<void>((resolve) => {
          let left = n;
          let seen = '';
          const onData = (d: Buffer): void => {
            seen += d.toString('latin1');
            if (!seen.endsWith('ok\n')) return;
            seen = '';
            if (--left > 0) return void s.write(REQUEST);
            s.off('data', onData);
            resolve();
          };
          s.on('data', onData);
          s.write(REQUEST);
        }),
    ),
  );
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${what} did not come up`);
}

const answers = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(REQUEST));
    s.on('data', (d: Buffer) => {
      resolve(d.toString('latin1').endsWith('ok\n'));
      s.destroy();
    });
    s.on('error', () => resolve(false));
  });

/** Instructions per request of the process tree started by `command` (its workers: every pid but the first). */
async function measure(label: string, port: number, command: string[]): Promise<number> {
  const out = join(tmp, `${label}.%p.out`);
  const proc = spawn('valgrind', ['--tool=callgrind', '--trace-children=yes', `--callgrind-out-file=${out}`, ...command], { stdio: 'ignore' });
  children.push(proc);
  await until(() => answers(port), label);
  const sockets = await Promise.all(Array.from({ length: CONNECTIONS }, () => new Promise<net.Socket>((r) => { const s = net.connect(port, '127.0.0.1', () => r(s)); })));
  await requests(sockets, WARM);
  const outs = new RegExp(`^${label}\\.(\\d+)\\.out$`);
  const pids = readdirSync(tmp).flatMap((f) => outs.exec(f)?.[1] ?? []).map(Number).sort((a, b) => a - b).slice(1);
  for (const pid of pids) execFileSync('callgrind_control', ['-z', String(pid)], { stdio: 'ignore' });
  await requests(sockets, COUNT);
  for (const pid of pids) execFileSync('callgrind_control', ['-d', String(pid)], { stdio: 'ignore' });
  for (const s of sockets) s.destroy();
  proc.kill('SIGKILL');
  let total = 0;
  for (const pid of pids) total += Number(/^summary: (\d+)/m.exec(readFileSync(join(tmp, `${label}.${pid}.out.1`), 'utf8'))?.[1] ?? NaN);
  return total / (CONNECTIONS * COUNT);
}

const [backendPort, syPort, floorPort] = [await freePort(), await freePort(), await freePort()];
const backend = spawn(process.execPath, [fileURLToPath(new URL('servers/node-backend.mjs', import.meta.url)), String(backendPort)], { stdio: 'ignore' });
children.push(backend);
await until(() => answers(backendPort), 'backend');
const config = join(tmp, 'switchyard.yaml');
writeFileSync(
  config,
  `workers: 1\nlisten: [{ host: 127.0.0.1, port: ${syPort} }]\nlogging: { level: warn, access: false }\n` +
    `upstreams: { app: { servers: [{ address: "127.0.0.1:${backendPort}" }] } }\nroutes: [{ match: { host: "*", path: / }, upstream: app }]\n`,
);
// Synchronous optimisation: valgrind runs one thread at a time, so a concurrent compile would land inside the window.
const switchyard = await measure('switchyard', syPort, [process.execPath, '--no-concurrent-recompilation', values.cli!, '--config', config]);
const floor = await measure('floor', floorPort, [process.execPath, '--no-concurrent-recompilation', fileURLToPath(new URL('servers/node-proxy-floor.mjs', import.meta.url)), String(floorPort), `127.0.0.1:${backendPort}`]);
console.log(`instructions per proxied POST 4 KB (user space, callgrind; ${CONNECTIONS} connections x ${COUNT} after ${WARM} each):`);
console.log(`  switchyard        ${Math.round(switchyard)}`);
console.log(`  node-proxy-floor  ${Math.round(floor)}   (switchyard / floor ${(switchyard / floor).toFixed(2)})`);
process.exit(0);
