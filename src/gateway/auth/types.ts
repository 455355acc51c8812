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
}

export interface Identity {
  kind: 'api_key' | 'jwt' | 'basic';
  /** Key name, JWT `sub` or user name. */
  subject: string;
  scopes: readonly string[];
  /** The JWT payload; empty for the other schemes. */
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
    };

export interface Authenticator {
  /** Never throws or rejects: every failure is an AuthResult. Sync when no I/O or slow hash is needed. */
  authenticate(req: GatewayRequest): AuthResult | Promise<AuthResult>;
  /** Stops background work (JWKS refresh) and drops caches; call when the route table is replaced. */
  close(): void;
}
