// A TLS listener (src/tls) on an ephemeral loopback port, for unit tests that
// drive it with real clients and no worker around it.
import type { AddressInfo } from 'node:net';
import type { TlsListener } from '../../src/tls/tls-listener.js';

/** Listens on 127.0.0.1, any free port; resolves to that port. */
export async function listenOnLoopback(listener: TlsListener): Promise<number> {
  await new Promise<void>((resolve) => listener.server.listen(0, '127.0.0.1', resolve));
  return (listener.server.address() as AddressInfo).port;
}

/** Stops the listener's certificate reloads and waits for its server to close. */
export async function closeListener(listener: TlsListener | undefined): Promise<void> {
  listener?.close();
  await new Promise((resolve) => listener?.server.close(resolve));
}
