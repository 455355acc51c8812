// The contract between the data path and the authentication schemes. The data
// path builds a GatewayRequest from what llhttp parsed; a scheme answers with
// an Identity or a refusal whose reason goes to the log only.

export interface GatewayRequest {
  method: string;
  /** Path and query exactly as received. */
  target: string;
  /** Flat [name, value, ...] as received (latin1 strings). */
  rawHeaders: readonly string[];
  clientIp: string;
  /** The client certificate of a TLS connection on a listener with client_ca; absent: none was presented (or plain HTTP). */
  clientCert?: ClientCertificate | undefined;
}

/** What the TLS handshake established about the client's certificate. */
export interface ClientCertificate {
  /** OpenSSL verified the chain against the listener's client_ca. */
  verified: boolean;
  /** Why not, when not verified (OpenSSL's code, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE). */
  error?: string;
  /** RFC 2253 subject, most specific first: "CN=client,O=Example". */
  subject: string;
  /** "DNS:a.example", "URI:spiffe://x", "email:a@b", "IP Address:10.0.0.1". */
  sans: readonly string[];
}

export interface Identity {
  kind: 'api_key' | 'jwt' | 'basic' | 'mtls';
  /** Key name, JWT `sub`, user name or certificate subject. */
  subject: string;
  scopes: readonly string[];
  /** The JWT payload; for mtls { san: [...] }; empty for the other schemes. */
  claims: Readonly<Record<string, unknown>>;
}

export type AuthResult =
  | { ok: true; identity: Identity }
  | {
      ok: false;
      /** For the log only, never shown to the client (and never holds a secret). */
      reason: string;
      /** Value of the WWW-Authenticate header of the 401, when the scheme defines one. */
      wwwAuthenticate?: string;
      /** Set when nothing was checked because the client is out of attempts: a 429 with Retry-After (whole seconds). */
      retryAfter?: number;
      /** mtls: the specific answer, 401 (no verified certificate) or 403 (a verified one the route does not accept). */
      refusal?: 'client-cert-required' | 'client-cert-refused';
    };

export interface Authenticator {
  /** Never throws or rejects: every failure is an AuthResult. Sync when no I/O or slow hash is needed. */
  authenticate(req: GatewayRequest): AuthResult | Promise<AuthResult>;
  /** Stops background work (JWKS refresh) and drops caches; call when the route table is replaced. */
  close(): void;
}
