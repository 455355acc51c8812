// Real third-party PROXY protocol peers for the L4 tests: HAProxy as a sender
// in front of Switchyard (send-proxy, send-proxy-v2) and nginx as a receiver
// behind it (listen ... proxy_protocol). Each runs in the foreground from its
// own temporary directory and is killed by stop().
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Peer {
  port: number;
  /** What it printed, and for nginx its error log. */
  log(): string;
  stop(): Promise<void>;
}

async function run(command: string, args: string[], port: number, dir: string, errorLog?: string): Promise<Peer> {
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  let exited = false;
  const gone = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const log = (): string => {
    let text = output;
    try {
      if (errorLog) text += readFileSync(errorLog, 'utf8');
    } catch {
      // not written yet
    }
    return text;
  };
  const stop = async (): Promise<void> => {
    if (!exited) child.kill('SIGKILL');
    await gone;
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`${command} exited before listening:\n${log()}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' }, () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (up) return { port, log, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${command} did not listen on ${port}:\n${log()}`);
    }
    await sleep(50);
  }
}

/** HAProxy in mode tcp on `port`, forwarding to 127.0.0.1:`to` with a PROXY header of `version`. */
export function startHaproxySender(port: number, to: number, version: 'v1' | 'v2'): Promise<Peer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-haproxy-'));
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(
    file,
    `global
  nbthread 1
defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server s1 127.0.0.1:${to} ${version === 'v1' ? 'send-proxy' : 'send-proxy-v2'}
`,
  );
  return run('haproxy', ['-db', '-f', file], port, dir);
}

/**
 * nginx on `port` requiring a PROXY header (v1 or v2) on every connection,
 * answering each request with what the header said:
 * "proxy=ADDR:PORT remote=ADDR" (remote: the TCP peer, i.e. Switchyard).
 */
export function startNginxReceiver(port: number): Promise<Peer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-nginx-'));
  const file = path.join(dir, 'nginx.conf');
  const errorLog = path.join(dir, 'error.log');
  // As root, nginx would drop its workers to "nobody", who cannot read the private temp dir.
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  writeFileSync(
    file,
    `${user}
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${errorLog} info;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} proxy_protocol;
    location / { return 200 "proxy=$proxy_protocol_addr:$proxy_protocol_port remote=$remote_addr\\n"; }
  }
}
`,
  );
  return run('nginx', ['-p', dir, '-e', errorLog, '-c', file], port, dir, errorLog);
}
