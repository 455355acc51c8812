// ACME challenge answers in a worker. The primary runs the orders and
// sends every worker the challenges it is being asked to prove. HTTP-01
// (RFC 8555 §8.3): a worker answers GET /.well-known/acme-challenge/<token>
// from them before routing. TLS-ALPN-01 (RFC 8737): the TLS listener asks
// `tlsAlpnContext` for the challenge certificate of a name when, and only
// when, a ClientHello offers the "acme-tls/1" protocol. While ACME is configured the whole prefix belongs to Switchyard,
// in every spelling a backend could read as it (case, escapes, dot
// segments): an unknown token, another host or a traversal gets 404 and
// never reaches a route, so a backend's files under that prefix cannot leak
// and a client cannot make a token answer for a name it was not issued for.
import tls from 'node:tls';
import { asciiLower, matchingHost, pathForms, type EscapedSlashes } from './request-target.js';

/** One challenge the primary is proving: the token in the URL, the answer, and the name it is for. */
export interface AcmeToken {
  type: 'http-01' | 'tls-alpn-01';
  token: string;
  keyAuthorization: string;
  /** The (lower-case) domain the CA validates, which is the Host (or SNI) it sends. */
  domain: string;
  /** tls-alpn-01: the self-signed certificate carrying the acmeIdentifier extension, and its key (PEM). */
  certificate?: { cert: string; key: string };
}

export const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge';
/** RFC 8555 §8.3: a token is base64url, at least 128 bits of entropy. */
const TOKEN = /^[A-Za-z0-9_-]{22,128}$/;

export type ChallengeAnswer = { status: 200; body: string } | { status: 404 };

export class AcmeChallenges {
  private tokens = new Map<string, AcmeToken>();
  /** tls-alpn-01 challenge certificates by domain, as TLS contexts offering only "acme-tls/1". */
  private alpnContexts = new Map<string, tls.SecureContext>();

  constructor(private readonly escapedSlashes: EscapedSlashes) {}

  /**
   * The primary's current set (it always sends the whole set, so a respawned
   * worker catches up in one message). Throws when a challenge certificate
   * is unusable; the set is then left as it was.
   */
  replace(tokens: readonly AcmeToken[]): void {
    const contexts = new Map<string, tls.SecureContext>();
    for (const t of tokens) if (t.type === 'tls-alpn-01' && t.certificate) contexts.set(t.domain, tls.createSecureContext(t.certificate));
    this.tokens = new Map(tokens.filter((t) => t.type === 'http-01').map((t) => [t.token, t]));
    this.alpnContexts = contexts;
  }

  /**
   * The TLS-ALPN-01 challenge certificate for `servername`, while one is
   * being proved and only when it is one of `domains` (the asking listener's
   * own ACME domains): a listener never proves a name another one is
   * configured for, whatever SNI a client sends it.
   */
  tlsAlpnContext(servername: string | undefined, domains: ReadonlySet<string>): tls.SecureContext | undefined {
    if (servername === undefined) return undefined;
    const name = asciiLower(servername);
    return domains.has(name) ? this.alpnContexts.get(name) : undefined;
  }

  /**
   * Whether `target` (origin-form) is under the challenge prefix in any form
   * the router would match. Every such form has a segment that starts with
   * ".", which only a "/." or "\." in the text, or an escape (%2E, or %2F
   * and %5C before a "."), can give: a target with none of them (nearly all
   * requests) costs three indexOf scans here, no regular expression.
   */
  claims(target: string): boolean {
    if (target.indexOf('/.') < 0 && target.indexOf('%') < 0 && target.indexOf('\\.') < 0) return false;
    const forms = pathForms(target, this.escapedSlashes, true);
    // A path the router refuses (bad escape, "#") is refused there with 400.
    if (typeof forms === 'string') return false;
    return forms.folded.some((p) => p === ACME_CHALLENGE_PREFIX || p.startsWith(ACME_CHALLENGE_PREFIX + '/'));
  }

  /** The answer for a claimed request: only the exact path, GET or HEAD, a known token and its own domain as Host. */
  answer(method: string, target: string, host: string | undefined): ChallengeAnswer {
    if (method !== 'GET' && method !== 'HEAD') return { status: 404 };
    const token = target.startsWith(ACME_CHALLENGE_PREFIX + '/') ? target.slice(ACME_CHALLENGE_PREFIX.length + 1) : '';
    if (!TOKEN.test(token)) return { status: 404 };
    const entry = this.tokens.get(token);
    if (entry === undefined) return { status: 404 };
    const requestHost = host === undefined ? undefined : matchingHost(host);
    if (requestHost === undefined || asciiLower(requestHost) !== entry.domain) return { status: 404 };
    return { status: 200, body: entry.keyAuthorization };
  }
}
