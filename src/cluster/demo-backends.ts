// Tiny HTTP servers the primary runs on `config.demoBackends`, so the default
// config answers out of the box without any real upstream.
import http from 'node:http';
import type { ListenConfig } from '../config/types.js';
import type { Logger } from '../log.js';

export interface DemoBackends {
  close(): Promise<void>;
}

function addressOf(l: ListenConfig): string {
  return l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
}

function listen(l: ListenConfig, log: Logger): Promise<http.Server | undefined> {
  const address = addressOf(l);
  const body = `Hello from Switchyard demo backend ${address}\n`;
  const server = http.createServer((req, res) => {
    // Drain any request body so keep-alive connections stay usable.
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(req.url === '/healthz' ? 'ok\n' : body);
  });
  return new Promise((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      // A demo backend that cannot start must not stop the proxy itself.
      log.error({ address, code: err.code }, `demo backend could not listen on ${address}: ${err.message}`);
      resolve(undefined);
    });
    server.listen(l.port, l.host, () => {
      log.info({ address }, 'demo backend listening');
      resolve(server);
    });
  });
}

export async function startDemoBackends(list: readonly ListenConfig[], log: Logger): Promise<DemoBackends> {
  const servers = (await Promise.all(list.map((l) => listen(l, log)))).filter((s) => s !== undefined);
  return {
    async close() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}

/** Whether two demo backend lists name the same addresses (a reload restarts them only if not). */
export function sameDemoBackends(a: readonly ListenConfig[], b: readonly ListenConfig[]): boolean {
  const key = (l: readonly ListenConfig[]) => l.map(addressOf).sort().join(',');
  return key(a) === key(b);
}
