// The native addon's TypeScript face, one module per binding (src/native/,
// mirroring native/*_binding.cc): importers use this file only.
//
//   SharedRegion  the POSIX shared-memory segment (native/shm_region.h):
//                 per-server x per-worker-slot counters, per-server health.
//   ServerView    one upstream's servers in the region, read in one call
//                 (health, active requests): what balancers pick from.
//   MaglevTable   an immutable Maglev consistent-hash table (native/maglev.h).
//   RateTable     shared token buckets for rate limits (native/rate_limit.h).
//   peerHasClosed: FIN/RST on a paused socket (native/socket_peer.h).
//   acceptQueued  connections waiting in a listen queue, accepted in one call (native/listen_socket.h).
//   startRelay    mode: tcp bytes relayed on a native thread (native/tcp_relay.h).
//   DsrForwarder  the Direct Server Return forwarder on AF_PACKET threads (native/dsr_forwarder.h).
//   releaseStartupPages  start-up's pages of the node binary unmapped once ready (native/startup_pages.h).
//
// src/native/addon.ts is the only loader of the addon.
export { Counter } from './native/layout.js';
export { DEFAULT_SLOTS, regionName, SharedRegion, ServerView, type RegionOptions } from './native/region.js';
export { MaglevTable, type MaglevOptions } from './native/maglev.js';
export { RateTable, rateTableName, type RateTableStats } from './native/rate-table.js';
export { peerHasClosed } from './native/socket-peer.js';
export { acceptQueued } from './native/listen-socket.js';
export { abortRelay, startRelay, takeOverReading, type RelayEnd } from './native/tcp-relay.js';
export { releaseStartupPages, type ReleasedPages } from './native/startup-pages.js';
export { DsrForwarder, type DsrCounters, type DsrForwarderOptions, type DsrServerSpec } from './native/dsr.js';
