// listen[].tls.acme: defaults, normalised form, and each error naming its key.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { parseConfigText } from '../../src/config/load.js';
import { errorsOf, FILE, minimalConfig } from '../helpers/config-text.js';

const withListen = (listen: string): string => minimalConfig(`listen:\n${listen}`);

const PLAIN = '  - { host: 127.0.0.1, port: 8080 }';
const acmeListener = (acme: string) => `  - host: 127.0.0.1\n    port: 8443\n    tls:\n      acme: ${acme}`;
const GOOD = '{ directory: "https://acme.example/dir", email: ops@example.com, domains: [Example.COM, www.example.com] }';

describe('config: listen[].tls.acme', () => {
  const dir = mkdtempSync(join(os.tmpdir(), 'switchyard-acme-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('fills defaults: storage beside the config file, retry 1m..1h, domains lower-cased', () => {
    const { config } = parseConfigText(withListen(`${PLAIN}\n${acmeListener(GOOD)}`), FILE);
    assert.deepEqual(config.listen[0], { host: '127.0.0.1', port: 8080, backlog: 4096, mode: 'http', acceptProxy: false, proxyTimeoutMs: 5000, idleTimeoutMs: 600_000, maxConnections: 0, http2: false });
    assert.deepEqual(config.listen[1]!.tls?.acme, {
      directory: 'https://acme.example/dir',
      email: 'ops@example.com',
      domains: ['example.com', 'www.example.com'],
      storage: resolve('config/acme'),
      retryMinMs: 60_000,
      retryMaxMs: 3_600_000,
      challenge: 'http-01',
    });
  });

  it('reads `ca` relative to the config file', () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'), '-days', '1', '-subj', '/CN=t'], { stdio: 'ignore' });
    const text = withListen(`${PLAIN}\n${acmeListener('{ directory: "https://a.example/dir", email: a@b.c, domains: [a.example], ca: ca.pem, storage: store }')}`);
    const { config } = parseConfigText(text, join(dir, 'x.yaml'));
    assert.match(config.listen[1]!.tls!.acme!.caPem ?? '', /BEGIN CERTIFICATE/);
    assert.equal(config.listen[1]!.tls!.acme!.storage, join(dir, 'store'));
  });

  it('refuses what HTTP-01 cannot prove or the protocol forbids, naming the key', () => {
    const cases: [string, RegExp][] = [
      ['{ directory: "http://acme.example/dir", email: a@b.c, domains: [a.example] }', /listen\[1\]\.tls\.acme\.directory: expected the https:\/\/ URL of the ACME directory/],
      ['{ directory: "https://a/dir", email: nobody, domains: [a.example] }', /listen\[1\]\.tls\.acme\.email: expected a contact e-mail address/],
      ['{ directory: "https://a/dir", email: a@b.c, domains: ["*.example.com"] }', /listen\[1\]\.tls\.acme\.domains\[0\]: expected a DNS name like example.com \(no wildcard, no IP address\)/],
      ['{ directory: "https://a/dir", email: a@b.c, domains: [192.0.2.1] }', /domains\[0\]: expected a DNS name/],
      ['{ directory: "https://a/dir", email: a@b.c, domains: [localhost] }', /domains\[0\]: expected a DNS name/],
      ['{ directory: "https://a/dir", email: a@b.c, domains: ["a.example/../x"] }', /domains\[0\]: expected a DNS name/],
      ['{ directory: "https://a/dir", email: a@b.c, domains: [] }', /domains: expected a list of at least one domain name/],
      ['{ directory: "https://a/dir", email: a@b.c, domains: [a.example, A.example] }', /domains\[1\]: duplicate domain "A.example" \(also listen\[1\]\.tls\.acme\.domains\[0\]\)/],
      ['{ directory: "https://a/dir", email: a@b.c, domains: [a.example], retry: { min: 2h, max: 1h } }', /retry\.min: expected at most retry\.max \(1h\), got "2h"/],
      ['{ directory: "https://a/dir", email: a@b.c, domains: [a.example], ca: /nonexistent/ca.pem }', /listen\[1\]\.tls\.acme\.ca: expected \/nonexistent\/ca.pem to hold a PEM CA certificate/],
      ['{ directory: "https://a/dir", email: a@b.c, domains: [a.example], challenge: dns-01 }', /listen\[1\]\.tls\.acme\.challenge: expected one of: http-01, tls-alpn-01, got "dns-01"/],
      ['{ email: a@b.c, domains: [a.example] }', /listen\[1\]\.tls\.acme.*directory/],
    ];
    for (const [acme, expected] of cases) {
      const errors = errorsOf(withListen(`${PLAIN}\n${acmeListener(acme)}`));
      assert.ok(errors.some((e) => expected.test(e)), `${acme}\n  got: ${errors.join('\n  ')}`);
    }
  });

  it('needs a plain listener for HTTP-01 (not for TLS-ALPN-01), and a domain on one ACME listener only', () => {
    const alone = errorsOf(withListen(acmeListener(GOOD)));
    assert.ok(alone.some((e) => /listen\[0\]\.tls\.acme: expected a plain listener \(one without tls/.test(e)), alone.join('\n'));
    // TLS-ALPN-01 is answered on the TLS listener itself: no plain listener needed.
    const alpn = parseConfigText(withListen(acmeListener('{ directory: "https://a/dir", email: a@b.c, domains: [a.example], challenge: tls-alpn-01 }')), FILE);
    assert.equal(alpn.config.listen[0]!.tls?.acme?.challenge, 'tls-alpn-01');
    const twice = errorsOf(withListen(`${PLAIN}\n${acmeListener(GOOD)}\n  - host: 127.0.0.1\n    port: 9443\n    tls:\n      acme: { directory: "https://b/dir", email: a@b.c, domains: [example.com] }`));
    assert.ok(twice.some((e) => /listen\[2\]\.tls\.acme\.domains\[0\]: duplicate domain "example.com" \(also listen\[1\]\.tls\.acme\.domains\[0\]\)/.test(e)), twice.join('\n'));
  });
});
