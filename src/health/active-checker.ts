// Active health checks, run once in the primary: every `health.interval` each
// server of an upstream with `health` configured gets one HTTP GET (or, with
// `type: tcp`, one TCP connect), preceded by a PROXY header when the upstream sends them; `rise`
// consecutive passes mark it up, `fall` consecutive failures mark it down.
// Transitions are logged once and handed to a HealthSink (the primary writes
// them into the shared-memory health bits every worker reads on its next pick).
//
// Every server starts healthy, at start-up and when a reload adds it: marking
// them down until `rise` checks pass would answer 503 for rise x interval after
// every start, while a server that really is down is caught by retries and
// passive ejection in the workers until `fall` checks confirm it.
import http from 'node:http';
import net from 'node:net';
import { encodeProxyV1, PROXY_V2_LOCAL } from '../l4/proxy-protocol.js';
import { socketOrigin } from '../l4/proxy-header-reader.js';
import tls, { type ConnectionOptions } from 'node:tls';
import { upstreamTlsOptions } from '../tls/upstream-tls.js';
import { performance } from 'node:perf_hooks';
import type { Config, HealthConfig } from '../config/types.js';
import type { Logger } from '../log.js';

export interface HealthSink {
  setHealthy(upstream: string, serverIndex: number, healthy: boolean): void;
  /** Called on recovery and every interval while a server ramps up, ending with 1. */
  setWeightFactor?(upstream: string, serverIndex: number, factor: number): void;
}

export interface ServerHealth {
  upstream: string;
  index: number;
  address: string;
  healthy: boolean;
}

/** A recovered server starts at this share of its weight and ramps linearly to all of it. */
export const SLOW_START_FLOOR = 0.1;

interface ServerState {
  index: number;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  healthy: boolean;
  /** Consecutive passes (while down) or failures (while up) towards a transition. */
  streak: number;
  /** performance.now() when the server last came back up; undefined when not ramping. */
  rampFrom: number | undefined;
  check: Check | undefined;
  /** The upstream's TLS settings, as the data path uses them. */
  tls: ConnectionOptions | undefined;
}

interface Check {
  socket: net.Socket;
  timer: NodeJS.Timeout;
}

interface UpstreamState {
  readonly name: string;
  readonly health: HealthConfig;
  readonly proxyProtocol: 'v1' | 'v2' | undefined;
  readonly servers: ServerState[];
  timer: NodeJS.Timeout | undefined;
}

type Outcome = { ok: boolean; reason: string; durationMs: number };

export class ActiveHealthChecker {
  private upstreams = new Map<string, UpstreamState>();
  /** Servers of upstreams without `health`: always healthy, listed for status and metrics. */
  private unchecked: ServerHealth[] = [];
  private running = false;

  constructor(
    config: Config,
    private readonly log: Logger,
    private readonly sink: HealthSink,
  ) {
    this.build(config, new Map());
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    for (const up of this.upstreams.values()) this.schedule(up);
  }

  /** Clears every timer and aborts checks in flight; their results are dropped. */
  stop(): void {
    this.running = false;
    for (const up of this.upstreams.values()) {
      clearInterval(up.timer);
      up.timer = undefined;
      for (const s of up.servers) abort(s);
    }
  }

  /**
   * Switches to a reloaded config. Servers that stay (same upstream, same
   * address) keep their health, streak and ramp; new ones start healthy. The
   * sink is told every server's state again, since indices may have moved.
   */
  replace(config: Config): void {
    const wasRunning = this.running;
    this.stop();
    const previous = new Map<string, ServerState>();
    for (const up of this.upstreams.values()) for (const s of up.servers) previous.set(`${up.name} ${s.address}`, s);
    this.build(config, previous);
    for (const up of this.upstreams.values()) {
      for (const s of up.servers) {
        this.sink.setHealthy(up.name, s.index, s.healthy);
        this.sink.setWeightFactor?.(up.name, s.index, this.factorOf(up, s, performance.now()));
      }
    }
    // Health checks removed from an upstream: its servers must not stay down.
    for (const s of this.unchecked) this.sink.setHealthy(s.upstream, s.index, true);
    if (wasRunning) this.start();
  }

  /**
   * Share of its configured weight a server should get now, in [0, 1]: 0 while
   * down, ramping from SLOW_START_FLOOR to 1 over `slow_start` after it comes
   * back, 1 otherwise. `now` is on the performance.now() clock.
   */
  weightFactor(upstream: string, index: number, now = performance.now()): number {
    const up = this.upstreams.get(upstream);
    const s = up?.servers[index];
    return up && s ? this.factorOf(up, s, now) : 1;
  }

  /** Every configured server with its current state, checked or not. */
  servers(): ServerHealth[] {
    const out = [...this.unchecked];
    for (const up of this.upstreams.values()) {
      for (const s of up.servers) out.push({ upstream: up.name, index: s.index, address: s.address, healthy: s.healthy });
    }
    return out;
  }

  private build(config: Config, previous: Map<string, ServerState>): void {
    this.upstreams = new Map();
    this.unchecked = [];
    for (const [name, upstream] of Object.entries(config.upstreams)) {
      if (!upstream.health) {
        upstream.servers.forEach((s, index) => this.unchecked.push({ upstream: name, index, address: s.address, healthy: true }));
        continue;
      }
      const servers = upstream.servers.map((s, index): ServerState => {
        const kept = previous.get(`${name} ${s.address}`);
        const tlsOptions = upstream.tls === undefined ? undefined : upstreamTlsOptions(upstream.tls, s.host);
        if (kept) {
          kept.index = index;
          kept.tls = tlsOptions;
          return kept;
        }
        return { index, address: s.address, host: s.host, port: s.port, healthy: true, streak: 0, rampFrom: undefined, check: undefined, tls: tlsOptions };
      });
      this.upstreams.set(name, { name, health: upstream.health, proxyProtocol: upstream.proxyProtocol, servers, timer: undefined });
    }
  }

  /** First round at once, then one per interval. */
  private schedule(up: UpstreamState): void {
    this.round(up);
    up.timer = setInterval(() => this.round(up), up.health.intervalMs);
  }

  private round(up: UpstreamState): void {
    const now = performance.now();
    for (const s of up.servers) {
      if (s.rampFrom !== undefined) this.reportRamp(up, s, now);
      // timeout <= interval (checked at load), so a check still running here is only timer jitter.
      if (!s.check) this.check(up, s);
    }
  }

  private check(up: UpstreamState, s: ServerState): void {
    const { path, timeoutMs, expectStatus, type } = up.health;
    const started = performance.now();
    // One short-lived connection per check, nothing pooled to clean up.
    const socket = net.connect({ host: s.host, port: s.port });
    const check: Check = { socket, timer: setTimeout(() => finish(false, `timeout after ${timeoutMs} ms`), timeoutMs) };
    s.check = check;
    // Events of a check that timed out, finished or was aborted by stop()/replace() are ignored.
    const finish = (ok: boolean, reason: string) => {
      if (s.check !== check) return;
      abort(s);
      this.record(up, s, { ok, reason, durationMs: Math.round((performance.now() - started) * 10) / 10 });
    };
    socket.on('error', (err: NodeJS.ErrnoException) => finish(false, `error: ${err.code ?? err.message}`));
    socket.once('connect', () => {
      // A server that expects PROXY headers refuses a connection without one (haproxy's check-send-proxy does the same).
      if (up.proxyProtocol !== undefined) socket.write(healthCheckProxyHeader(up.proxyProtocol, socket));
      if (type === 'tcp' && s.tls === undefined) return finish(true, 'connected');
      const request = (conn: net.Socket) => {
        if (type === 'tcp') return finish(true, 'connected');
        const req = http.request({
          path,
          method: 'GET',
          createConnection: () => conn,
          headers: { host: s.address, 'user-agent': 'switchyard-health-check', connection: 'close' },
        });
        // Only the status matters: the body is never read.
        req.on('response', (res) => finish(expectStatus.includes(res.statusCode ?? 0), `status ${res.statusCode}`));
        req.on('error', (err: NodeJS.ErrnoException) => finish(false, `error: ${err.code ?? err.message}`));
        req.end();
      };
      if (s.tls === undefined) return request(socket);
      // Over TLS with the upstream's own settings: a server whose certificate the data path would refuse is down.
      const secure = tls.connect({ ...s.tls, socket });
      check.socket = secure;
      secure.on('error', (err: NodeJS.ErrnoException) => finish(false, `error: ${err.code ?? err.message}`));
      secure.once('secureConnect', () => request(secure));
    });
  }

  private record(up: UpstreamState, s: ServerState, outcome: Outcome): void {
    if (outcome.ok === s.healthy) {
      s.streak = 0;
      return;
    }
    s.streak++;
    const { rise, fall, slowStartMs } = up.health;
    if (s.streak < (s.healthy ? fall : rise)) {
      this.log.debug({ upstream: up.name, address: s.address, ...outcome }, 'health check did not agree with the current state');
      return;
    }
    s.healthy = outcome.ok;
    s.streak = 0;
    const fields = { upstream: up.name, address: s.address, reason: outcome.reason, durationMs: outcome.durationMs };
    if (s.healthy) {
      this.log.info({ ...fields, checks: rise }, 'server is up');
      s.rampFrom = slowStartMs ? performance.now() : undefined;
    } else {
      this.log.warn({ ...fields, checks: fall }, 'server is down');
      s.rampFrom = undefined;
    }
    this.sink.setHealthy(up.name, s.index, s.healthy);
    if (s.rampFrom !== undefined) this.sink.setWeightFactor?.(up.name, s.index, SLOW_START_FLOOR);
  }

  private reportRamp(up: UpstreamState, s: ServerState, now: number): void {
    const factor = this.factorOf(up, s, now);
    if (factor >= 1) s.rampFrom = undefined;
    this.sink.setWeightFactor?.(up.name, s.index, factor);
  }

  private factorOf(up: UpstreamState, s: ServerState, now: number): number {
    if (!s.healthy) return 0;
    const ramp = up.health.slowStartMs;
    if (s.rampFrom === undefined || !ramp) return 1;
    const elapsed = now - s.rampFrom;
    return elapsed >= ramp ? 1 : SLOW_START_FLOOR + ((1 - SLOW_START_FLOOR) * Math.max(0, elapsed)) / ramp;
  }
}

function abort(s: ServerState): void {
  const check = s.check;
  if (!check) return;
  s.check = undefined;
  clearTimeout(check.timer);
  check.socket.destroy();
}

/** v2: LOCAL (the specification's command for a proxy's own connections); v1 has none, so the check's own endpoints. */
function healthCheckProxyHeader(version: 'v1' | 'v2', socket: net.Socket): Buffer {
  return version === 'v2' ? PROXY_V2_LOCAL : encodeProxyV1(socketOrigin(socket));
}

/** Builds and starts the checker; the primary keeps it for reload (`replace`) and shutdown (`stop`). */
export function startHealthChecks(config: Config, log: Logger, sink: HealthSink): ActiveHealthChecker {
  const checker = new ActiveHealthChecker(config, log, sink);
  checker.start();
  return checker;
}
