// A small bounded LRU of recent successful verifications, so a keep-alive
// client presenting the same credential on every request pays the expensive
// check (bcrypt, a JWT signature) once per TTL instead of per request.
// Only successes go in: every failure is checked in full again.

export interface SuccessCacheOptions {
  /** How long a verified credential is trusted without checking again. */
  ttlMs: number;
  /** Entries kept; the least recently used goes first. */
  maxEntries: number;
}

export const DEFAULT_SUCCESS_CACHE: SuccessCacheOptions = { ttlMs: 60_000, maxEntries: 1024 };

export class SuccessCache<V> {
  /** Map iteration order is insertion order: re-inserting on use makes the first key the least recently used. */
  readonly #entries = new Map<string, { value: V; expires: number }>();

  constructor(readonly options: SuccessCacheOptions) {}

  get(key: string): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    if (entry.expires <= Date.now()) return undefined;
    this.#entries.set(key, entry);
    return entry.value;
  }

  /** Remember a success until the TTL, or until `notAfter` (epoch ms) if that is sooner. */
  set(key: string, value: V, notAfter = Infinity): void {
    const expires = Math.min(Date.now() + this.options.ttlMs, notAfter);
    this.#entries.delete(key);
    this.#entries.set(key, { value, expires });
    if (this.#entries.size > this.options.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
  }

  clear(): void {
    this.#entries.clear();
  }
}
