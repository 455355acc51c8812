// Per-route header rewriting: remove, then set (replace), then add (append).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyHeaderRules, headerNameEquals } from '../../src/gateway/header-rules.js';

const none = { set: [], add: [], remove: [] };

test('remove drops every copy, case-insensitively', () => {
  const raw = ['Host', 'a', 'X-Debug', '1', 'x-debug', '2', 'Accept', '*/*'];
  assert.deepEqual(applyHeaderRules(raw, { ...none, remove: ['X-DEBUG'] }), ['Host', 'a', 'Accept', '*/*']);
});

test('set replaces all copies with one, add appends alongside existing copies', () => {
  const raw = ['Host', 'a', 'x-env', 'dev', 'X-Env', 'qa', 'Via', '1.1 edge'];
  const out = applyHeaderRules(raw, {
    set: [['X-Env', 'prod']],
    add: [['Via', '1.1 switchyard'], ['X-Env', 'extra']],
    remove: [],
  });
  assert.deepEqual(out, ['Host', 'a', 'Via', '1.1 edge', 'X-Env', 'prod', 'Via', '1.1 switchyard', 'X-Env', 'extra']);
});

test('order: remove, then set, then add (a removed name can be set or added back)', () => {
  const raw = ['X-A', 'old', 'X-B', 'old'];
  const out = applyHeaderRules(raw, { set: [['x-a', 'new']], add: [['X-B', 'added']], remove: ['x-a', 'x-b'] });
  assert.deepEqual(out, ['x-a', 'new', 'X-B', 'added']);
});

test('pure: no rules copy the list; inputs are untouched', () => {
  const raw = Object.freeze(['Host', 'a', 'Accept', '*/*']);
  const rules = Object.freeze({ set: [['Host', 'b']] as Array<[string, string]>, add: [], remove: [] });
  const empty = applyHeaderRules(raw, none);
  assert.deepEqual(empty, raw);
  assert.notEqual(empty, raw);
  assert.deepEqual(applyHeaderRules(raw, rules), ['Accept', '*/*', 'Host', 'b']);
  assert.deepEqual(raw, ['Host', 'a', 'Accept', '*/*']);
});

test('headerNameEquals folds only ASCII letters', () => {
  assert.equal(headerNameEquals('Content-Type', 'content-type'), true);
  assert.equal(headerNameEquals('x-a', 'x-b'), false);
  assert.equal(headerNameEquals('x^', 'x~'), false, '^ and ~ differ by 0x20 but are not letters');
  assert.equal(headerNameEquals('x-ab', 'x-a'), false);
});
