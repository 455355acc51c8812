// The oracle: judges one case from what the client saw and what the strict
// backend recorded. It only fails on what a correct proxy can never do, never
// on a refusal: a proxy may answer 400 or close at any point, but it must not
// forward a request the client did not frame as one, forward anything after a
// message that ends the connection, forward a request whose head or body
// differs in framing from the client's, let a keyless request reach /admin,
// or hand one message's answer, header or trailer to another.

import type { ForwardedRequest, IllFramed } from './strict-backend.js';
import { MARKER_RE, type FuzzCase, type Message } from './generate.js';

export interface Observation {
  /** One entry per response, in order: its raw bytes, status and headers (1xx other than 101 skipped). */
  responses: Array<{ status: number; raw: Buffer; headers: Array<[string, string]>; body: Buffer; complete: boolean }>;
  /** Bytes after a 101 (the tunnel). */
  tunnel: Buffer;
  closed: boolean;
  /** The client bytes could not be parsed as responses: the reason. */
  malformed?: string;
  /** Still open, waiting for an answer, when the case deadline passed. */
  timedOut: boolean;
}

export interface Finding {
  seed: number;
  index: number;
  kind: string;
  detail: string;
  /** What reached the backend, when the finding is about a forward. */
  forwarded?: string;
}

const markersIn = (text: string): string[] => [...new Set(text.match(MARKER_RE) ?? [])];
const header = (list: Array<[string, string]>, name: string): string[] => list.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);

/**
 * Whether a request-target is /admin to a lenient backend, which decodes %XX
 * of unreserved characters, drops ;params, merges slashes, removes dot
 * segments and folds case: all of those belong to the auth route.
 */
export function underAdmin(target: string): boolean {
  const path = resolvedPath(target);
  return path === '/admin' || path.startsWith('/admin/');
}

function resolvedPath(target: string): string {
  let path = target.replace(/^https?:\/\/[^/]*/i, '').split('?')[0]!.split('#')[0]!;
  path = path.replace(/%([0-9a-f]{2})/gi, (all, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9._~-]/.test(c) ? c : all;
  });
  const out: string[] = [];
  for (const seg of path.split('/').map((s) => s.split(';')[0]!)) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg.toLowerCase());
  }
  return `/${out.join('/')}`;
}

/** Index of the first message after which nothing of the connection may be forwarded. */
function closingIndex(messages: readonly Message[], obs: Observation | undefined): number {
  let end = messages.findIndex((m) => m.cls === 'terminal' || m.cls === 'frame-error' || m.cls === 'smuggled');
  if (end < 0) end = messages.length;
  obs?.responses.forEach((res, p) => {
    // An answer of the proxy's own (no echo) that announces a close ends the connection.
    const own = header(res.headers, 'x-fuzz-echo').length === 0;
    const closing = header(res.headers, 'connection').some((v) => /(^|,)\s*close\s*(,|$)/i.test(v));
    if (own && closing && res.status >= 400) end = Math.min(end, p);
  });
  return end;
}

const findMessage = (fc: FuzzCase, marker: string): { conn: number; at: number; message: Message } | undefined => {
  for (let c = 0; c < fc.conns.length; c++) {
    const at = fc.conns[c]!.messages.findIndex((m) => m.marker === marker);
    if (at >= 0) return { conn: c, at, message: fc.conns[c]!.messages[at]! };
  }
  return undefined;
};

/** The marker a forwarded request belongs to: the one in its target (the case is in it). */
export function targetMarker(req: ForwardedRequest): string | undefined {
  return markersIn(req.target)[0];
}

/**
 * Judges a case. `observations` is undefined when a late forward is judged
 * after its case was: then only the rules that need no client view apply.
 */
export function judge(fc: FuzzCase, observations: Observation[] | undefined, forwarded: ForwardedRequest[], illFramed: IllFramed[]): Finding[] {
  const findings: Finding[] = [];
  const add = (kind: string, detail: string, forwardedText?: string): void => {
    findings.push({ seed: fc.seed, index: fc.index, kind, detail, ...(forwardedText === undefined ? {} : { forwarded: forwardedText }) });
  };
  const seen = new Map<string, number>();
  for (const req of forwarded) {
    const text = req.head + req.trailerText;
    const marker = targetMarker(req);
    if (marker === undefined) {
      add('unattributed', `a request without a marker in its target: ${req.method} ${req.target}`, text);
      continue;
    }
    const found = findMessage(fc, marker);
    if (found === undefined) {
      add('unknown-marker', `a request for ${marker}, which the client never sent as a request`, text);
      continue;
    }
    const { conn, at, message } = found;
    const others = markersIn(text).filter((m) => m !== marker);
    if (others.length > 0) add('crossed-request', `${marker} was forwarded carrying ${others.join(', ')} (a header or trailer of another message)`, text);
    if (message.cls === 'smuggled' || marker.includes('.S')) {
      add('smuggled', `${marker} was written after a message that ends the connection, or inside a body, and reached the backend as a request`, text);
      continue;
    }
    if (message.cls === 'reject' || message.cls === 'frame-error') add('forwarded-invalid', `${marker} (${message.cls}: ${message.what.join(', ')}) must be refused, but was forwarded`, text);
    const end = closingIndex(fc.conns[conn]!.messages, observations?.[conn]);
    if (at > end) add('forwarded-after-close', `${marker} came after message ${end} of its connection, which ends the connection, and was forwarded`, text);
    if (!message.keyed && underAdmin(req.target)) add('auth-bypass', `${marker} reached ${req.target} (an /admin path) without the API key`, text);
    if (message.body !== undefined && !req.body.equals(message.body)) {
      add('body-mismatch', `${marker}: the backend got a body of ${req.body.length} bytes ${JSON.stringify(req.body.toString('latin1'))}, the client framed ${message.body.length} bytes ${JSON.stringify(message.body.toString('latin1'))}`, text);
    }
    const proto = header(req.headers, 'x-forwarded-proto');
    if (proto.length !== 1 || proto[0] === 'spoofed') add('unprocessed', `${marker} reached the backend without the proxy's own X-Forwarded-Proto (got ${JSON.stringify(proto)}): its bytes were passed through raw`, text);
    if (header(req.headers, 'proxy-authorization').length > 0) add('proxy-authorization', `${marker} reached the backend with Proxy-Authorization, which is for the proxy`, text);
    seen.set(marker, (seen.get(marker) ?? 0) + 1);
  }
  for (const [marker, count] of seen) if (count > 1) add('duplicate', `${marker} was forwarded ${count} times (retries are off)`);
  for (const bad of illFramed) {
    add('ill-framed', `the strict backend refused what the proxy forwarded: ${bad.reason}`, bad.bytes.toString('latin1').slice(0, 2000));
  }

  observations?.forEach((obs, c) => {
    const messages = fc.conns[c]!.messages;
    if (obs.malformed !== undefined) add('malformed-response', `connection ${c}: ${obs.malformed}`);
    obs.responses.forEach((res, p) => {
      const expected = messages[p]?.marker;
      const foreign = markersIn(res.raw.toString('latin1')).filter((m) => m !== expected);
      // The backend's answer must arrive whole: echo <marker> <method> <body length>.
      const echo = header(res.headers, 'x-fuzz-echo')[0];
      const want = messages[p]?.body?.length;
      // An early answer (sent before the body was in) says "early" instead of the length.
      const m = /^echo (\S+) \S+ (\d+|early)\n$/.exec(res.body.toString('latin1'));
      if (echo !== undefined && res.status === 200 && messages[p]?.method !== 'HEAD' && (!res.complete || !m || m[1] !== echo || (want !== undefined && m[2] !== 'early' && Number(m[2]) !== want))) {
        add('response-body', `connection ${c}, response ${p} to ${echo}: body ${JSON.stringify(res.body.toString('latin1'))}${res.complete ? '' : ' (truncated)'}, the backend sent "echo ${echo} <method> ${want ?? '?'}"`);
      }
      if (foreign.length > 0) {
        add('crossed-response', `connection ${c}, response ${p} (${res.status}, answering ${expected ?? 'nothing sent'}) carries ${foreign.join(', ')}: ${JSON.stringify(res.raw.toString('latin1').slice(0, 600))}`);
      }
    });
    // The tunnel echoes what the client wrote after the Upgrade request, byte for byte.
    const upgradeAt = obs.responses.findIndex((res) => res.status === 101);
    if (upgradeAt >= 0) {
      const sent = Buffer.concat(messages.slice(upgradeAt + 1).map((m) => m.bytes));
      const got = obs.tunnel.subarray(0, sent.length);
      if (!got.equals(sent.subarray(0, got.length))) {
        add('tunnel-data', `connection ${c}: the tunnel after ${messages[upgradeAt]?.marker} echoed ${JSON.stringify(obs.tunnel.toString('latin1').slice(0, 400))}, the client sent ${JSON.stringify(sent.toString('latin1').slice(0, 400))}`);
      }
    }
    const foreignTunnel = markersIn(obs.tunnel.toString('latin1')).filter((m) => !m.startsWith(`FZ${fc.seed}.${fc.index}.${c}.`));
    if (foreignTunnel.length > 0) add('crossed-response', `connection ${c}: the tunnel carried ${foreignTunnel.join(', ')}`);
    if (obs.timedOut) {
      const u = obs.responses.length;
      const waiting = messages[u];
      if (waiting !== undefined && (waiting.cls === 'ok' || waiting.cls === 'terminal')) {
        add('hang', `connection ${c}: no answer to ${waiting.marker} (${waiting.what.join(', ')}) and no close within the case deadline`);
      }
    }
  });
  return findings;
}
