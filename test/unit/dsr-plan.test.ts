// What the primary hands the DSR forwarder process for a config (src/dsr/plan.ts):
// each server's index in the shared region (the health and drain bits that gate
// its new flows), MACs for l2 only, and a key that a reload of the same entry
// keeps (so the forwarder updates it in place and keeps its flows).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { dsrPlan } from '../../src/dsr/plan.ts';

const config = (dsr: string, extra = '') =>
  parseConfigText(
    `admin: { token: t }
listen: [ { host: 0.0.0.0, port: 8080 } ]
upstreams:
  api: { servers: [ { address: 127.0.0.1:9001 }, { address: 127.0.0.1:9002 } ] }
  web:
    servers:
      - { address: 10.77.0.11:80, mac: "02:77:00:00:00:AA", weight: 3 }
${extra}      - { address: 10.77.0.12:80, mac: "02:77:00:00:00:12" }
routes: [ { match: { path: / }, upstream: api } ]
dsr:
  - ${dsr}
`,
    'config/x.yaml',
  ).config;

describe('dsr plan', () => {
  it("points each server at its upstream's slots in the shared region, after the upstreams before it", () => {
    const [entry] = dsrPlan(config('{ interface: eth0, vip: 10.77.0.100, ports: [80, 443], upstream: web, method: l2 }'), 'sy-region-1');
    assert.deepEqual(entry!.servers, [
      { identity: '10.77.0.11:80', ip: '10.77.0.11', mac: '02:77:00:00:00:aa', weight: 3, regionIndex: 2 },
      { identity: '10.77.0.12:80', ip: '10.77.0.12', mac: '02:77:00:00:00:12', weight: 1, regionIndex: 3 },
    ]);
    assert.deepEqual(entry!.options, {
      interface: 'eth0',
      vip: '10.77.0.100',
      ports: [80, 443],
      method: 'l2',
      threads: 1,
      flowTableSize: 262144,
      flowIdleMs: 900_000,
      region: 'sy-region-1',
    });
  });

  it('gives l3 the DSCP value, and its servers their MACs too (the next hop)', () => {
    const [entry] = dsrPlan(config('{ interface: eth0, vip: 10.77.0.100, ports: [80], upstream: web, method: l3, dscp: 10 }'), null);
    assert.equal(entry!.options.dscp, 10);
    assert.equal(entry!.options.region, null);
    assert.deepEqual(entry!.servers.map((s) => s.mac), ['02:77:00:00:00:aa', '02:77:00:00:00:12']);
  });

  it('keeps the key across a server change or a new region, and changes it with the method', () => {
    const dsr = '{ interface: eth0, vip: 10.77.0.100, ports: [80], upstream: web, method: l3, dscp: 10 }';
    const before = dsrPlan(config(dsr), 'sy-region-1')[0]!;
    const added = dsrPlan(config(dsr, '      - { address: 10.77.0.13:80, mac: "02:77:00:00:00:13" }\n'), 'sy-region-2')[0]!;
    assert.equal(added.key, before.key);
    assert.equal(added.servers.length, 3);
    const l2 = dsrPlan(config(dsr.replace('method: l3, dscp: 10', 'method: l2')), 'sy-region-1')[0]!;
    assert.notEqual(l2.key, before.key);
  });
});
