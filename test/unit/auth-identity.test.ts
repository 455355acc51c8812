// Identity forwarding: the header names the data path strips from the client,
// and the headers it adds: subject, claims as text, unsafe values left out,
// non-ASCII carried as UTF-8 bytes in the latin1 head.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { identityHeaderNames, identityHeaders } from '../../src/gateway/auth/index.ts';
import type { Identity } from '../../src/gateway/auth/index.ts';
import type { IdentityForwarding } from '../../src/config/types.ts';

const forward: IdentityForwarding = {
  subjectHeader: 'X-Auth-Subject',
  claimHeaders: [
    ['email', 'X-Auth-Email'],
    ['groups', 'X-Auth-Groups'],
    ['level', 'X-Auth-Level'],
    ['org', 'X-Auth-Org'],
    ['missing', 'X-Auth-Missing'],
    ['name', 'X-Auth-Name'],
  ],
};

function identity(claims: Record<string, unknown>, subject = 'user-1'): Identity {
  return { kind: 'jwt', subject, scopes: [], claims };
}

describe('identity forwarding', () => {
  it('lists every identity header once, lower-cased', () => {
    assert.deepEqual(identityHeaderNames({ subjectHeader: 'X-Sub', claimHeaders: [['a', 'X-A'], ['b', 'x-a'], ['c', 'X-Sub']] }), ['x-sub', 'x-a']);
    assert.deepEqual(identityHeaderNames({ claimHeaders: [] }), []);
  });

  it('forwards the subject and claims: strings as-is, lists joined with ",", others as JSON, absent ones omitted', () => {
    const headers = identityHeaders(forward, identity({ email: 'a@b.test', groups: ['ops', 'dev', 7], level: 3, org: { id: 1 }, name: null }));
    assert.deepEqual(headers, [
      ['X-Auth-Subject', 'user-1'],
      ['X-Auth-Email', 'a@b.test'],
      ['X-Auth-Groups', 'ops,dev,7'],
      ['X-Auth-Level', '3'],
      ['X-Auth-Org', '{"id":1}'],
    ]);
  });

  it('leaves out any value holding CR, LF, NUL or another control character; keeps tabs', () => {
    const headers = identityHeaders(forward, identity({ email: 'a@b.test\r\nX-Admin: 1', groups: ['ok', 'bad\n'], level: 'a\0b', org: 'tab\there' }, 'evil\r\nX-Injected: yes'));
    assert.deepEqual(headers, [['X-Auth-Org', 'tab\there']]);
  });

  it('encodes non-ASCII values as UTF-8 bytes in a latin1 string (how heads are written)', () => {
    const [[, value]] = identityHeaders({ subjectHeader: 'X-Sub', claimHeaders: [] }, identity({}, 'José 日本'));
    assert.deepEqual(Buffer.from(value!, 'latin1'), Buffer.from('José 日本', 'utf8'));
  });
});
