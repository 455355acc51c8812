// The two upstream servers every system forwards to: nginx (one worker each)
// when installed, else a 2-worker Node cluster serving both ports.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendConf } from './nginx.js';
import { freePort } from './ports.js';
import { startProcess, type Managed } from './process.js';
import type { Tools } from './tools.js';

export interface Backends {
  kind: string;
  ports: number[];
  stop(): Promise<void>;
}

const NODE_BACKEND = fileURLToPath(new URL('../servers/node-backend.mjs', import.meta.url));

export async function startBackends(tools: Tools, tmp: string): Promise<Backends> {
  const ports = [await freePort(), await freePort()];
  const procs: Managed[] = [];
  if (tools.nginx) {
    const www = join(tmp, 'www');
    mkdirSync(www, { recursive: true });
    writeFileSync(join(www, '16k'), Buffer.alloc(16 * 1024, 'b'));
    writeFileSync(join(www, '1m'), Buffer.alloc(1024 * 1024, 'c'));
    for (const [i, port] of ports.entries()) {
      const prefix = join(tmp, `backend-${i}`);
      const file = join(tmp, `backend-${i}.conf`);
      writeFileSync(file, backendConf(prefix, www, port));
      procs.push(
        await startProcess(`nginx backend ${i}`, tools.nginx, ['-p', prefix, '-e', join(prefix, 'logs/error.log'), '-c', file], {
          port,
          path: '/100b',
        }),
      );
    }
  } else {
    procs.push(
      await startProcess('node backend', process.execPath, [NODE_BACKEND, ...ports.map(String)], { port: ports[1]!, path: '/100b' }),
    );
  }
  return {
    kind: tools.nginx ? 'nginx (2 instances, worker_processes 1 each)' : 'node:cluster (2 workers serving both ports)',
    ports,
    stop: async () => {
      await Promise.all(procs.map((p) => p.stop()));
    },
  };
}
