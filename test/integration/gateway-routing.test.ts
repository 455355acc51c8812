// Issue 5 acceptance, routing: a table of 300+ routes over exact hosts,
// wildcard hosts and "*", with strip_prefix, rewrite, request and response
// header rules, method and header conditions. Each route is hit by at least
// one request through the real CLI (2 workers); each request must reach the
// expected upstream (one recording backend per upstream) with the expected
// path and headers. Every route sets `X-Route: <name>` upstream, so the
// route that served a request is known exactly. The order checked is the one
// config/examples/api-gateway.yaml documents: exact host, then "*.domain"
// wildcards (longest first), then "*"; within those the longest path prefix
// on a segment boundary; among equal prefixes, more conditions first.
// Also: per-route timeouts and retries override the upstream's.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { closedPort, startBackend, type Backend } from '../helpers/backend.js';
import { findBySeq, mapLimit, receivedAll, replyAll, send } from '../helpers/gateway.js';
import { startSwitchyard, type Switchyard } from '../helpers/switchyard.js';

const UPSTREAMS = 4;

interface RouteSpec {
  name: string;
  match: { host: string; path: string; methods?: string[]; headers?: Record<string, string> };
  upstream: string;
  strip_prefix?: boolean;
  rewrite?: string;
  request_headers?: { set?: Record<string, string>; add?: Record<string, string>; remove?: string[] };
  response_headers?: { set?: Record<string, string>; add?: Record<string, string>; remove?: string[] };
}

interface Case {
  host: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  /** The route that must serve it. */
  route: string;
  /** The request-target the upstream must see. */
  url: string;
}

/** Header rules by route number: which rule the route carries (checked in both directions). */
type Variant = 'plain' | 'set' | 'add' | 'remove' | 'response';
const VARIANTS: Variant[] = ['plain', 'set', 'add', 'remove', 'response'];

const routes: RouteSpec[] = [];
const variantOf = new Map<string, Variant>();
const backendOf = new Map<string, number>();

/** Adds a route; its upstream and header-rule variant follow from its position. */
function route(match: RouteSpec['match'], extra: Partial<RouteSpec> = {}): string {
  const n = routes.length;
  const name = `r${n}`;
  const variant = VARIANTS[n % VARIANTS.length]!;
  const upstream = n % UPSTREAMS;
  const spec: RouteSpec = { name, match, upstream: `u${upstream}`, ...extra, request_headers: { set: { 'X-Route': name } } };
  if (variant === 'set') spec.request_headers!.set!['X-Override'] = `route-${name}`;
  if (variant === 'add') spec.request_headers!.add = { 'X-Added': `add-${name}` };
  if (variant === 'remove') spec.request_headers!.remove = ['X-Remove-Me'];
  if (variant === 'response') spec.response_headers = { remove: ['X-Backend-Internal'], set: { 'X-Resp': `route-${name}` }, add: { 'X-Resp-Added': name } };
  routes.push(spec);
  variantOf.set(name, variant);
  backendOf.set(name, upstream);
  return name;
}

const cases: Case[] = [];
const exact = (host: string, path: string, r: string, url = path, method = 'GET', headers?: Record<string, string>): void => {
  cases.push({ host, method, path, route: r, url, ...(headers ? { headers } : {}) });
};

// "*" catch-all first in the file: position in the config must not matter.
const catchAll = route({ host: '*', path: '/' });

// A. 40 exact hosts × 3 routes: strip_prefix, rewrite, plain; segment boundaries.
for (let i = 0; i < 40; i++) {
  const host = `svc${i}.api.test`;
  const plain = route({ host, path: '/v1' });
  const strip = route({ host, path: '/v1/items' }, { strip_prefix: true });
  const rewritten = route({ host, path: '/v1/items/special' }, { rewrite: '/special-internal' });
  // Host names compare case-insensitively and without the port.
  const sent = i % 5 === 0 ? host.toUpperCase() : i % 5 === 1 ? `${host}:8080` : host;
  if (i % 4 === 0) exact(sent, '/v1/items', strip, '/');
  else if (i % 4 === 1) exact(sent, '/v1/items?x=1', strip, '/?x=1');
  else exact(sent, `/v1/items/${i}?q=a%2Fb`, strip, `/${i}?q=a%2Fb`);
  exact(sent, `/v1/items/special/${i}`, rewritten, `/special-internal/${i}`);
  exact(sent, `/v1/itemsX/${i}`, plain); // not a segment boundary of /v1/items
  exact(sent, `/v1/items/specialist`, strip, '/specialist'); // nor of /v1/items/special
}

// B. 20 wildcard domains: "*.tJ", the longer "*.deep.tJ", an exact host inside them.
for (let j = 0; j < 20; j++) {
  const domain = `t${j}.wild.test`;
  const wild = route({ host: `*.${domain}`, path: '/app' });
  const deep = route({ host: `*.deep.${domain}`, path: '/app' }, { rewrite: '/deep-app' });
  const exactHost = route({ host: `exact.${domain}`, path: '/app' });
  exact(`a.${domain}`, `/app/${j}`, wild);
  exact(`x.y.${domain}`, '/app', wild); // any depth of subdomain
  exact(`q.deep.${domain}`, `/app/${j}`, deep, `/deep-app/${j}`); // longest wildcard first
  exact(`exact.${domain}`, '/app', exactHost);
  exact(domain, '/app', catchAll); // "*.domain" never takes the bare domain
  exact(`a.${domain}.evil.test`, '/app', catchAll);
  if (j < 5) {
    const wildDeeper = route({ host: `*.${domain}`, path: '/app/deeper' });
    const wildShared = route({ host: `*.${domain}`, path: '/shared' }, { strip_prefix: true });
    exact(`exact.${domain}`, '/app/deeper', exactHost); // the exact host wins over a longer wildcard prefix
    exact(`b.${domain}`, '/app/deeper/1', wildDeeper);
    exact(`exact.${domain}`, '/shared/x', wildShared, '/x'); // nothing for it under the exact host: the wildcard
  }
}

// C. "*" routes: 60 prefixes, 20 longer ones beneath them.
const pubRoutes: string[] = [];
for (let k = 0; k < 60; k++) {
  const extra: Partial<RouteSpec> = k % 3 === 1 ? { strip_prefix: true } : k % 3 === 2 ? { rewrite: `/public/${k}` } : {};
  pubRoutes.push(route({ host: '*', path: `/pub/${k}` }, extra));
}
for (let k = 0; k < 60; k++) {
  const r = pubRoutes[k]!;
  const url = k % 3 === 1 ? '/file.txt' : k % 3 === 2 ? `/public/${k}/file.txt` : `/pub/${k}/file.txt`;
  exact('other.test', `/pub/${k}/file.txt`, r, url);
  exact('other.test', `/pub/${k}x`, catchAll); // "/pub/1x" is not under "/pub/1"
}
for (let k = 0; k < 20; k++) {
  const v2 = route({ host: '*', path: `/pub/${k}/v2/` }, { rewrite: `/v2-internal/${k}/` });
  exact('other.test', `/pub/${k}/v2/file`, v2, `/v2-internal/${k}/file`);
}
// An exact host's "/" beats a "*" route with a longer prefix.
const prio = route({ host: 'prio.api.test', path: '/' });
exact('prio.api.test', '/pub/3/file.txt', prio);
// A host with routes but none for this path falls through to "*".
exact('svc3.api.test', '/pub/4/file.txt', pubRoutes[4]!, '/file.txt');

// E. Method conditions: the conditional route wins over the plain one whatever the config order,
// and a longer prefix beats both.
for (let i = 0; i < 10; i++) {
  const host = `m${i}.api.test`;
  const plain = route({ host, path: '/res' });
  const writes = route({ host, path: '/res', methods: ['POST', 'PUT'] });
  const longer = route({ host, path: '/res/long' });
  exact(host, `/res/${i}`, plain);
  exact(host, `/res/${i}`, writes, `/res/${i}`, i % 2 === 0 ? 'POST' : 'PUT');
  exact(host, `/res/${i}`, plain, `/res/${i}`, 'DELETE');
  exact(host, `/res/long/${i}`, longer, `/res/long/${i}`, 'POST');
}

// F. Header conditions: two conditions before one before none.
for (let i = 0; i < 10; i++) {
  const host = `h${i}.api.test`;
  const plain = route({ host, path: '/res' });
  const v2 = route({ host, path: '/res', headers: { 'x-version': '2' } });
  const v2post = route({ host, path: '/res', methods: ['POST'], headers: { 'x-version': '2' } });
  exact(host, '/res', plain);
  exact(host, '/res', v2, '/res', 'GET', { 'X-Version': '2' });
  exact(host, '/res', v2post, '/res', 'POST', { 'x-version': '2' });
  exact(host, '/res', plain, '/res', 'POST', { 'X-Version': '3' });
}

describe('gateway routing: hundreds of routes', () => {
  const backends: Backend[] = [];
  let slowBackend: Backend;
  let sy: Switchyard;

  before(async () => {
    for (let i = 0; i < UPSTREAMS; i++) {
      backends.push(
        await startBackend({
          respond: () => ({
            status: 200,
            headers: [
              ['Content-Type', 'text/plain'],
              ['X-Backend-Internal', 'secret'],
              ['X-Resp', 'backend'],
            ],
            body: `backend ${i}`,
          }),
        }),
      );
    }
    slowBackend = await startBackend({ respond: () => ({ status: 200, body: 'slow', delayMs: 800 }) });
    const refused = await closedPort();
    const upstreams: Record<string, unknown> = {};
    for (let i = 0; i < UPSTREAMS; i++) upstreams[`u${i}`] = { servers: [{ address: backends[i]!.address }], retries: 0 };
    upstreams.slow = { servers: [{ address: slowBackend.address }], retries: 0, timeouts: { response: '5s' } };
    // Half the servers refuse; passive ejection off, so only retries can hide the refusals.
    upstreams.flaky = {
      servers: [{ address: `127.0.0.1:${refused}` }, { address: backends[0]!.address }],
      retries: 0,
      retry_budget: { percent: 100, min_per_second: 1000 },
      outlier: { consecutive_failures: 100000 },
    };
    const extra = [
      { name: 'timeout-short', match: { host: 'timeouts.test', path: '/short' }, upstream: 'slow', timeouts: { response: '300ms' } },
      { name: 'timeout-default', match: { host: 'timeouts.test', path: '/default' }, upstream: 'slow' },
      { name: 'retry-on', match: { host: 'retries.test', path: '/on' }, upstream: 'flaky', retries: 1 },
      { name: 'retry-off', match: { host: 'retries.test', path: '/off' }, upstream: 'flaky' },
    ];
    sy = await startSwitchyard({ upstreams, routes: [...routes, ...extra] });
  });

  after(async () => {
    await sy?.stop();
    for (const b of backends) await b.close();
    await slowBackend?.close();
  });

  test(`the table holds ${routes.length} routes and every one is hit`, () => {
    assert.ok(routes.length >= 300, `only ${routes.length} routes`);
    const hit = new Set(cases.map((c) => c.route));
    assert.deepEqual(
      routes.map((r) => r.name).filter((n) => !hit.has(n)),
      [],
      'routes without a test request',
    );
  });

  test('each request reaches the right upstream with the right path and headers', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const failures: string[] = [];
    try {
      await mapLimit(cases, 16, async (c, i) => {
        const seq = String(i);
        const what = `#${i} ${c.method} ${c.host}${c.path} (want ${c.route})`;
        const reply = await send({
          port: sy.port,
          host: c.host,
          method: c.method,
          path: c.path,
          agent,
          headers: { 'X-Test-Seq': seq, 'X-Remove-Me': 'client', 'X-Override': 'client', 'X-Added': 'client', ...c.headers },
        });
        const problems: string[] = [];
        if (reply.status !== 200) problems.push(`status ${reply.status}: ${reply.body.slice(0, 100)}`);
        const seen = findBySeq(backends, seq);
        if (seen.length !== 1) {
          failures.push(`${what}: reached ${seen.length} upstream requests; ${problems.join('; ')}`);
          return;
        }
        const { backend, req } = seen[0]!;
        const servedBy = receivedAll(req, 'x-route');
        if (servedBy.length !== 1 || servedBy[0] !== c.route) problems.push(`served by route ${JSON.stringify(servedBy)}`);
        if (backend !== backendOf.get(c.route)) problems.push(`reached backend ${backend}, want ${backendOf.get(c.route)}`);
        if (req.url !== c.url) problems.push(`upstream path ${req.url}, want ${c.url}`);
        if (req.method !== c.method) problems.push(`upstream method ${req.method}`);
        // Header rules of the route that must have served it, in both directions.
        const variant = variantOf.get(c.route)!;
        const override = receivedAll(req, 'x-override');
        const added = receivedAll(req, 'x-added');
        const removed = receivedAll(req, 'x-remove-me');
        const wantOverride = variant === 'set' ? [`route-${c.route}`] : ['client'];
        const wantAdded = variant === 'add' ? ['client', `add-${c.route}`] : ['client'];
        const wantRemoved = variant === 'remove' ? [] : ['client'];
        if (JSON.stringify(override) !== JSON.stringify(wantOverride)) problems.push(`X-Override upstream ${JSON.stringify(override)}, want ${JSON.stringify(wantOverride)}`);
        if (JSON.stringify([...added].sort()) !== JSON.stringify(wantAdded.sort())) problems.push(`X-Added upstream ${JSON.stringify(added)}, want ${JSON.stringify(wantAdded)}`);
        if (JSON.stringify(removed) !== JSON.stringify(wantRemoved)) problems.push(`X-Remove-Me upstream ${JSON.stringify(removed)}, want ${JSON.stringify(wantRemoved)}`);
        const internal = replyAll(reply, 'x-backend-internal');
        const resp = replyAll(reply, 'x-resp');
        const respAdded = replyAll(reply, 'x-resp-added');
        if (variant === 'response') {
          if (internal.length !== 0) problems.push('X-Backend-Internal not removed from the response');
          if (JSON.stringify(resp) !== JSON.stringify([`route-${c.route}`])) problems.push(`X-Resp ${JSON.stringify(resp)}`);
          if (JSON.stringify(respAdded) !== JSON.stringify([c.route])) problems.push(`X-Resp-Added ${JSON.stringify(respAdded)}`);
        } else if (JSON.stringify(internal) !== '["secret"]' || JSON.stringify(resp) !== '["backend"]' || respAdded.length !== 0) {
          problems.push(`response headers changed by a route without response rules: ${JSON.stringify({ internal, resp, respAdded })}`);
        }
        if (problems.length > 0) failures.push(`${what}: ${problems.join('; ')}`);
      });
    } finally {
      agent.destroy();
    }
    assert.equal(failures.length, 0, `${failures.length} of ${cases.length} requests went wrong; first ones:\n${failures.slice(0, 25).join('\n')}`);
  });

  test("a route's response timeout overrides its upstream's", async () => {
    const t0 = Date.now();
    const short = await send({ port: sy.port, host: 'timeouts.test', path: '/short' });
    const shortMs = Date.now() - t0;
    assert.equal(short.status, 504, short.body);
    assert.ok(shortMs < 750, `504 after ${shortMs} ms; the route says 300ms`);
    const long = await send({ port: sy.port, host: 'timeouts.test', path: '/default' });
    assert.equal(long.status, 200, `the upstream's 5s applies to the other route: ${long.body}`);
  });

  test("a route's retries override its upstream's", async () => {
    const off: number[] = [];
    for (let i = 0; i < 12; i++) off.push((await send({ port: sy.port, host: 'retries.test', path: `/off/${i}` })).status);
    assert.ok(off.includes(502), `upstream retries 0, half the servers refuse: expected some 502, got ${off.join(' ')}`);
    const on: number[] = [];
    for (let i = 0; i < 12; i++) on.push((await send({ port: sy.port, host: 'retries.test', path: `/on/${i}` })).status);
    assert.deepEqual(on, new Array(12).fill(200), 'with route retries 1 every refused connect is retried on the other server');
  });
});
