// ACME TLS-ALPN-01 (RFC 8737) against pebble: a TLS listener with
// `acme.challenge: tls-alpn-01` and no plain listener at all obtains its
// certificate by answering pebble's validation on the TLS port itself. The
// challenge certificate goes only to a ClientHello offering "acme-tls/1":
// clients connecting during the order never see it, and "acme-tls/1" with
// nothing pending gets no handshake.
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { admin } from '../helpers/admin-status.js';
import { startNamedBackend, type Backend } from '../helpers/backend.js';
import { isAlive, tempDir, type TempDir } from '../helpers/process.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';
import { baseConfig, freePort, startCli, withOutput, type RunningCli } from '../helpers/switchyard.js';

const DOMAIN = 'alpn.switchyard-acme.test';

interface AcmeStatus {
  state: string;
  certificate: { serial: string } | null;
  ordersSucceeded: number;
  lastError: string | null;
}

async function acmeStatus(adminPort: number): Promise<AcmeStatus> {
  const res = await admin(adminPort, '/status');
  assert.equal(res.status, 200, res.body);
  return (JSON.parse(res.body) as { acme: AcmeStatus[] }).acme[0]!;
}

/** A handshake offering `alpn`: the certificate presented, or the error. */
function handshake(port: number, servername: string, alpn: string[], ca?: string): Promise<{ subject: string; issuer: string; serial: string; alpn: string | false | null; authorized: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ALPNProtocols: alpn, ...(ca ? { ca } : { rejectUnauthorized: false }) });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      resolve({ subject: cert?.subject ?? '', issuer: cert?.issuer ?? '', serial: cert?.serialNumber ?? '', alpn: socket.alpnProtocol, authorized: socket.authorized });
      socket.destroy();
    });
    socket.once('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('handshake timed out')));
  });
}

describe('ACME TLS-ALPN-01 (pebble): the TLS listener alone proves the name', () => {
  let tmp: TempDir;
  let backend: Backend;
  let pebble: Pebble;
  let cli: RunningCli;
  let tlsPort: number;
  let adminPort: number;
  /** Certificates normal clients saw while the order ran (most are refused: no certificate yet). */
  const seenDuringOrder: { subject: string; issuer: string }[] = [];
  let attempts = 0;

  before(async () => {
    tmp = await tempDir();
    backend = await startNamedBackend();
    tlsPort = await freePort();
    adminPort = await freePort();
    // HTTP-01 would need a listener on this port: nothing listens there.
    pebble = await startPebble({ httpPort: await freePort(), tlsPort });
    const config = baseConfig({ proxyPort: tlsPort, adminPort, servers: [backend.address], workers: 2 });
    config.listen = [
      {
        host: '127.0.0.1',
        port: tlsPort,
        http2: true,
        tls: { acme: { directory: pebble.directory, email: 'ops@switchyard-acme.test', domains: [DOMAIN], storage: `${tmp.dir}/store`, ca: pebble.caFile, challenge: 'tls-alpn-01', retry: { min: '1s', max: '2s' } } },
      },
    ];
    const configFile = await tmp.writeConfig(config);
    cli = await startCli(configFile, { waitFor: [adminPort], timeoutMs: 60_000 });
    // Normal clients (h2, http/1.1) connect all through the order.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      attempts++;
      const seen = await handshake(tlsPort, DOMAIN, ['h2', 'http/1.1']).catch(() => undefined);
      if (seen) seenDuringOrder.push(seen);
      if ((await acmeStatus(adminPort)).certificate !== null) break;
    }
  });
  after(async () => {
    await cli?.stop();
    await pebble?.stop();
    await backend?.close();
    await tmp?.remove();
  });

  test('the certificate is obtained over TLS-ALPN-01 and served, verified against pebble\'s root', () =>
    withOutput(cli, async () => {
      const s = await acmeStatus(adminPort);
      assert.equal(s.state, 'valid', JSON.stringify(s));
      assert.equal(s.ordersSucceeded, 1);
      const served = await handshake(tlsPort, DOMAIN, ['h2'], await pebble.root());
      assert.equal(served.authorized, true);
      assert.equal(served.serial, s.certificate!.serial);
      assert.equal(served.alpn, 'h2');
      // No plain listener exists and pebble's HTTP-01 port has nobody listening: only TLS-ALPN-01 could have passed.
    }));

  test('no normal client was ever given the challenge certificate (self-signed, for the name)', () =>
    withOutput(cli, async () => {
      assert.ok(attempts > 1, `only ${attempts} handshake attempted during the order`);
      for (const seen of seenDuringOrder) assert.notEqual(seen.issuer, seen.subject, `a normal client got a self-signed certificate: ${seen.subject}`);
    }));

  test('acme-tls/1 with no challenge pending gets no handshake; the process stays up and serves', () =>
    withOutput(cli, async () => {
      await assert.rejects(handshake(tlsPort, DOMAIN, ['acme-tls/1']));
      await assert.rejects(handshake(tlsPort, 'other.switchyard-acme.test', ['acme-tls/1', 'http/1.1']));
      assert.ok(isAlive(cli.pid));
      const served = await handshake(tlsPort, DOMAIN, ['http/1.1'], await pebble.root());
      assert.equal(served.authorized, true);
    }));
});
