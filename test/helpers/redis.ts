// A real redis-server for a test: its own free port (never 6379), no
// persistence, killed (and started again on the same port) on demand. Where
// the binary is missing the test fails with the package to install: a test
// that cannot run must fail, not skip.
import net from 'node:net';
import tls from 'node:tls';
import { freePort } from '../../bench/lib/ports.js';
import { installed, startDaemon } from './daemon.js';

export interface RedisServer {
  port: number;
  url: string;
  /** The running server's pid (undefined while killed). */
  readonly pid: number | undefined;
  /** SIGKILL: connections drop at once, nothing is saved. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: no persistence). */
  restart(): Promise<void>;
  /** Runs redis-cli-like commands over RESP; resolves the raw reply text. */
  command(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export function redisServerAvailable(): boolean {
  return installed('redis-server');
}

export interface RedisOptions {
  /** requirepass: clients must AUTH. */
  password?: string;
  /** TLS only (no plain port): PEM files of the server's certificate and key. */
  tls?: { certFile: string; keyFile: string };
}

export async function startRedis(opts: RedisOptions = {}): Promise<RedisServer> {
  const port = await freePort(new Set([6379]));
  const listen = opts.tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', opts.tls.certFile, '--tls-key-file', opts.tls.keyFile, '--tls-auth-clients', 'no']
    : ['--port', String(port)];
  const auth = opts.password === undefined ? [] : ['--requirepass', opts.password];
  const daemon = await startDaemon({
    command: 'redis-server',
    debianPackage: 'redis-server',
    args: [...listen, ...auth, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'],
    // Any reply (PONG, or NOAUTH with a password) means it serves.
    answers: async () => /^[+-]/.test(await resp(port, ['PING'], opts.tls !== undefined).catch(() => '')),
    what: `redis-server on port ${port}`,
  });
  return {
    port,
    url: `${opts.tls ? 'rediss' : 'redis'}://${opts.password === undefined ? '' : `:${encodeURIComponent(opts.password)}@`}127.0.0.1:${port}`,
    get pid() {
      return daemon.pid;
    },
    kill: daemon.kill,
    restart: daemon.restart,
    command: (...args) => resp(port, args, opts.tls !== undefined, opts.password),
    stop: daemon.kill,
  };
}

/** One RESP command on a fresh connection (after AUTH with `password`); the last reply's raw text. */
function resp(port: number, args: string[], useTls = false, password?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = useTls ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : net.connect(port, '127.0.0.1');
    const commands = password === undefined ? [args] : [['AUTH', password], args];
    let out = '';
    let replies = 0;
    s.setTimeout(2000, () => s.destroy(new Error('redis: no reply within 2 s')));
    s.on(useTls ? 'secureConnect' : 'connect', () => s.write(commands.map((c) => `*${c.length}\r\n${c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`).join('')));
    s.on('data', (d) => {
      out += d.toString('utf8');
      // Simple replies only (+, -, :): one line each.
      replies = out.split('\r\n').length - 1;
      if (replies >= commands.length) {
        s.destroy();
        resolve(out.split('\r\n')[commands.length - 1]! + '\r\n');
      }
    });
    s.on('error', reject);
  });
}
