// Automatic certificates against a real ACME server: Debian's pebble on
// loopback validates HTTP-01 by connecting to Switchyard's plain listener,
// through a mock DNS that maps every name to 127.0.0.1. Covers: obtaining a
// certificate (verified against pebble's root), keys on disk 0600 in a 0700
// directory, renewal at two thirds of a short lifetime, backoff with the old
// certificate kept while the CA is down, and the challenge prefix that never
// reaches a route.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import https from 'node:https';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isAlive, request, type TempDir } from '../helpers/process.js';
import { acmeStatus, admin, waitForAcme } from '../helpers/admin-status.js';
import { startAcmeRig, type AcmeRig } from '../helpers/acme-rig.js';
import { verifiedGet } from '../helpers/tls-client.js';
import type { Backend } from '../helpers/backend.js';
import { freePort, withOutput, type RunningCli } from '../helpers/switchyard.js';
import type { Pebble } from '../helpers/pebble.js';

const DOMAINS = ['app.switchyard-acme.test', 'www.switchyard-acme.test'];
/**
 * Lifetime of pebble's certificates in the first suite: renewal is due at two
 * thirds (40 s), long enough for a restart on a loaded machine to find the
 * stored certificate not yet due.
 */
const VALIDITY_SECONDS = 30;

/** `openssl verify` of the stored chain's leaf against pebble's root, with the intermediates from the chain. */
function verifyAgainstRoot(dir: string, chainPem: string, rootPem: string): string {
  const certs = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  assert.ok(certs.length >= 2, 'the stored chain holds the leaf and its intermediate');
  writeFileSync(path.join(dir, 'leaf.pem'), certs[0]!);
  writeFileSync(path.join(dir, 'intermediates.pem'), certs.slice(1).join(''));
  writeFileSync(path.join(dir, 'root.pem'), rootPem);
  return execFileSync('openssl', ['verify', '-CAfile', path.join(dir, 'root.pem'), '-untrusted', path.join(dir, 'intermediates.pem'), path.join(dir, 'leaf.pem')], { encoding: 'utf8' });
}

describe('ACME (pebble): obtain, store, renew, back off', () => {
  let rig: AcmeRig;
  let tmp: TempDir;
  let backend: Backend;
  let pebble: Pebble;
  let cli: RunningCli;
  let plainPort: number;
  let tlsPort: number;
  let adminPort: number;
  let storage: string;
  let firstSerial: string;
  let firstNotAfter: number;
  let root: string;

  before(async () => {
    plainPort = await freePort();
    tlsPort = await freePort();
    rig = await startAcmeRig({
      pebble: { httpPort: plainPort, validitySeconds: VALIDITY_SECONDS },
      listen: (pebble, dir) => {
        storage = path.join(dir, 'acme-store');
        return [
          { host: '127.0.0.1', port: plainPort },
          { host: '127.0.0.1', port: tlsPort, tls: { acme: { directory: pebble.directory, email: 'ops@switchyard-acme.test', domains: DOMAINS, storage, ca: pebble.caFile, retry: { min: '1s', max: '2s' } } } },
        ];
      },
      waitFor: [plainPort],
    });
    ({ tmp, backend, pebble, cli, adminPort } = rig);
  });
  after(async () => {
    await rig?.stop();
  });

  test('obtains a certificate for every domain; chain verifies against pebble\'s root; key and cert 0600 in 0700 directories', () =>
    withOutput(cli, async () => {
      const s = await waitForAcme(adminPort, 'the first certificate', (a) => a.certificate !== null, 30_000);
      assert.equal(s.state, 'valid');
      assert.equal(s.ordersSucceeded, 1);
      firstSerial = s.certificate!.serial;
      firstNotAfter = Date.parse(s.certificate!.notAfter);
      assert.ok(s.nextAttempt !== null, 'a renewal is scheduled');
      const notBefore = Date.parse(s.certificate!.notBefore);
      const notAfter = Date.parse(s.certificate!.notAfter);
      const expectedRenewal = notBefore + ((notAfter - notBefore) * 2) / 3;
      assert.ok(Math.abs(Date.parse(s.nextAttempt!) - expectedRenewal) < 1500, `renewal at two thirds of the lifetime: ${s.nextAttempt} vs ${new Date(expectedRenewal).toISOString()}`);

      const dir = path.join(storage, 'certificates', DOMAINS[0]!);
      const chain = readFileSync(path.join(dir, 'cert.pem'), 'utf8');
      const leaf = new X509Certificate(chain);
      assert.equal(leaf.serialNumber, s.certificate!.serial);
      for (const d of DOMAINS) assert.ok(leaf.checkHost(d), `certificate covers ${d}`);
      assert.ok(leaf.checkPrivateKey(await import('node:crypto').then((c) => c.createPrivateKey(readFileSync(path.join(dir, 'key.pem'))))));
      root = await pebble.root();
      assert.match(verifyAgainstRoot(tmp.dir, chain, root), /leaf\.pem: OK/);

      for (const f of ['cert.pem', 'key.pem']) assert.equal(statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
      for (const d of [storage, path.join(storage, 'certificates'), dir, path.join(storage, 'accounts')]) assert.equal(statSync(d).mode & 0o777, 0o700, d);
    }));

  test('the workers serve it over TLS without a restart: Node and curl verify it with pebble\'s root, for every domain', () =>
    withOutput(cli, async () => {
      for (const domain of DOMAINS) {
        const answer = await verifiedGet(tlsPort, domain, root);
        assert.equal(answer.status, 200);
        assert.equal(answer.serial, firstSerial);
        assert.equal(answer.socket.authorized, true);
      }
      const rootFile = path.join(tmp.dir, 'pebble-root.pem');
      writeFileSync(rootFile, root);
      // Asynchronously: the backend runs in this process.
      const { stdout } = await promisify(execFile)('curl', ['-sS', '--cacert', rootFile, '--resolve', `${DOMAINS[1]}:${tlsPort}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_code} %{ssl_verify_result}', `https://${DOMAINS[1]}:${tlsPort}/`], { encoding: 'utf8' });
      assert.equal(stdout, '200 0');
      // A name the certificate does not carry is not verified (SNI falls back to the ACME certificate as the default).
      await assert.rejects(verifiedGet(tlsPort, 'other.switchyard-acme.test', root), /altnames|does not match|Hostname/i);
    }));

  test('the challenge prefix never reaches a route: unknown, traversal, respelled and foreign-host tokens get 404', () =>
    withOutput(cli, async () => {
      const reached = () => backend.requests.length;
      const before = reached();
      const attempts = [
        '/.well-known/acme-challenge/',
        '/.well-known/acme-challenge',
        '/.well-known/acme-challenge/unknown-token-aaaaaaaaaaaaaaaa',
        '/.well-known/acme-challenge/../../etc/passwd',
        '/.well-known/acme-challenge/%2e%2e/%2e%2e/etc/passwd',
        '/.well-known/ACME-Challenge/unknown-token-aaaaaaaaaaaaaaaa',
        '/.well-known/%61cme-challenge/x',
        '//.well-known//acme-challenge/x',
        '/x/../.well-known/acme-challenge/x',
        '/.well-known/./acme-challenge/x?q=1',
        '/.well-known/acme-challenge;x/y',
      ];
      for (const p of attempts) {
        const res = await request({ port: plainPort, path: p, headers: { host: DOMAINS[0] } });
        assert.equal(res.status, 404, `${p}: ${res.status} ${res.body}`);
        assert.match(res.body, /acme-unknown-challenge/, p);
      }
      // Anything else under /.well-known still routes.
      assert.equal((await request({ port: plainPort, path: '/.well-known/security.txt', headers: { host: DOMAINS[0] } })).status, 200);
      assert.equal(reached(), before + 1, 'only the non-ACME path reached the backend');
    }));

  test('a restart serves the stored certificate instead of ordering a new one', () =>
    withOutput(cli, async () => {
      cli = await rig.restart();
      const s = await acmeStatus(adminPort);
      assert.equal(s.certificate?.serial, firstSerial);
      assert.equal(s.ordersSucceeded, 0);
      assert.equal(s.state, 'valid');
      // Served from the first handshake: the workers had it before they listened.
      assert.equal((await verifiedGet(tlsPort, DOMAINS[0]!, root)).serial, firstSerial);
    }));

  test('renews at two thirds of the lifetime: the new certificate serves new connections, an open one keeps its own and is not dropped', () =>
    withOutput(cli, async () => {
      const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 1 });
      const first = await verifiedGet(tlsPort, DOMAINS[0]!, root, keepAlive);
      assert.equal(first.serial, firstSerial);
      // Load across the renewal: new connections one after another, each must succeed with a verified certificate.
      let loading = true;
      const failures: string[] = [];
      const served = new Set<string>();
      const load = (async () => {
        while (loading) {
          try {
            const answer = await verifiedGet(tlsPort, DOMAINS[1]!, root);
            if (answer.status !== 200) failures.push(`status ${answer.status}`);
            served.add(answer.serial);
          } catch (err) {
            failures.push((err as Error).message);
          }
        }
      })();
      const s = await waitForAcme(adminPort, 'the renewed certificate', (a) => a.certificate !== null && a.certificate.serial !== firstSerial, 70_000);
      // Until new connections are seen with the new certificate (every worker has it).
      const deadline = Date.now() + 5_000;
      while (!served.has(s.certificate!.serial) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      loading = false;
      await load;
      assert.deepEqual(failures, [], 'no request failed across the renewal');
      assert.ok(served.has(firstSerial) && served.has(s.certificate!.serial), `both certificates served under load: ${[...served].join(', ')}`);
      assert.equal(s.state, 'valid');
      assert.equal(s.consecutiveFailures, 0);
      assert.ok(Date.now() < firstNotAfter, 'renewed before the old one expired');
      const stored = new X509Certificate(readFileSync(path.join(storage, 'certificates', DOMAINS[0]!, 'cert.pem')));
      assert.equal(stored.serialNumber, s.certificate!.serial);
      // The connection opened before the renewal still carries requests, with the certificate it was made with.
      const again = await verifiedGet(tlsPort, DOMAINS[0]!, root, keepAlive);
      assert.equal(again.socket, first.socket, 'the same TLS connection');
      assert.equal(again.status, 200);
      assert.equal(again.serial, firstSerial);
      keepAlive.destroy();
      // A new connection gets the new certificate, from every worker.
      for (let i = 0; i < 6; i++) assert.equal((await verifiedGet(tlsPort, DOMAINS[0]!, root)).serial, s.certificate!.serial);
    }));

  test('the CA down at renewal: backoff, last error in /status and /metrics, the certificate in hand kept, process up', () =>
    withOutput(cli, async () => {
      const held = (await acmeStatus(adminPort)).certificate!;
      await pebble.stopCa();
      const s = await waitForAcme(adminPort, 'two failed renewals', (a) => a.consecutiveFailures >= 2, 70_000);
      assert.equal(s.state, 'retrying');
      assert.equal(s.certificate?.serial, held.serial, 'the certificate in service is unchanged');
      assert.match(s.lastError ?? '', /ECONNREFUSED|connect/i);
      assert.ok(s.lastErrorAt !== null);
      // retry: { min: 1s, max: 2s }: the next attempt is at most 2 s away.
      assert.ok(s.nextAttempt === null || Date.parse(s.nextAttempt) - Date.now() <= 2_500, `next attempt ${s.nextAttempt}`);
      const stored = new X509Certificate(readFileSync(path.join(storage, 'certificates', DOMAINS[0]!, 'cert.pem')));
      assert.equal(stored.serialNumber, held.serial, 'the stored certificate is unchanged');
      const metrics = (await admin(adminPort, '/metrics')).body;
      assert.match(metrics, new RegExp(`switchyard_acme_orders_total\\{certificate="${DOMAINS[0]!.replace(/\./g, '\\.')}",result="failure"\\} [1-9]`));
      assert.match(metrics, /switchyard_acme_consecutive_failures\{certificate="[^"]+"\} [1-9]/);
      assert.ok(isAlive(cli.pid));
      assert.equal((await verifiedGet(tlsPort, DOMAINS[1]!, root)).serial, held.serial, 'still served over TLS');
      assert.equal((await request({ port: plainPort, path: '/', headers: { host: DOMAINS[0] } })).status, 200, 'still proxying');
    }));
});

describe('ACME (pebble) behind a redirecting port 80: the directory\'s TLS is verified; no certificate, no handshake; a reload changes the domains', () => {
  let rig: AcmeRig;
  let tmp: TempDir;
  let pebble: Pebble;
  let cli: RunningCli;
  let plainPort: number;
  let adminPort: number;
  let tlsPort: number;
  let config: Record<string, unknown>;
  const acmeOf = (directory: string, dir: string, extra: Record<string, unknown>) => ({
    directory,
    email: 'ops@switchyard-acme.test',
    storage: path.join(dir, 'store'),
    retry: { min: '1s', max: '1s' },
    ...extra,
  });

  before(async () => {
    plainPort = await freePort();
    tlsPort = await freePort();
    rig = await startAcmeRig({
      pebble: { httpPort: plainPort },
      // The plain port only redirects to https: it answers HTTP-01 before redirecting.
      // No `ca`: pebble's HTTPS certificate is from a CA nobody trusts.
      listen: (pebble, dir) => [
        { host: '127.0.0.1', port: plainPort, redirect_https: { port: tlsPort } },
        { host: '127.0.0.1', port: tlsPort, tls: { acme: acmeOf(pebble.directory, dir, { domains: ['first.switchyard-acme.test'] }) } },
      ],
    });
    ({ tmp, pebble, cli, adminPort, config } = rig);
  });
  after(async () => {
    await rig?.stop();
  });

  test('a directory whose certificate is not trusted is never talked to: the order fails with the reason', () =>
    withOutput(cli, async () => {
      const s = await waitForAcme(adminPort, 'a failed order', (a) => a.consecutiveFailures >= 1, 20_000);
      assert.equal(s.certificate, null);
      assert.equal(s.state, 'retrying');
      assert.match(s.lastError ?? '', /certificate/i);
      assert.equal(s.ordersSucceeded, 0);
    }));

  test('until a certificate exists, TLS handshakes are refused (no placeholder), and the process stays up', () =>
    withOutput(cli, async () => {
      await assert.rejects(verifiedGet(tlsPort, 'first.switchyard-acme.test', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n'), (err: Error & { code?: string }) => {
        assert.doesNotMatch(err.message, /self.signed|unable to verify|altnames/i, 'no certificate was presented at all');
        return true;
      });
      const out = execFileSync('sh', ['-c', `openssl s_client -connect 127.0.0.1:${tlsPort} -servername first.switchyard-acme.test </dev/null 2>&1; true`], { encoding: 'utf8' });
      assert.match(out, /no peer certificate available/);
      assert.ok(isAlive(cli.pid));
    }));

  test('the redirecting listener: known paths redirect, the challenge prefix is 404 and never redirected', () =>
    withOutput(cli, async () => {
      const redirected = await request({ port: plainPort, path: '/x?y=1', headers: { host: 'first.switchyard-acme.test' } });
      assert.equal(redirected.status, 308);
      assert.equal(redirected.headers.location, `https://first.switchyard-acme.test:${tlsPort}/x?y=1`);
      for (const p of ['/.well-known/acme-challenge/unknown-token-aaaaaaaaaaaaaaaa', '/.well-known/ACME-challenge/../x', '/.well-known/acme-challenge/']) {
        const res = await request({ port: plainPort, path: p, headers: { host: 'first.switchyard-acme.test' } });
        assert.equal(res.status, 404, p);
        assert.equal(res.headers.location, undefined, p);
      }
    }));

  test('a reload with `ca` and other domains orders a certificate for them', () =>
    withOutput(cli, async () => {
      const listen = config.listen as Record<string, unknown>[];
      listen[1] = { ...listen[1], tls: { acme: acmeOf(pebble.directory, tmp.dir, { domains: ['second.switchyard-acme.test', 'third.switchyard-acme.test'], ca: pebble.caFile }) } };
      await tmp.writeConfig(config);
      const res = await admin(adminPort, '/reload', 'POST');
      assert.equal(res.status, 200, res.body);
      const s = await waitForAcme(adminPort, 'the certificate after the reload', (a) => a.certificate !== null, 30_000);
      assert.deepEqual(s.domains, ['second.switchyard-acme.test', 'third.switchyard-acme.test']);
      const leaf = new X509Certificate(readFileSync(path.join(tmp.dir, 'store', 'certificates', 'second.switchyard-acme.test', 'cert.pem')));
      assert.ok(leaf.checkHost('third.switchyard-acme.test'));
      assert.equal(leaf.checkHost('first.switchyard-acme.test'), undefined);
      const answer = await verifiedGet(tlsPort, 'third.switchyard-acme.test', await pebble.root());
      assert.equal(answer.status, 200);
      assert.equal(answer.serial, s.certificate!.serial);
    }));
});
