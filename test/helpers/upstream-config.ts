// A complete UpstreamConfig ("app", source-ip hashing) for what builds
// balancers without parsing a config file: the balancer unit tests and
// bench/balancer-pick.ts. The fields a balancer does not read have fixed,
// valid values.
import type { ServerSlot } from '../../src/balancer/types.js';
import type { BalanceAlgorithm, UpstreamConfig } from '../../src/config/types.js';

/** `balanceFactor`: the bounded-load factor of source hashing (absent: unbounded). */
export function upstreamConfig(balance: BalanceAlgorithm, servers: ServerSlot[], balanceFactor?: number): UpstreamConfig {
  return {
    name: 'app',
    balance,
    hash: balanceFactor === undefined ? { key: 'source-ip' } : { key: 'source-ip', balanceFactor },
    servers,
    retries: 1,
    retryBudget: { percent: 20, minPerSecond: 5 },
    retryBodyBytes: 65536,
    retryIdempotencyKey: true,
    outlier: { consecutiveFailures: 5, baseEjectionMs: 10_000, maxEjectionMs: 300_000, maxEjectionPercent: 50 },
    timeouts: { connectMs: 1000, responseMs: 1000, idleMs: 1000, tunnelIdleMs: 1000 },
    maxIdlePerServer: 1,
  };
}
