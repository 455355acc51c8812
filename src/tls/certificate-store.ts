// The certificates one TLS listener serves, chosen per handshake by SNI.
// Each certificate is indexed by the DNS names it carries (subjectAltName,
// or the CN when it has none): an exact name first, then a "*.example.com"
// certificate for a name one label below example.com (RFC 6125: a wildcard
// covers exactly one label). A name nothing covers, or a client without SNI,
// gets the default certificate (the first one added).
//
// RSA and ECDSA side by side: every certificate covering a name goes into
// that name's one SecureContext (one per key type, the first added wins),
// and OpenSSL picks the one the client's signature algorithms accept. The
// listener gives that context to the handshake as its initial one (see
// client-hello.ts for why not through SNICallback).
//
// The seam for other sources of certificates (ACME): `set(id, pem)` adds or
// replaces the certificate called `id` and `remove(id)` drops it. Contexts
// are rebuilt at once; handshakes already done keep the context they got, so
// a replaced certificate never disturbs an open connection.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { TlsVersion } from '../config/types.js';

export interface CertificatePem {
  cert: string;
  key: string;
}

/** What every context of a listener shares: protocol versions, ciphers, the client CA, session settings. */
export interface ContextOptions {
  minVersion: TlsVersion;
  ciphers: string;
  sessionTimeoutSeconds: number;
  /** PEM CA bundle that client certificates are verified against (mTLS). */
  clientCa?: string;
}

interface Entry {
  id: string;
  pem: CertificatePem;
  /** Lower-case DNS names, wildcards as "*.example.com". */
  names: string[];
  /** "rsa", "ec", "ed25519"...: a context holds one certificate per key type. */
  keyType: string;
  notAfter: string;
}

/** What a certificate is, for logs and the admin API. */
export interface CertificateInfo {
  id: string;
  names: string[];
  keyType: string;
  notAfter: string;
}

export class CertificateStore {
  private readonly entries = new Map<string, Entry>();
  private exact = new Map<string, SecureContext>();
  /** "example.com" → the context for "*.example.com". */
  private wildcard = new Map<string, SecureContext>();
  private fallback: SecureContext | undefined;
  /** The one context every name gets, when there is exactly one (see onlyContext). */
  private sole: SecureContext | undefined;

  constructor(
    private readonly options: ContextOptions,
    /** Called once for every context made (the listener installs its ticket keys on it). */
    private readonly prepare: (context: SecureContext) => void = () => {},
  ) {}

  /**
   * Adds or replaces the certificate `id`. Throws (and changes nothing) when
   * the PEM is not a certificate and matching key that OpenSSL accepts.
   */
  set(id: string, pem: CertificatePem): CertificateInfo {
    const entry = parseEntry(id, pem);
    // Build it alone first: a bad pair must be refused before it replaces a good one.
    this.context([entry]);
    this.entries.set(id, entry);
    this.rebuild();
    return { id, names: entry.names, keyType: entry.keyType, notAfter: entry.notAfter };
  }

  remove(id: string): void {
    if (this.entries.delete(id)) this.rebuild();
  }

  list(): CertificateInfo[] {
    return [...this.entries.values()].map((e) => ({ id: e.id, names: e.names, keyType: e.keyType, notAfter: e.notAfter }));
  }

  /** The context for a handshake that asked for `servername` (undefined: no SNI). */
  contextFor(servername: string | undefined): SecureContext {
    if (servername !== undefined && servername !== '') {
      const name = normaliseName(servername);
      const exact = this.exact.get(name);
      if (exact !== undefined) return exact;
      const dot = name.indexOf('.');
      if (dot > 0) {
        const wild = this.wildcard.get(name.slice(dot + 1));
        if (wild !== undefined) return wild;
      }
    }
    if (this.fallback === undefined) throw new Error('no certificate loaded');
    return this.fallback;
  }

  /**
   * The context every handshake gets whatever name it asks for, when the
   * listener has exactly one (one certificate, or several that all land in
   * one context): the listener then needs no look at the ClientHello.
   */
  onlyContext(): SecureContext | undefined {
    return this.sole;
  }

  /** Whether a certificate (not the default fallback) carries `host`. */
  covers(host: string): boolean {
    const name = normaliseName(host);
    if (this.exact.has(name)) return true;
    const dot = name.indexOf('.');
    return dot > 0 && this.wildcard.has(name.slice(dot + 1));
  }

  private rebuild(): void {
    const all = [...this.entries.values()];
    const cache = new Map<string, SecureContext>();
    const contextOf = (covering: Entry[]): SecureContext => {
      const chosen = onePerKeyType(covering);
      const key = chosen.map((e) => e.id).join('\0');
      let ctx = cache.get(key);
      if (ctx === undefined) cache.set(key, (ctx = this.context(chosen)));
      return ctx;
    };
    const exact = new Map<string, SecureContext>();
    const wildcard = new Map<string, SecureContext>();
    for (const entry of all) {
      for (const name of entry.names) {
        if (name.startsWith('*.')) {
          const domain = name.slice(2);
          if (!wildcard.has(domain)) wildcard.set(domain, contextOf(all.filter((e) => e.names.includes(name))));
        } else if (!exact.has(name)) {
          exact.set(name, contextOf(all.filter((e) => coversName(e.names, name))));
        }
      }
    }
    const first = all[0];
    this.fallback = first === undefined ? undefined : contextOf(all.filter((e) => e === first || e.names.some((n) => first.names.includes(n))));
    this.exact = exact;
    this.wildcard = wildcard;
    this.sole = cache.size === 1 ? this.fallback : undefined;
  }

  private context(entries: Entry[]): SecureContext {
    const o = this.options;
    const context = createSecureContext({
      cert: entries.map((e) => e.pem.cert),
      key: entries.map((e) => e.pem.key),
      minVersion: o.minVersion,
      ciphers: o.ciphers,
      // The same on every worker (Node's default derives it from argv): a session resumes on any of them.
      sessionIdContext: 'switchyard',
      sessionTimeout: o.sessionTimeoutSeconds,
      ...(o.clientCa === undefined ? {} : { ca: o.clientCa }),
    } as SecureContextOptions);
    this.prepare(context);
    return context;
  }
}

function parseEntry(id: string, pem: CertificatePem): Entry {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(pem.cert);
  } catch (err) {
    throw new Error(`not a PEM certificate: ${(err as Error).message}`);
  }
  try {
    createPrivateKey(pem.key);
  } catch (err) {
    throw new Error(`not a PEM private key: ${(err as Error).message}`);
  }
  if (!x509.checkPrivateKey(createPrivateKey(pem.key))) throw new Error('the private key does not belong to the certificate');
  return { id, pem, names: certificateNames(x509), keyType: x509.publicKey.asymmetricKeyType ?? 'unknown', notAfter: x509.validTo };
}

/** DNS names of the subjectAltName; the CN only when there is no SAN (as browsers no longer read it otherwise). */
export function certificateNames(x509: X509Certificate): string[] {
  const sans = splitSans(x509.subjectAltName);
  const dns = sans.filter((s) => s.startsWith('DNS:')).map((s) => normaliseName(s.slice(4)));
  if (dns.length > 0 || sans.length > 0) return dns;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject);
  return cn ? [normaliseName(cn[1]!)] : [];
}

/**
 * Node prints the SAN as "DNS:a, DNS:b, IP Address:1.2.3.4", quoting an
 * entry (JSON string syntax) when it holds a comma or quote, so a name can't
 * pass itself off as two entries.
 */
export function splitSans(text: string | undefined): string[] {
  if (text === undefined || text === '') return [];
  const out: string[] = [];
  const re = /\s*([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:,|$)/y;
  let m: RegExpExecArray | null;
  while (re.lastIndex < text.length && (m = re.exec(text)) !== null) {
    const value = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
    out.push(`${m[1]!.trim()}:${value}`);
    if (m[0].length === 0) break;
  }
  return out;
}

function normaliseName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function coversName(names: readonly string[], name: string): boolean {
  if (names.includes(name)) return true;
  const dot = name.indexOf('.');
  return dot > 0 && names.includes(`*${name.slice(dot)}`);
}

/**
 * One certificate per key type, RSA last: measured with Node 20.20 /
 * OpenSSL 3, a context given [RSA, ECDSA] never serves the RSA certificate
 * (a client that only takes RSA fails the handshake), while [ECDSA, RSA]
 * serves each to the clients that want it.
 */
function onePerKeyType(entries: Entry[]): Entry[] {
  const seen = new Set<string>();
  const chosen = entries.filter((e) => !seen.has(e.keyType) && seen.add(e.keyType));
  return [...chosen.filter((e) => e.keyType !== 'rsa'), ...chosen.filter((e) => e.keyType === 'rsa')];
}
