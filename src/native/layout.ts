// What TypeScript knows of the shared region's layout (native/shm_region.h):
// the counter kinds and health bits. The addon exports the same constants as
// `layout`; addon.ts refuses a build whose numbers differ.

/** Counter kinds in each (server, worker slot) cell. */
export const Counter = {
  ActiveConnections: 0,
  ActiveRequests: 1,
  RequestsTotal: 2,
  Failures: 3,
  /** Retry attempts sent to the server: the cluster-wide retry budget reads these. */
  Retries: 4,
} as const;
export type Counter = (typeof Counter)[keyof typeof Counter];

/** Health-word bits (kStateHealthy, kStateDrained). */
export const HEALTHY = 1;
export const DRAINED = 2;

