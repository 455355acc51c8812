// A canary reload whose new config changes ACME and TLS settings (pebble as
// the CA): the canary worker serves the certificate already obtained from
// its first handshake (before, it had none and refused every handshake, and
// the canary was judged on zero requests), no order runs for a config that
// may be rolled back, and rolling out orders nothing again.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { acmeStatus, admin } from '../helpers/admin-status.js';
import { startAcmeRig, type AcmeRig } from '../helpers/acme-rig.js';
import { verifiedGet, type VerifiedAnswer } from '../helpers/tls-client.js';
import type { TempDir } from '../helpers/process.js';
import type { Pebble } from '../helpers/pebble.js';
import { freePort, withOutput, type RunningCli } from '../helpers/switchyard.js';

const DOMAIN = 'canary.switchyard-acme.test';

/** The canary's answers carry HSTS (its new TLS setting); the old workers' do not. */
const hsts = (answer: VerifiedAnswer): boolean => answer.headers['strict-transport-security'] !== undefined;

describe('a canary reload that changes ACME and TLS settings', () => {
  let rig: AcmeRig;
  let tmp: TempDir;
  let pebble: Pebble;
  let cli: RunningCli;
  let plainPort: number;
  let tlsPort: number;
  let adminPort: number;
  let config: Record<string, unknown>;
  let acme: Record<string, unknown>;

  before(async () => {
    plainPort = await freePort();
    tlsPort = await freePort();
    rig = await startAcmeRig({
      pebble: { httpPort: plainPort },
      listen: (pebble, dir) => {
        acme = { directory: pebble.directory, email: 'ops@switchyard-acme.test', domains: [DOMAIN], storage: `${dir}/store`, ca: pebble.caFile, retry: { min: '1s', max: '2s' } };
        return [
          { host: '127.0.0.1', port: plainPort },
          { host: '127.0.0.1', port: tlsPort, tls: { acme } },
        ];
      },
      waitFor: [plainPort],
    });
    ({ tmp, pebble, cli, adminPort, config } = rig);
  });
  after(async () => {
    await rig?.stop();
  });

  test('the canary serves the certificate in hand, every handshake succeeds, and rolling out orders nothing again', { timeout: 120_000 }, () =>
    withOutput(cli, async () => {
      const deadline = Date.now() + 30_000;
      let first = await acmeStatus(adminPort);
      while (first.certificate === null && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        first = await acmeStatus(adminPort);
      }
      assert.equal(first.ordersSucceeded, 1, JSON.stringify(first));
      const root = await pebble.root();

      // New ACME settings (retry) and a new TLS setting (HSTS, which tells the canary's answers apart).
      config.listen = [
        { host: '127.0.0.1', port: plainPort },
        { host: '127.0.0.1', port: tlsPort, tls: { acme: { ...acme, retry: { min: '2s', max: '4s' } }, hsts: { max_age: '1h' } } },
      ];
      await tmp.writeConfig(config);
      const reload = admin(adminPort, '/reload?canary=5s&min_requests=3', 'POST');
      let canaryAnswers = 0;
      let answers = 0;
      const failures: string[] = [];
      let settled = false;
      reload.then(
        () => (settled = true),
        () => (settled = true),
      );
      while (!settled) {
        try {
          const r = await verifiedGet(tlsPort, DOMAIN, root);
          answers++;
          if (r.status !== 200) failures.push(`status ${r.status}`);
          if (r.serial !== first.certificate!.serial) failures.push(`serial ${r.serial}`);
          if (hsts(r)) canaryAnswers++;
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
      const result = await reload;
      assert.deepEqual(failures, [], `${failures.length} of ${answers + failures.length} TLS requests failed during the canary`);
      assert.ok(canaryAnswers >= 3, `the canary answered ${canaryAnswers} of ${answers}`);
      assert.equal(result.status, 200, result.body);
      assert.equal((JSON.parse(result.body) as { canary: { state: string } }).canary.state, 'rolled-out');

      // Rolled out: the new ACME schedule took the stored certificate; nothing was ordered again.
      const after = await acmeStatus(adminPort);
      assert.equal(after.state, 'valid');
      assert.equal(after.certificate?.serial, first.certificate!.serial);
      assert.equal(after.ordersSucceeded, 0, 'the certificate was obtained a second time');
      const served = await verifiedGet(tlsPort, DOMAIN, root);
      assert.equal(hsts(served), true);
      assert.equal(served.serial, first.certificate!.serial);
      const newOrders = (pebble.output().match(/POST \/order-plz/g) ?? []).length;
      assert.equal(newOrders, 1, 'pebble saw more than one order');
    }),
  );
});
