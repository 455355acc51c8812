// The one free-port helper, shared by the bench and the tests.
import net from 'node:net';

/**
 * A loopback port that was free a moment ago and is not in `avoid` (the kernel
 * picks it; we release it, so a small race is possible: the kernel readily
 * hands the same port out twice in a row).
 */
export async function freePort(avoid: ReadonlySet<number> = new Set()): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as net.AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    if (!avoid.has(port) || attempt >= 20) return port;
  }
}
