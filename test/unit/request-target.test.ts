import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchingHost, pathForms, pathKind, PLAIN, PLAIN_UPPER, resolve, resolvedTarget, SLOW } from '../../src/proxy/request-target.ts';

test('pathKind: plain paths take the fast path, anything needing work does not', () => {
  for (const p of ['/', '/api/v1/users', '/a..b/c', '/x?q=/../%zz.//', "/a-b_c~d!&'()*+,=:@"]) assert.equal(pathKind(p), PLAIN, p);
  for (const p of ['/API', '/a/B?q=1']) assert.equal(pathKind(p), PLAIN_UPPER, p);
  for (const p of ['/.well-known/x', '//a', '/a//', '/./a', '/a/.', '/a/..', '/a/../b', '/a/..?q', '/%61', '/a;b', '/a\\b', '/a#b', '/a?b#c', '/caf\u00e9', '/a b', '/a"b', '/a..b/c.', '/a./b', '/a$b']) assert.equal(pathKind(p), SLOW, p);
});

test('resolve: decoding, dot segments, merged slashes, escapes of the rest upper-cased', () => {
  const cases: Array<[string, string]> = [
    ['/', '/'],
    ['/%61dmin', '/admin'],
    ['/a/%7e%2D%2e_', '/a/~-._'],
    ['/a%2fb%5Cc', '/a/b/c'],
    ['/a\\b', '/a/b'],
    ['//a///b//', '/a/b/'],
    ['/a/./b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/a/.', '/a/'],
    ['/../../a', '/a'],
    ['/x/%2e%2E/a', '/a'],
    ['/x/..%2fa', '/a'],
    ['/a/%3b/%3F/%23/%25', '/a/%3B/%3F/%23/%25'],
    ['/a;x=1/b', '/a;x=1/b'],
    ['/caf\u00c3\u00a9', '/caf%C3%A9'],
    ['/a"<>^`{|}', '/a%22%3C%3E%5E%60%7B%7C%7D'],
    ['/A/B', '/A/B'],
  ];
  for (const [path, want] of cases) assert.equal(resolve(path, 'decode'), want, path);
  assert.equal(resolve('/x/../a//b', 'decode', false), '/x/../a//b');
  assert.equal(resolve('/a%2F..', 'decode', false), '/a/..');
});

test('resolve: what cannot be made unambiguous is refused, with the reason', () => {
  const refused = (path: string, escaped: 'decode' | 'reject' = 'decode'): string => {
    const r = resolve(path, escaped);
    assert.equal(typeof r, 'object', path);
    return (r as { refused: string }).refused;
  };
  assert.match(refused('/a%zz'), /invalid percent-escape "%zz"/);
  assert.match(refused('/a%'), /invalid percent-escape/);
  assert.match(refused('/a%2'), /invalid percent-escape/);
  assert.match(refused('/a%00'), /control character %00/);
  assert.match(refused('/a%0A'), /control character %0A/);
  assert.match(refused('/a%7f'), /control character %7F/);
  assert.match(refused('/%2561'), /double-encoded escape "%2561"/);
  assert.match(refused('/x/..;/admin'), /"\.\." segment with ";params"/);
  assert.match(refused('/x/.%3Bx/admin'), /"\." segment with ";params"/);
  assert.match(refused('/a%2Fb', 'reject'), /escaped slash %2F \(normalize.escaped_slashes: reject\)/);
  assert.match(refused('/a%5cb', 'reject'), /escaped slash %5C/);
  assert.equal(resolve('/a\\b', 'reject'), '/a/b'); // a literal backslash is always a separator
  assert.equal(resolve('/%25zz', 'decode'), '/%25zz'); // "%" then no escape: not double-encoded
});

test('pathForms: every form a backend could give the path', () => {
  const forms = (t: string, foldAlways = false) => pathForms(t, 'decode', foldAlways);
  assert.deepEqual(forms('/api/x?q=1'), { plain: ['/api/x'], folded: [] });
  assert.deepEqual(forms('/api/x', true), { plain: ['/api/x'], folded: ['/api/x'] });
  assert.deepEqual(forms('/ADMIN'), { plain: ['/ADMIN'], folded: ['/admin'] });
  assert.deepEqual(forms('/x/../admin'), { plain: ['/x/../admin', '/admin'], folded: [] });
  assert.deepEqual(forms('/admin;x/y'), { plain: ['/admin;x/y', '/admin/y'], folded: [] });
  assert.deepEqual(forms('/a%2F..'), { plain: ['/a%2F..', '/a/..', '/'], folded: [] });
  assert.deepEqual(forms('/a%3bx'), { plain: ['/a%3bx', '/a%3Bx', '/a'], folded: [] }); // upper-case hex alone needs no folding
  // Windows: a name's trailing dots and spaces dropped, "::$DATA" the file itself; a name of dots only is a dot segment.
  assert.deepEqual(forms('/admin.'), { plain: ['/admin.', '/admin'], folded: [] });
  assert.deepEqual(forms('/a%2e%20/b'), { plain: ['/a%2e%20/b', '/a.%20/b', '/a/b'], folded: [] });
  assert.deepEqual(forms('/admin::$DATA'), { plain: ['/admin::$DATA', '/admin'], folded: ['/admin::$data', '/admin'] });
  assert.deepEqual(forms('/a/.../b'), { plain: ['/a/.../b'], folded: [] });
  assert.deepEqual(forms('/admin.html'), { plain: ['/admin.html'], folded: [] });
  assert.equal(pathKind('/admin.'), SLOW);
  assert.equal(pathKind('/a$b'), SLOW);
  assert.equal(forms('/admin#x'), 'a "#" in the request-target (RFC 9112 §3.2)');
  assert.equal(forms('/a?b#c'), 'a "#" in the request-target (RFC 9112 §3.2)');
  assert.match(forms('/%zz') as string, /invalid percent-escape/);
});

test('pathForms: Unicode compatibility characters in the forms NFKC and Windows best fit give them', () => {
  const forms = (p: string) => {
    const f = pathForms(p, 'decode', false);
    return typeof f === 'string' ? f : f.plain;
  };
  assert.deepEqual(forms('/%EF%BD%81dmin'), ['/%EF%BD%81dmin', '/admin']);
  assert.deepEqual(forms('/x/%E2%80%A5/admin'), ['/x/%E2%80%A5/admin', '/x/../admin', '/admin']);
  assert.deepEqual(forms('/x/..%E2%88%95admin'), ['/x/..%E2%88%95admin', '/x/../admin', '/admin']);
  assert.deepEqual(forms('/admin%EF%BC%8E'), ['/admin%EF%BC%8E', '/admin.', '/admin']);
  // Text that maps to itself adds nothing; bytes that are not UTF-8 are no text to map.
  assert.deepEqual(forms('/static/caf%C3%A9'), ['/static/caf%C3%A9']);
  assert.deepEqual(forms('/a%FF%FE'), ['/a%FF%FE']);
  // A mapping that makes an escape no backend could read ("％ｚｚ" to "%zz") is refused like the escape itself.
  assert.match(forms('/x/%EF%BC%85zz') as string, /invalid percent-escape .* once Unicode compatibility characters are mapped/);
});

test('resolvedTarget: the resolved path, the query as received', () => {
  assert.equal(resolvedTarget('/svc/a/./b/../c?q=../x'), '/svc/a/c?q=../x');
  assert.equal(resolvedTarget('/svc/%2e%2e/%2e%2e/etc'), '/etc');
  assert.equal(resolvedTarget('/plain/path?x'), '/plain/path?x');
});

test('matchingHost: lower-case, no port, no trailing dot; undefined for what no backend takes', () => {
  assert.equal(matchingHost('Admin.Test'), 'admin.test');
  assert.equal(matchingHost('admin.test.'), 'admin.test');
  assert.equal(matchingHost('ADMIN.TEST.:8080'), 'admin.test');
  assert.equal(matchingHost('[::1]:80'), '[::1]');
  assert.equal(matchingHost('127.0.0.1:80'), '127.0.0.1');
  assert.equal(matchingHost('my_host'), 'my_host');
  assert.equal(matchingHost(''), '');
  for (const bad of ['admin%2etest', 'admin..test', 'admin.test..', '.admin.test', "a'b", 'a!b', 'a;b', ':80', 'a b', 'caf\u00e9.test', '[zz]']) assert.equal(matchingHost(bad), undefined, bad);
});
