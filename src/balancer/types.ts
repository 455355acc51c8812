// The one balancer interface. `pick` is the data plane: it
// never throws or allocates and returns undefined when no server is eligible
// (the caller answers 503). Building a balancer is the control plane and may
// throw.
import type { ServerConfig } from '../config/types.js';

export interface ServerSlot extends ServerConfig {
  /** Position of the server within its upstream. */
  index: number;
  upstream: string;
}

export interface PickContext {
  clientIp: string;
  /** Hash key for `source` balancing when it is not the client address. */
  key?: string;
}

export interface Balancer {
  /** `exclude` holds servers already tried for this request (retries). */
  pick(ctx: PickContext, exclude?: ReadonlySet<ServerSlot>): ServerSlot | undefined;
}
