// The only loader of the C++ addon (build/Release/switchyard.node, built by
// `node-gyp rebuild` on npm install) and the types of what it exports. A
// build that is missing, older than the code, or whose shared-memory layout
// differs from layout.ts is refused here, with the command that fixes it,
// instead of failing later in a worker.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { ErrorCode, SwitchyardError } from '../errors.js';
import { Counter, DRAINED, HEALTHY } from './layout.js';

export interface NativeRegionInfo {
  name: string;
  servers: number;
  slots: number;
  generation: number;
  lineBytes: number;
}

export interface NativeRegion {
  close(): void;
  info(): NativeRegionInfo;
  identities(): string[];
  add(counter: number, server: number, slot: number, delta: number): void;
  read(counter: number, server: number, slot: number): number;
  sum(counter: number, server: number): number;
  zeroSlot(slot: number): void;
  state(server: number): number;
  setState(server: number, bits: number): void;
  ejectUntil(server: number): number;
  setEjectUntil(server: number, unixMs: number): void;
  recordFailure(server: number): number;
  recordSuccess(server: number): void;
  ejections(server: number): number;
  tryEject(server: number, streakSeen: number, untilUnixMs: number): boolean;
  setRampPermille(server: number, permille: number): void;
  copyFrom(other: NativeRegion, slot: number): number;
  view(first: number, count: number): NativeView;
}

export interface NativeView {
  readHealth(): number;
  readLoads(): number;
  buffer: ArrayBuffer;
}

export interface NativeRegionStatic {
  create(name: string, identities: readonly string[], slots: number, generation: number): NativeRegion;
  attach(name: string): NativeRegion;
  unlink(name: string): boolean;
  sweepStale(): string[];
}

export interface NativeMaglev {
  size(): number;
  entries(): Int32Array;
  bindHealth(region: NativeRegion | null, base?: number, balanceFactor?: number): void;
  lookupIp(ip: string, exclude?: Uint8Array): number;
  lookupIpv4(addr: number, exclude?: Uint8Array): number;
  lookupKey(key: string, exclude?: Uint8Array): number;
}

export interface NativeRateTable {
  take(route: string, key: string, ratePerSec: number, burst: number, cost: number, nowMs?: number): boolean;
  info(): { name: string; slots: number; bytes: number };
  stats(): { used: number; evictions: number; lockSteals: number; lockTimeouts: number };
  close(): void;
  buffer: ArrayBuffer;
}

export interface NativeRateTableStatic {
  create(name: string, slots: number): NativeRateTable;
  attach(name: string): NativeRateTable;
  unlink(name: string): boolean;
  sweepStale(): string[];
}

export interface NativeDsrForwarder {
  setServers(servers: readonly NativeDsrServer[], region: string | null): void;
  counters(): NativeDsrCounters;
  close(): void;
}

/** What native/dsr_binding.cc reads of a server (src/native/dsr.ts DsrServerSpec, mac required). */
export interface NativeDsrServer {
  identity: string;
  ip: string;
  mac: string;
  weight: number;
  regionIndex: number;
}

export interface NativeDsrCounters {
  rxPackets: number;
  forwardedPackets: number;
  forwardedBytes: number;
  arpReplies: number;
  flows: number;
  flowsCreated: number;
  flowsExpired: number;
  untracked: number;
  passed: number;
  drops: Record<string, number>;
  servers: { identity: string; packets: number; bytes: number; connections: number }[];
}

export interface NativeTcpRelay {
  add(clientFd: number, serverFd: number, idleMs: number): number;
  abort(id: number): void;
}

export interface NativeAddon {
  Region: NativeRegionStatic;
  RateTable: NativeRateTableStatic;
  Maglev: new (
    identities: readonly string[],
    weights: readonly number[],
    size: number,
    eligible: readonly boolean[] | undefined,
  ) => NativeMaglev;
  hashKey(key: string): bigint;
  hashIp(ip: string): bigint | null;
  chooseSize(servers: number): number;
  peerClosed(fd: number): boolean;
  acceptQueued(listenFd: number, max: number, sharers: number): number[];
  DsrForwarder: new (
    options: {
      interface: string;
      vip: string;
      ports: readonly number[];
      method: 'l2' | 'l3';
      dscp?: number;
      threads: number;
      flowTableSize: number;
      flowIdleMs: number;
      region: string | null;
    },
    servers: readonly NativeDsrServer[],
  ) => NativeDsrForwarder;
  TcpRelay: new (onEnded: (id: number, how: number, bytesIn: number, bytesOut: number) => void) => NativeTcpRelay;
  releaseStartupPages(): { mappings: number; residentBytes: number };
  layout: { counters: number; healthy: number; drained: number };
}

let loaded: NativeAddon | undefined;
const ADDON_EXPORTS: ReadonlyArray<keyof NativeAddon> = ['Region', 'RateTable', 'Maglev', 'hashKey', 'hashIp', 'chooseSize', 'peerClosed', 'acceptQueued', 'DsrForwarder', 'TcpRelay', 'releaseStartupPages', 'layout'];

/** Loads the addon once; throws a SwitchyardError saying how to build it if it is missing, stale or of another layout. */
export function addon(): NativeAddon {
  if (loaded) return loaded;
  // src/native/addon.ts and dist/native/addon.js both sit two levels below the package root.
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const flavour of ['Release', 'Debug']) {
    const file = path.join(root, 'build', flavour, 'switchyard.node');
    let candidate: NativeAddon;
    try {
      candidate = require(file) as NativeAddon;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'MODULE_NOT_FOUND' && code !== 'ERR_DLOPEN_FAILED') throw err;
      tried.push(`${file}: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    // A build left from an older checkout loads fine and fails later, in a worker, on a missing export: say so now.
    const missing = ADDON_EXPORTS.filter((name) => candidate[name] === undefined);
    if (missing.length > 0) {
      throw new SwitchyardError(ErrorCode.NativeStale, `Switchyard native addon ${file} is older than this code (no ${missing.join(', ')}): rebuild it with \`npm run install\` in ${root}.`);
    }
    // Workers and the primary read the same memory through both sides: a
    // different counter count or health bit would misread every cell.
    const want = { counters: Object.keys(Counter).length, healthy: HEALTHY, drained: DRAINED };
    const { layout } = candidate;
    if (layout.counters !== want.counters || layout.healthy !== want.healthy || layout.drained !== want.drained) {
      throw new SwitchyardError(
        ErrorCode.NativeLayout,
        `Switchyard native addon ${file} has the shared-memory layout ${JSON.stringify(layout)}, src/native/layout.ts expects ${JSON.stringify(want)}: rebuild it with \`npm run install\` in ${root}, or bring the two in step.`,
      );
    }
    return (loaded = candidate);
  }
  throw new SwitchyardError(
    ErrorCode.NativeMissing,
    'Switchyard native addon is missing or does not load (needed for shared counters and hashing).\n' +
      `Build it with \`npm install\` (or \`npm rebuild\`) in ${root}; it needs a C++ compiler and make.\n` +
      `Tried:\n  ${tried.join('\n  ')}`,
  );
}

