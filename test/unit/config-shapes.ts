// The config's shapes cannot drift apart. RawConfig is derived from the schema
// (schema.ts); Config, what normalising makes of it, is written by hand
// (types.ts). The types below pair every key of each schema mapping with its
// key in Config (camelCase, or renamed where normalising changes the unit or
// the shape), so a key added to one side only fails `npm run typecheck` with
// the key's name in the message. config-shapes.test.ts compiles this file
// with keys added to the schema, to show the check does fail.
import type { RawAcme, RawApiKey, RawConfig, RawDnsServers, RawListen, RawListenerTls, RawRoute, RawUpstream, RawUpstreamTls } from '../../src/config/schema.js';
import type * as C from '../../src/config/types.js';

type Camel<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<Camel<Tail>>}` : S;
/** The Config keys a schema mapping's keys become: camelCase unless `Renamed` says otherwise (never: consumed by normalising). */
type NormalisedKeys<Raw, Renamed> = { [K in keyof Raw & string]-?: K extends keyof Renamed ? Renamed[K] : Camel<K> }[keyof Raw & string];
/** What differs between a schema mapping and its Config shape; `Added`: Config keys normalising makes from other keys. */
interface Drift<Raw, Norm, Renamed = object, Added extends string = never> {
  inSchemaOnly: Exclude<NormalisedKeys<Raw, Renamed>, keyof Norm>;
  inConfigOnly: Exclude<keyof Norm, NormalisedKeys<Raw, Renamed> | Added>;
  staleRenames: Exclude<keyof Renamed, keyof Raw>;
}
type NoDrift<D extends { inSchemaOnly: never; inConfigOnly: never; staleRenames: never }> = D;
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Holds<T extends true> = T;

type Auth = NonNullable<RawRoute['auth']>;
type AuthOf<Type extends C.AuthConfig['type']> = Extract<C.AuthConfig, { type: Type }>;

export type ConfigShapes = [
  NoDrift<Drift<RawConfig, C.Config, { shutdown_timeout: 'shutdownTimeoutMs'; tunnel_max_age: 'tunnelMaxAgeMs' }, 'file'>>,
  NoDrift<Drift<RawListen, C.ProxyListenConfig, { proxy_timeout: 'proxyTimeoutMs'; idle_timeout: 'idleTimeoutMs' }>>,
  NoDrift<Drift<RawListenerTls, C.ListenerTlsConfig, { reload_interval: 'reloadIntervalMs'; handshake_timeout: 'handshakeTimeoutMs' }>>,
  // `default: true` orders the list (the default first) and is gone.
  NoDrift<Drift<RawListenerTls['certificates'][number], C.CertificateFiles, { default: never }>>,
  NoDrift<Drift<NonNullable<RawListenerTls['hsts']>, C.HstsConfig, { max_age: 'maxAgeSeconds' }>>,
  NoDrift<Drift<RawAcme, C.AcmeConfig, { ca: 'caPem'; retry: never }, 'retryMinMs' | 'retryMaxMs'>>,
  NoDrift<Drift<NonNullable<RawListen['redirect_https']>, C.RedirectHttpsConfig>>,
  NoDrift<Drift<NonNullable<RawConfig['admin']>, C.AdminConfig>>,
  NoDrift<Drift<RawConfig['logging'], C.LoggingConfig>>,
  NoDrift<
    Drift<RawConfig['limits'], C.LimitsConfig, { headers_timeout: 'headersTimeoutMs'; request_timeout: 'requestTimeoutMs'; keepalive_timeout: 'keepaliveTimeoutMs' }>
  >,
  NoDrift<Drift<RawConfig['auth_failures'], C.AuthFailuresConfig, { rate: 'ratePerSecond' }>>,
  NoDrift<Drift<NonNullable<RawConfig['redis']>, C.RedisConfig, { ca_file: 'caPem'; timeout: 'timeoutMs' }>>,
  NoDrift<Drift<RawConfig['http2'], C.Http2Config>>,
  NoDrift<Drift<RawConfig['tls_tickets'], C.TlsTicketsConfig, { rotate: 'rotateMs' }>>,
  NoDrift<Drift<RawConfig['normalize'], C.Config['normalize']>>,
  // Upstreams: `servers` is a list or a DNS name; the DNS form becomes `discovery`.
  NoDrift<Drift<RawUpstream, C.UpstreamConfig, object, 'name' | 'discovery'>>,
  NoDrift<Drift<Exclude<RawUpstream['servers'], RawDnsServers>[number], C.ServerConfig, object, 'host' | 'port'>>,
  NoDrift<Drift<RawDnsServers, C.DnsDiscoveryConfig, { dns: 'name'; interval: 'intervalMs' }>>,
  NoDrift<Drift<RawUpstream['hash'], C.HashConfig>>,
  NoDrift<Drift<NonNullable<RawUpstream['health']>, C.HealthConfig, { interval: 'intervalMs'; timeout: 'timeoutMs'; slow_start: 'slowStartMs' }>>,
  NoDrift<Drift<RawUpstream['retry_budget'], C.RetryBudgetConfig>>,
  NoDrift<Drift<RawUpstream['outlier'], C.OutlierConfig, { base_ejection: 'baseEjectionMs'; max_ejection: 'maxEjectionMs' }>>,
  NoDrift<Drift<RawUpstream['timeouts'], C.UpstreamTimeouts, { connect: 'connectMs'; response: 'responseMs'; idle: 'idleMs'; total: 'totalMs'; tunnel_idle: 'tunnelIdleMs' }>>,
  NoDrift<Drift<RawUpstreamTls, C.UpstreamTlsConfig>>,
  // Routes: `match` is spread into the route itself.
  NoDrift<Drift<RawRoute, C.RouteConfig, { match: never }, keyof RawRoute['match']>>,
  Holds<Same<Exclude<keyof RawRoute['match'], keyof C.RouteConfig>, never>>,
  NoDrift<
    Drift<NonNullable<RawRoute['timeouts']>, NonNullable<C.RouteConfig['timeouts']>, { connect: 'connectMs'; response: 'responseMs'; idle: 'idleMs'; total: 'totalMs'; tunnel_idle: 'tunnelIdleMs' }>
  >,
  NoDrift<Drift<NonNullable<RawRoute['request_headers']>, C.HeaderRules>>,
  NoDrift<Drift<NonNullable<RawRoute['authorize']>, C.AuthorizeConfig>>,
  NoDrift<Drift<NonNullable<RawRoute['rate_limit']>, C.RateLimitConfig, { rate: 'ratePerSecond' }>>,
  NoDrift<Drift<NonNullable<RawRoute['cors']>, C.CorsConfig, { max_age: 'maxAgeSeconds' }>>,
  // Auth: one method per route, named by `type`; `forward` goes into each.
  NoDrift<Drift<Omit<Auth, 'forward'>, Record<C.AuthConfig['type'], unknown>, { api_key: 'api_key' }>>,
  NoDrift<Drift<NonNullable<Auth['forward']>, C.IdentityForwarding, { subject: 'subjectHeader'; claims: 'claimHeaders' }>>,
  NoDrift<Drift<NonNullable<Auth['api_key']>, AuthOf<'api_key'>, { keys_file: never }, 'type' | 'forward'>>,
  NoDrift<Drift<RawApiKey, C.ApiKeyEntry, { key: never }>>,
  NoDrift<Drift<NonNullable<Auth['jwt']>, C.JwtConfig, { public_key_file: 'publicKeyPem'; clock_skew: 'clockSkewMs' }>>,
  NoDrift<Drift<NonNullable<Auth['basic']>, AuthOf<'basic'>, object, 'type' | 'forward'>>,
  NoDrift<Drift<NonNullable<Auth['basic']>['users'][number], C.BasicUser>>,
  NoDrift<Drift<NonNullable<Auth['mtls']>, AuthOf<'mtls'>, object, 'type' | 'forward'>>,
  // The words a key takes are the schema's list, in Config as in the file.
  Holds<Same<C.Config['scheduling'], RawConfig['scheduling']>>,
  Holds<Same<C.Config['headersWithUnderscores'], RawConfig['headers_with_underscores']>>,
  Holds<Same<C.LoggingConfig['level'], RawConfig['logging']['level']>>,
  Holds<Same<C.LoggingConfig['format'], RawConfig['logging']['format']>>,
  Holds<Same<C.Config['normalize']['escapedSlashes'], RawConfig['normalize']['escaped_slashes']>>,
  Holds<Same<C.ProxyListenConfig['mode'], RawListen['mode']>>,
  Holds<Same<C.ListenerTlsConfig['minVersion'], RawListenerTls['min_version']>>,
  Holds<Same<C.UpstreamConfig['balance'], RawUpstream['balance']>>,
  Holds<Same<C.UpstreamConfig['proxyProtocol'], RawUpstream['proxy_protocol']>>,
  Holds<Same<C.HealthConfig['type'], NonNullable<RawUpstream['health']>['type']>>,
  Holds<Same<C.DnsDiscoveryConfig['type'], RawDnsServers['type']>>,
  Holds<Same<C.JwtConfig['algorithms'], NonNullable<NonNullable<Auth['jwt']>['algorithms']>>>,
  Holds<Same<C.RateLimitConfig['scope'], NonNullable<RawRoute['rate_limit']>['scope']>>,
  Holds<Same<C.RateLimitConfig['fail'], NonNullable<RawRoute['rate_limit']>['fail']>>,
];
