// The TLS keys of the config: the shipped example loads once its
// certificates exist, and each mistake is reported with the key and what
// was expected (unreadable or mismatched certificate files, mTLS without a
// listener asking for certificates, tls and redirect_https together).

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.js';
import { configErrors } from '../helpers/config-text.js';
import { DEFAULT_CIPHERS } from '../../src/config/normalise.js';
import { Pki } from '../helpers/certs.js';

const EXAMPLE = fileURLToPath(new URL('../../config/examples/tls.yaml', import.meta.url));
let pki: Pki;

before(() => {
  pki = new Pki();
  const ca = pki.ca('cfg-ca');
  const certs = path.join(pki.dir, 'certs');
  mkdirSync(certs);
  const put = (name: string, issued: { cert: string; key: string }) => {
    copyFileSync(issued.cert, path.join(certs, `${name}.pem`));
    copyFileSync(issued.key, path.join(certs, `${name}.key`));
  };
  put('example-ecdsa', pki.issue(ca, 'ex-ec', { subject: '/CN=example.test', sans: ['DNS:example.test'] }));
  put('example-rsa', pki.issue(ca, 'ex-rsa', { subject: '/CN=example.test', sans: ['DNS:example.test'], type: 'rsa' }));
  put('wildcard', pki.issue(ca, 'ex-wild', { subject: '/CN=*.example.test', sans: ['DNS:*.example.test'] }));
  put('proxy-client', pki.issue(ca, 'ex-client', { subject: '/CN=proxy', usage: 'client' }));
  copyFileSync(ca.cert, path.join(certs, 'clients-ca.pem'));
  copyFileSync(ca.cert, path.join(certs, 'internal-ca.pem'));
  copyFileSync(EXAMPLE, path.join(pki.dir, 'tls.yaml'));
});

after(() => pki?.cleanup());

function errorsOf(text: string): string[] {
  const file = path.join(pki.dir, 'x.yaml');
  writeFileSync(file, text);
  return configErrors(() => loadConfig(file));
}

const base = (listen: string, route = '{ match: { path: / }, upstream: app }') => `admin: { token: t }
listen:
${listen}
upstreams: { app: { servers: [ { address: 127.0.0.1:9001 } ] } }
routes: [ ${route} ]
`;

describe('config: TLS', () => {
  it('config/examples/tls.yaml loads with its certificates in place', () => {
    const { config } = loadConfig(path.join(pki.dir, 'tls.yaml'));
    const tls = config.listen[0]!.tls!;
    assert.equal(tls.certificates.length, 3);
    assert.equal(tls.certificates[0]!.cert, path.join(pki.dir, 'certs/example-ecdsa.pem'));
    assert.equal(tls.ciphers, DEFAULT_CIPHERS);
    assert.deepEqual(tls.hsts, { maxAgeSeconds: 31_536_000, includeSubdomains: false, preload: false });
    assert.deepEqual(config.listen[1]!.redirectHttps, { port: 8443 });
    assert.equal(config.upstreams.app!.tls!.servername, 'app.internal');
    assert.equal(config.routes[0]!.auth!.type, 'mtls');
    assert.equal(config.tlsTickets.rotateMs, 3_600_000);
  });

  it('a certificate file that is missing or not PEM names the key', () => {
    writeFileSync(path.join(pki.dir, 'garbage.pem'), 'not a certificate');
    const errors = errorsOf(base('  - { port: 8443, tls: { certificates: [ { cert: missing.pem, key: garbage.pem } ] } }'));
    assert.ok(errors.some((e) => /listen\[0\]\.tls\.certificates\[0\]\.cert: cannot read .*missing\.pem/.test(e)), errors.join('\n'));
    assert.ok(errors.some((e) => /listen\[0\]\.tls\.certificates\[0\]\.key: expected .*garbage\.pem to hold PEM data/.test(e)), errors.join('\n'));
  });

  it('a key that does not belong to the certificate is refused', () => {
    const errors = errorsOf(base('  - { port: 8443, tls: { certificates: [ { cert: certs/example-rsa.pem, key: certs/example-ecdsa.key } ] } }'));
    assert.ok(errors.some((e) => /listen\[0\]\.tls\.certificates\[0\]: certificate and key are not a usable pair/.test(e)), errors.join('\n'));
  });

  it('tls and redirect_https on one listener, a bad min_version, mTLS without client_ca', () => {
    const errors = errorsOf(
      base('  - { port: 8443, redirect_https: { port: 443 }, tls: { min_version: TLSv1.1, certificates: [ { cert: certs/example-rsa.pem, key: certs/example-rsa.key } ] } }', '{ match: { path: / }, upstream: app, auth: { mtls: {} } }'),
    );
    assert.ok(errors.some((e) => /min_version: expected one of: TLSv1\.2, TLSv1\.3, got "TLSv1\.1"/.test(e)), errors.join('\n'));
    assert.ok(errors.some((e) => /routes\[0\]\.auth\.mtls: no listener requests client certificates/.test(e)), errors.join('\n'));
  });

  it('an upstream client certificate without its key', () => {
    const errors = errorsOf(`admin: { token: t }
upstreams: { app: { servers: [ { address: 127.0.0.1:9001 } ], tls: { cert: certs/proxy-client.pem } } }
routes: [ { match: { path: / }, upstream: app } ]
`);
    assert.ok(errors.some((e) => /upstreams\.app\.tls: expected both cert and key/.test(e)), errors.join('\n'));
  });
});
