// The ACME renewal schedule on its own (real storage in a temporary
// directory, real certificates from openssl; the order step is a function
// the test controls): renewal at two thirds, doubling backoff capped at
// retry.max, the certificate in hand kept through failures.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CertificateManager, renewalTime } from '../../src/acme/certificate-manager.js';
import { AcmeStorage, type CertificatePair } from '../../src/acme/storage.js';
import { createLogger } from '../../src/log.js';
import type { AcmeConfig } from '../../src/config/types.js';

const dir = mkdtempSync(join(os.tmpdir(), 'switchyard-acme-schedule-'));

function selfSigned(name: string, days: number): CertificatePair {
  const key = join(dir, `${name}-${days}.key`);
  const cert = join(dir, `${name}-${days}.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', String(days), '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`], { stdio: 'ignore' });
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

const config = (storage: string): AcmeConfig => ({
  directory: 'https://ca.invalid/dir',
  email: 'a@b.c',
  domains: ['sched.example'],
  storage,
  retryMinMs: 20,
  challenge: 'http-01',
  retryMaxMs: 80,
});
const log = createLogger({ level: 'silent', access: false, format: 'json' }, { role: 'test' });
const noChallenges = { add: () => Promise.resolve(), remove: () => Promise.resolve() };

describe('ACME schedule', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('renewal is due at two thirds of the lifetime', () => {
    assert.equal(renewalTime({ notBefore: new Date(0), notAfter: new Date(90) }), 60);
  });

  test('failures back off doubling from retry.min to retry.max; the first success installs and stores the certificate', async () => {
    const storage = join(dir, 'store-a');
    const attempts: number[] = [];
    const good = selfSigned('sched.example', 90);
    const installed: CertificatePair[] = [];
    const manager = new CertificateManager('127.0.0.1:443', config(storage), {
      storage: new AcmeStorage(storage),
      challenges: noChallenges,
      log,
      onCertificate: (pair) => installed.push(pair),
      order: () => {
        attempts.push(Date.now());
        return attempts.length <= 4 ? Promise.reject(new Error(`CA down ${attempts.length}`)) : Promise.resolve(good);
      },
    });
    manager.start();
    const deadline = Date.now() + 5_000;
    while (installed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const s = manager.status();
    manager.stop();
    assert.equal(manager.status().state, 'stopped');
    assert.equal(installed.length, 1);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    // 20, 40, 80, 80 (capped), give or take timer slack.
    for (const [i, expected] of [20, 40, 80, 80].entries()) assert.ok(gaps[i]! >= expected - 2 && gaps[i]! < expected + 400, `gap ${i}: ${gaps[i]} ms, expected ${expected}`);
    assert.equal(s.state, 'valid');
    assert.equal(s.ordersFailed, 4);
    assert.equal(s.ordersSucceeded, 1);
    assert.equal(s.consecutiveFailures, 0);
    assert.equal(s.lastError, 'CA down 4');
    assert.deepEqual(new AcmeStorage(storage).load('sched.example'), good);
  });

  test('a certificate for other names than configured counts as a failure and is never installed or stored', async () => {
    const storage = join(dir, 'store-b');
    const installed: CertificatePair[] = [];
    const manager = new CertificateManager('127.0.0.1:443', config(storage), {
      storage: new AcmeStorage(storage),
      challenges: noChallenges,
      log,
      onCertificate: (pair) => installed.push(pair),
      order: () => Promise.resolve(selfSigned('other.example', 90)),
    });
    manager.loadStored();
    manager.start();
    const deadline = Date.now() + 3_000;
    while (manager.status().consecutiveFailures === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    manager.stop();
    const s = manager.status();
    assert.match(s.lastError ?? '', /not for every configured domain/);
    assert.equal(s.certificate, null);
    assert.deepEqual(installed, []);
    assert.equal(new AcmeStorage(storage).load('sched.example'), undefined);
  });
});
