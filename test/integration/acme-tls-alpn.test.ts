// ACME TLS-ALPN-01 (RFC 8737) against pebble: a TLS listener with
// `acme.challenge: tls-alpn-01` and no plain listener at all obtains its
// certificate by answering pebble's validation on the TLS port itself. The
// challenge certificate goes only to a ClientHello offering "acme-tls/1":
// clients connecting during the order never see it, and "acme-tls/1" with
// nothing pending gets no handshake.
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { acmeStatus, getStatus } from '../helpers/admin-status.js';
import { startAcmeRig, type AcmeRig } from '../helpers/acme-rig.js';
import { isAlive } from '../helpers/process.js';
import type { Pebble } from '../helpers/pebble.js';
import { freePort, withOutput, type RunningCli } from '../helpers/switchyard.js';

const DOMAIN = 'alpn.switchyard-acme.test';

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
  let rig: AcmeRig;
  let pebble: Pebble;
  let cli: RunningCli;
  let tlsPort: number;
  let adminPort: number;
  /** Certificates normal clients saw while the order ran (most are refused: no certificate yet). */
  const seenDuringOrder: { subject: string; issuer: string }[] = [];
  let attempts = 0;

  before(async () => {
    tlsPort = await freePort();
    rig = await startAcmeRig({
      // HTTP-01 would need a listener on this port: nothing listens there.
      pebble: { httpPort: await freePort(), tlsPort },
      listen: (pebble, dir) => [
        {
          host: '127.0.0.1',
          port: tlsPort,
          http2: true,
          tls: { acme: { directory: pebble.directory, email: 'ops@switchyard-acme.test', domains: [DOMAIN], storage: `${dir}/store`, ca: pebble.caFile, challenge: 'tls-alpn-01', retry: { min: '1s', max: '2s' } } },
        },
      ],
    });
    ({ pebble, cli, adminPort } = rig);
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
    await rig?.stop();
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

describe('ACME TLS-ALPN-01 (pebble): a listener proves only its own names', () => {
  const A = 'a.switchyard-acme.test';
  const B = 'b.switchyard-acme.test';
  let rig: AcmeRig;
  let pebble: Pebble;
  let cli: RunningCli;
  let portA: number;
  let portB: number;
  let adminPort: number;

  before(async () => {
    portA = await freePort();
    portB = await freePort(new Set([portA]));
    rig = await startAcmeRig({
      // Pebble validates every TLS-ALPN-01 challenge on listener A's port: B's name can pass only if A answers for it.
      pebble: { httpPort: await freePort(new Set([portA, portB])), tlsPort: portA },
      listen: (pebble, dir) => {
        const acme = (domain: string) => ({
          directory: pebble.directory,
          email: 'ops@switchyard-acme.test',
          domains: [domain],
          storage: `${dir}/store-${domain}`,
          ca: pebble.caFile,
          challenge: 'tls-alpn-01',
          retry: { min: '1s', max: '2s' },
        });
        return [
          { host: '127.0.0.1', port: portA, tls: { acme: acme(A) } },
          { host: '127.0.0.1', port: portB, tls: { acme: acme(B) } },
        ];
      },
    });
    ({ pebble, cli, adminPort } = rig);
  });
  after(async () => {
    await rig?.stop();
  });

  test("listener A does not answer the challenge of B's name: B's order fails, A's succeeds", () =>
    withOutput(cli, async () => {
      const statuses = async () => (await getStatus(adminPort)).acme;
      const deadline = Date.now() + 60_000;
      let s = await statuses();
      // Until A holds its certificate and B's order has ended one way or the other.
      while (!(s[0]!.certificate !== null && (s[1]!.certificate !== null || s[1]!.ordersFailed > 0))) {
        assert.ok(Date.now() < deadline, `orders not settled within 60 s: ${JSON.stringify(s)}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
        s = await statuses();
      }
      assert.equal(s[1]!.certificate, null, `B got a certificate through A's listener: ${JSON.stringify(s[1])}`);
      assert.equal(s[1]!.ordersSucceeded, 0);
      assert.ok(s[1]!.lastError !== null);
      const served = await handshake(portA, A, ['http/1.1'], await pebble.root());
      assert.equal(served.authorized, true);
    }));
});
