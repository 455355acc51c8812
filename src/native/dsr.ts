// DsrForwarder: the Direct Server Return forwarder of the C++ addon
// (native/dsr_forwarder.h), typed and checked. It runs on native threads off
// the event loop: this wrapper only validates, starts, reconfigures, reads
// counters and stops it. The contract with the dsr-wiring side is
// /tmp/briefs/dsr-contract.md (issue 13 item 2); one change to it, noted in
// the commit that made it: `mac` is required for method l3 too (it is the
// next hop's MAC: the server's on one segment), and counters carry
// `untracked` (new flows forwarded by the hash alone because the flow table
// window was full: not a drop).
import { isIPv4 } from 'node:net';
import { ErrorCode, SwitchyardError } from '../errors.js';
import { addon, type NativeDsrCounters, type NativeDsrForwarder, type NativeDsrServer } from './addon.js';

export interface DsrServerSpec {
  /** The identity the Maglev tables use for this server (its configured address, e.g. "10.77.0.11:80"). */
  identity: string;
  /** IPv4 of the real server. */
  ip: string;
  /** Its MAC ("02:77:00:00:00:11"); l2 sends to it; l3 sends to it as the next hop. Required for both. */
  mac?: string;
  /** Maglev weight (0 = no new flows). */
  weight: number;
  /** Its index in the shared-memory region (HEALTHY / DRAINED bits, src/native/layout.ts). */
  regionIndex: number;
}

export interface DsrForwarderOptions {
  /** e.g. "eth0" */
  interface: string;
  /** IPv4 virtual IP; the balancer's kernel must NOT own it; the forwarder answers ARP for it. */
  vip: string;
  /** TCP destination ports balanced on the VIP. */
  ports: number[];
  method: 'l2' | 'l3';
  /** l3: 0..63, marked on forwarded packets. */
  dscp?: number;
  /** Packet threads (PACKET_FANOUT_HASH when > 1). */
  threads: number;
  /** Bound on tracked connections (split evenly over the threads). */
  flowTableSize: number;
  /** A tracked connection with no packet for this long is forgotten. */
  flowIdleMs: number;
  /** Shared-memory region whose health/drain bits gate NEW flows (null: every server eligible). */
  region: string | null;
}

/**
 * `passed`: frames read that were not for the forwarder (for the VIP but
 * another MAC, ARP other than a request): few, since a filter on its sockets
 * keeps all other traffic away; the kernel has them too. `untracked`: new
 * flows forwarded by the hash alone because their flow-table window was full.
 * Drop reasons (frames for the VIP not forwarded): malformed (truncated or
 * inconsistent headers), fragment, not_tcp (UDP, ICMP, ...), port (a VIP port
 * not balanced), no_server (no eligible server for a new flow), tx_error, and
 * rx_overflow (frames of any kind the kernel dropped because the forwarder's
 * socket buffer was full: the forwarder is short of CPU; not part of rxPackets).
 */
export type DsrCounters = NativeDsrCounters;

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const IFNAME = /^[^\s/:]{1,15}$/;

function fail(message: string): never {
  throw new SwitchyardError(ErrorCode.DsrForwarder, `DSR forwarder: ${message}`);
}

function checkServers(servers: readonly DsrServerSpec[]): NativeDsrServer[] {
  const seen = new Set<string>();
  return servers.map((s, i) => {
    const where = `servers[${i}] (${JSON.stringify(s.identity)})`;
    if (typeof s.identity !== 'string' || s.identity === '') fail(`servers[${i}].identity must be a non-empty string`);
    if (seen.has(s.identity)) fail(`${where}: duplicate identity`);
    seen.add(s.identity);
    if (!isIPv4(s.ip)) fail(`${where}: ip must be an IPv4 address, got ${JSON.stringify(s.ip)}`);
    if (s.mac === undefined || !MAC.test(s.mac)) fail(`${where}: mac must be a MAC address like 02:77:00:00:00:11, got ${JSON.stringify(s.mac)}`);
    if (!Number.isInteger(s.weight) || s.weight < 0 || s.weight > 1_000_000) fail(`${where}: weight must be an integer 0..1000000, got ${s.weight}`);
    if (!Number.isInteger(s.regionIndex) || s.regionIndex < 0) fail(`${where}: regionIndex must be an integer >= 0, got ${s.regionIndex}`);
    return { identity: s.identity, ip: s.ip, mac: s.mac.toLowerCase(), weight: s.weight, regionIndex: s.regionIndex };
  });
}

function checkOptions(o: DsrForwarderOptions): void {
  if (typeof o.interface !== 'string' || !IFNAME.test(o.interface)) fail(`interface must be an interface name (1..15 characters, no spaces, '/' or ':'), got ${JSON.stringify(o.interface)}`);
  if (!isIPv4(o.vip)) fail(`vip must be an IPv4 address (IPv6 DSR is not supported), got ${JSON.stringify(o.vip)}`);
  if (!Array.isArray(o.ports) || o.ports.length === 0 || o.ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) fail(`ports must be a non-empty list of TCP ports 1..65535, got ${JSON.stringify(o.ports)}`);
  if (o.method !== 'l2' && o.method !== 'l3') fail(`method must be 'l2' or 'l3', got ${JSON.stringify(o.method)}`);
  if (o.method === 'l3' && (!Number.isInteger(o.dscp) || o.dscp! < 0 || o.dscp! > 63)) fail(`method l3 needs dscp 0..63, got ${JSON.stringify(o.dscp)}`);
  if (!Number.isInteger(o.threads) || o.threads < 1 || o.threads > 64) fail(`threads must be an integer 1..64, got ${o.threads}`);
  if (!Number.isInteger(o.flowTableSize) || o.flowTableSize < 1 || o.flowTableSize > 2 ** 26) fail(`flowTableSize must be an integer 1..${2 ** 26}, got ${o.flowTableSize}`);
  if (!Number.isInteger(o.flowIdleMs) || o.flowIdleMs < 1 || o.flowIdleMs > 86_400_000) fail(`flowIdleMs must be an integer 1..86400000, got ${o.flowIdleMs}`);
}

/** The native error of a failed open or reconfiguration, with the code of this module. */
function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SwitchyardError) throw err;
    return fail((err as Error).message);
  }
}

export class DsrForwarder {
  private native: NativeDsrForwarder | null;

  private constructor(native: NativeDsrForwarder) {
    this.native = native;
  }

  /** Opens the interface and starts the packet threads; throws SwitchyardError SWY_ERR_DSR_FORWARDER saying why not. */
  static open(options: DsrForwarderOptions, servers: DsrServerSpec[]): DsrForwarder {
    checkOptions(options);
    const checked = checkServers(servers);
    const { DsrForwarder: Native } = addon();
    const native = wrap(
      () =>
        new Native(
          {
            interface: options.interface,
            vip: options.vip,
            ports: options.ports,
            method: options.method,
            dscp: options.dscp,
            threads: options.threads,
            flowTableSize: options.flowTableSize,
            flowIdleMs: options.flowIdleMs,
            region: options.region,
          },
          checked,
        ),
    );
    return new DsrForwarder(native);
  }

  /** Reload: a new Maglev table; live flows to servers still present keep their server. Invalid input changes nothing. */
  setServers(servers: DsrServerSpec[], region: string | null): void {
    const checked = checkServers(servers);
    wrap(() => this.open().setServers(checked, region));
  }

  counters(): DsrCounters {
    return this.open().counters();
  }

  /** Stops the threads and closes the sockets; idempotent. */
  close(): void {
    this.native?.close();
    this.native = null;
  }

  private open(): NativeDsrForwarder {
    return this.native ?? fail('the forwarder is closed');
  }
}
