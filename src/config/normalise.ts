// Turns schema- and semantics-checked YAML data into the Config every module
// reads: camelCase, durations in ms, sizes in bytes, "auto" resolved, frozen.

import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parseHostPort } from './address.js';
import type { HostPort } from './address.js';
import { parseDuration, parseSize } from './duration.js';
import { MAX_WORKERS } from './schema.js';
import type { RawConfig, RawUpstream } from './schema.js';
import type { Config, HealthConfig, UpstreamConfig } from './types.js';

/** Worker count for "auto": one per core the process may use, capped like explicit counts. */
export function autoWorkers(): number {
  return Math.min(MAX_WORKERS, availableParallelism());
}

export function normalise(raw: RawConfig, file: string): Config {
  const config: Config = {
    file: resolve(file),
    workers: raw.workers === 'auto' ? autoWorkers() : raw.workers,
    scheduling: raw.scheduling,
    listen: raw.listen.map(({ host, port }) => ({ host, port })),
    admin: { ...raw.admin },
    logging: { ...raw.logging },
    limits: {
      maxHeaderBytes: parseSize(raw.limits.max_header_bytes),
      maxUrlBytes: parseSize(raw.limits.max_url_bytes),
      maxBodyBytes: parseSize(raw.limits.max_body_bytes),
      headersTimeoutMs: parseDuration(raw.limits.headers_timeout),
      requestTimeoutMs: parseDuration(raw.limits.request_timeout),
      keepaliveTimeoutMs: parseDuration(raw.limits.keepalive_timeout),
    },
    trustedProxies: [...raw.trusted_proxies],
    shutdownTimeoutMs: parseDuration(raw.shutdown_timeout),
    upstreams: Object.fromEntries(Object.entries(raw.upstreams).map(([name, up]) => [name, upstream(name, up)])),
    routes: raw.routes.map((r) => ({
      name: r.name ?? `${r.match.host}${r.match.path}`,
      host: r.match.host,
      path: r.match.path,
      upstream: r.upstream,
    })),
    demoBackends: raw.demo_backends.map(hostPort),
  };
  return deepFreeze(config);
}

function upstream(name: string, up: RawUpstream): UpstreamConfig {
  const out: UpstreamConfig = {
    name,
    balance: up.balance,
    hash: up.hash.balance_factor === undefined ? { key: up.hash.key } : { key: up.hash.key, balanceFactor: up.hash.balance_factor },
    servers: up.servers.map((s) => ({ address: s.address, ...hostPort(s.address), weight: s.weight })),
    retries: up.retries,
    retryBudget: { percent: up.retry_budget.percent, minPerSecond: up.retry_budget.min_per_second },
    retryBodyBytes: parseSize(up.retry_body_bytes),
    outlier: {
      consecutiveFailures: up.outlier.consecutive_failures,
      baseEjectionMs: parseDuration(up.outlier.base_ejection),
      maxEjectionMs: parseDuration(up.outlier.max_ejection),
      maxEjectionPercent: up.outlier.max_ejection_percent,
    },
    timeouts: {
      connectMs: parseDuration(up.timeouts.connect),
      responseMs: parseDuration(up.timeouts.response),
      idleMs: parseDuration(up.timeouts.idle),
      ...(up.timeouts.total === undefined ? {} : { totalMs: parseDuration(up.timeouts.total) }),
    },
    maxIdlePerServer: up.max_idle_per_server,
  };
  if (up.health) {
    const h = up.health;
    const health: HealthConfig = {
      path: h.path,
      intervalMs: parseDuration(h.interval),
      timeoutMs: parseDuration(h.timeout),
      rise: h.rise,
      fall: h.fall,
      expectStatus: expandStatuses(h.expect_status),
    };
    if (h.slow_start !== undefined) health.slowStartMs = parseDuration(h.slow_start);
    out.health = health;
  }
  return out;
}

/** Addresses were checked by checkSemantics; a failure here is a bug. */
function hostPort(text: string): HostPort {
  const parsed = parseHostPort(text);
  if (typeof parsed === 'string') throw new Error(`unchecked address ${text}: ${parsed}`);
  return parsed;
}

/**
 * Status classes ("2xx") become every code in them, so health checks need a
 * single `includes` test: the default ["2xx", "3xx"] is 200..399.
 */
export function expandStatuses(spec: number | string | (number | string)[]): number[] {
  const codes = new Set<number>();
  for (const item of Array.isArray(spec) ? spec : [spec]) {
    if (typeof item === 'number') {
      codes.add(item);
    } else {
      const base = Number(item[0]) * 100;
      for (let code = base; code < base + 100; code++) codes.add(code);
    }
  }
  return [...codes].sort((a, b) => a - b);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
