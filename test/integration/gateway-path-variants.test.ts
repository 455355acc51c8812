// Issue 10, defect 5: a route's checks cannot be escaped by spelling its path
// or host another way. `/admin` sits behind each auth scheme (one exact host
// per scheme), an exact-host route is all behind basic auth, and "*" "/" is
// open, all on the same upstream. Every spelling a common backend could take
// for the protected resource must be refused by the proxy (401: claimed by the
// auth route, or 400: refused as ambiguous or malformed), never reach the
// backend. Requests go over raw sockets so that every byte arrives as written.
// A route that rewrites its prefix never lets ".." climb out of the new base.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startBackend, type Backend } from '../helpers/backend.js';
import { findBySeq, mapLimit, waitWorkersReady } from '../helpers/gateway.js';
import { exchange } from '../helpers/raw-client.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';
import { basicAuth, bcryptHash, claims, signJwt } from '../helpers/tokens.js';

const SECRET = 'path-variants-hs256-secret-0123456789';
const API_KEY = 'path-variants-key-0123';

/** Spellings that common backends (Express, IIS, Tomcat/Spring, nginx, Python, static file servers) may serve as /admin. */
const ADMIN_SPELLINGS = [
  '/%61dmin',
  '/%61%64%6D%69%6E',
  '/admin#x',
  '/admin#',
  '/ADMIN',
  '/Admin',
  '/aDmIn/users',
  '//admin',
  '///admin/x',
  '/x/../admin',
  '/x/./../admin',
  '/x/%2e%2e/admin',
  '/x/%2E%2E/admin',
  '/x/.%2e/admin',
  '/x/..%2fadmin',
  '/x/..%5cadmin',
  '/x/..\\admin',
  '/../admin',
  '/%2e%2e/admin',
  '/admin;x',
  '/admin;jsessionid=1/users',
  '/x/..;/admin',
  '/admin%2f',
  '/admin%2F',
  '/admin%2F..',
  '/admin%2Fusers',
  '/%2fadmin',
  '/admin%5c',
  '/admin%5Cx',
  '/./admin',
  '/admin/',
  '/admin/.',
  '/admin/./users',
  '/\\admin',
  '/admin\\users',
  '/x\\..\\admin',
  '/admin%00',
  '/admin%00.html',
  '/admin%zz',
  '/admin%',
  '/admin%2',
  '/%2561dmin',
  '/admin%09',
  '/admin%0a',
  '/ADMIN%2f..%2fadmin',
  '/ad%6Din/x?y=1',
  // Windows (IIS, static files on NTFS) drops a name's trailing dots and spaces, and "::$DATA" names the file itself.
  '/admin.',
  '/admin..',
  '/admin%2e',
  '/admin%20',
  '/admin.%20.',
  '/admin./users',
  '/ADMIN.',
  '/admin::$DATA',
  '/admin::$data/x',
  // Unicode compatibility characters that NFKC-normalising frameworks and Windows "best fit" read as ASCII:
  // fullwidth letters, "／" U+FF0F, "＼" U+FF3C, "∕" U+2215, "‥" U+2025, "．" U+FF0E, "․" U+2024, "﹒" U+FE52.
  '/%EF%BD%81dmin',
  '/%EF%BC%A1%EF%BC%A4%EF%BC%AD%EF%BC%A9%EF%BC%AE',
  '/x/..%EF%BC%8Fadmin',
  '/x%EF%BC%8F..%EF%BC%8Fadmin',
  '/x/..%EF%BC%BCadmin',
  '/x/..%E2%88%95admin',
  '/x/%E2%80%A5/admin',
  '/x/%EF%BC%8E%EF%BC%8E/admin',
  '/x/%E2%80%A4%E2%80%A4/admin',
  '/x/%EF%B9%92%EF%B9%92/admin',
  '/admin%EF%BC%8E',
];

/** Plain paths that must still reach the open route. */
const OPEN_PATHS = ['/other', '/other/a%20b', '/other./x', '/admin.html', '/admin.x', '/a$b', '/Other/Thing', '/adminx', '/administrator', '/x/y/../z', '/static/caf%C3%A9', '/other;v=1', '/search?q=/admin', '/a//b', '/other/%EF%BD%81', '/other/a/%E2%80%A5/b', '/static/%FF%FE'];

describe('gateway: path and host spellings cannot escape a route\'s auth', () => {
  let backend: Backend;
  let sy: Switchyard;
  let jwt: string;

  before(async () => {
    backend = await startBackend();
    const app = 'app';
    sy = await startSwitchyard({
      upstreams: { app: { servers: [{ address: backend.address }], retries: 0 } },
      routes: [
        { name: 'key-admin', match: { host: 'key.test', path: '/admin' }, upstream: app, auth: { api_key: { keys: [{ name: 'k', key: API_KEY }] } } },
        { name: 'jwt-admin', match: { host: 'jwt.test', path: '/admin' }, upstream: app, auth: { jwt: { secret: SECRET } } },
        { name: 'basic-admin', match: { host: 'basic.test', path: '/admin' }, upstream: app, auth: { basic: { users: [{ name: 'ops', hash: bcryptHash('ops-password') }] } } },
        { name: 'admin-host', match: { host: 'admin.test', path: '/' }, upstream: app, auth: { basic: { users: [{ name: 'ops', hash: bcryptHash('ops-password') }] } } },
        { name: 'rewritten', match: { host: '*', path: '/svc' }, upstream: app, rewrite: '/base' },
        { name: 'stripped', match: { host: '*', path: '/strip/' }, upstream: app, strip_prefix: true },
        // The inverted layout: an open carve-out under an authenticated prefix.
        { name: 'files', match: { host: 'inv.test', path: '/files' }, upstream: app, auth: { api_key: { keys: [{ name: 'k', key: API_KEY }] } } },
        { name: 'files-public', match: { host: 'inv.test', path: '/files/public' }, upstream: app },
        { name: 'open', match: { host: '*', path: '/' }, upstream: app },
      ],
    });
    await waitWorkersReady(sy.adminPort, 2);
    jwt = await signJwt(SECRET, claims({ sub: 'ops' }));
  });

  after(async () => {
    await sy?.stop();
    await backend?.close();
  });

  /** One request over a fresh raw connection; the status (0: closed without an answer) and what the backend saw. */
  async function raw(target: string, host: string, seq: string, extra = ''): Promise<{ status: number; seen: string[] }> {
    const bytes = `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nX-Test-Seq: ${seq}\r\n${extra}Connection: close\r\n\r\n`;
    const { response } = await exchange(sy.port, bytes, { closeWaitMs: 500 });
    return { status: response?.status ?? 0, seen: findBySeq([backend], seq).map((s) => s.req.url) };
  }

  test('every spelling of /admin, behind each auth scheme, is refused (401 or 400) and never reaches the backend', async () => {
    const cases = ['key.test', 'jwt.test', 'basic.test'].flatMap((host) => ADMIN_SPELLINGS.map((target) => ({ host, target })));
    const failures: string[] = [];
    await mapLimit(cases, 6, async ({ host, target }, i) => {
      const r = await raw(target, host, `v-${i}`);
      if (r.seen.length > 0 || (r.status !== 401 && r.status !== 400)) failures.push(`${host} ${JSON.stringify(target)}: status ${r.status}, backend saw ${JSON.stringify(r.seen)}`);
    });
    assert.deepEqual(failures, [], `${failures.length} of ${cases.length} spellings escaped:\n${failures.join('\n')}`);
  });

  test('spellings of an exact auth host (case, trailing dot, port) are claimed by its route', async () => {
    const hosts = ['ADMIN.TEST', 'Admin.Test:80', 'admin.test.', 'admin.test.:8080', 'ADMIN.test.'];
    const failures: string[] = [];
    for (const [i, host] of hosts.entries()) {
      const r = await raw('/anything', host, `h-${i}`);
      if (r.seen.length > 0 || (r.status !== 401 && r.status !== 400)) failures.push(`Host ${host}: status ${r.status}, backend saw ${JSON.stringify(r.seen)}`);
    }
    assert.deepEqual(failures, []);
  });

  test('hosts no backend would accept get 400', async () => {
    for (const [i, host] of ['admin%2etest', 'admin.test..', 'admin..test', "admin.test'", 'adm!n.test'].entries()) {
      const r = await raw('/', host, `bad-host-${i}`);
      assert.equal(r.status, 400, `Host ${host}`);
      assert.deepEqual(r.seen, []);
    }
  });

  test('an open route under an auth prefix claims no spelling that a backend could read as another resource under the prefix', async () => {
    // Case-sensitive, ";"-keeping or dot-keeping backends serve these as resources of /files, not /files/public.
    const spellings = ['/files/PUBLIC', '/files/Public/x', '/files/public;x', '/files/public;x/y', '/files/x/../public', '/files/x/%2e%2e/public/y', '/files//public', '/files/%70ublic', '/files/%EF%BD%90ublic', '/files/x/%E2%80%A5/public'];
    const failures: string[] = [];
    for (const [i, target] of spellings.entries()) {
      const r = await raw(target, 'inv.test', `inv-${i}`);
      if (r.seen.length > 0 || (r.status !== 401 && r.status !== 400)) failures.push(`${JSON.stringify(target)}: status ${r.status}, backend saw ${JSON.stringify(r.seen)}`);
    }
    assert.deepEqual(failures, []);
    assert.deepEqual((await raw('/files/public/a.txt', 'inv.test', 'inv-ok')).seen, ['/files/public/a.txt']);
  });

  test('with the credential, /admin passes; the open route still serves plain paths, forwarded byte for byte', async () => {
    assert.deepEqual((await raw('/admin/x', 'key.test', 'ok-key', `x-api-key: ${API_KEY}\r\n`)).seen, ['/admin/x']);
    assert.deepEqual((await raw('/admin', 'jwt.test', 'ok-jwt', `Authorization: Bearer ${jwt}\r\n`)).seen, ['/admin']);
    assert.deepEqual((await raw('/admin/', 'basic.test', 'ok-basic', `Authorization: ${basicAuth('ops', 'ops-password')}\r\n`)).seen, ['/admin/']);
    for (const [i, target] of OPEN_PATHS.entries()) {
      const r = await raw(target, 'key.test', `open-${i}`);
      assert.equal(r.status, 200, target);
      assert.deepEqual(r.seen, [target]);
    }
  });

  test('rewrite and strip_prefix: the forwarded path never climbs out of the new base', async () => {
    const targets = ['/svc/a/../b', '/svc/%2e%2e/%2e%2e/etc/passwd', '/svc/a/..%2f..%2f..%2fetc', '/svc/.%2e/x', '/svc//a/./b?q=../x', '/strip/..%5c..%5cetc', '/strip/a/%2E%2E/%2E%2E/b'];
    const failures: string[] = [];
    for (const [i, target] of targets.entries()) {
      const r = await raw(target, 'any.test', `rw-${i}`);
      for (const url of r.seen) {
        const path = url.split('?')[0]!;
        const segments = decodeURIComponent(path).split(/[/\\]/);
        const base = target.startsWith('/svc') ? '/base' : '/';
        if (!path.startsWith(base) || segments.includes('..') || segments.includes('.')) failures.push(`${target} forwarded as ${url}`);
      }
    }
    assert.deepEqual(failures, []);
    assert.deepEqual((await raw('/svc/a/./b/../c?q=../x', 'any.test', 'rw-ok')).seen, ['/base/a/c?q=../x']);
    assert.deepEqual((await raw('/svc', 'any.test', 'rw-root')).seen, ['/base']);
  });
});
