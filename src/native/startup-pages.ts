// Start-up pages of the node binary given back once a process is ready
// (native/startup_pages.h).
import { addon } from './addon.js';

export interface ReleasedPages {
  /** Mappings released (the executable's and its libraries' read-only segments). */
  mappings: number;
  /** What they had resident before; the pages still in use come back at their next access. */
  residentBytes: number;
}

/**
 * Unmaps the clean, file-backed pages of node and its libraries from this
 * process. node is ~100 MB of code and read-only data (V8, OpenSSL, ICU,
 * Node's own JS sources); start-up (dynamic linking, bootstrap, loading the
 * modules and the config) leaves ~40 MB of it mapped in every process, of
 * which the data path uses well under half. The kernel drops such pages
 * itself under memory pressure; releasing them when start-up is over keeps
 * each process's resident set to what it uses from then on, instead of
 * counting start-up's pages once per process. The pages stay in the page
 * cache, shared by every process of the binary, so the machine keeps what
 * it needs; a page used again is mapped again by a minor fault.
 */
export function releaseStartupPages(): ReleasedPages {
  return addon().releaseStartupPages();
}
