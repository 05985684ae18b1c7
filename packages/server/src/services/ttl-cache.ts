/**
 * A bounded in-process cache with a per-entry time to live. Used for state that other instances may
 * change (logins, memberships, clients): the TTL bounds staleness when an invalidation is missed.
 */
/** Two per write: enough to keep pace with one write per expiry, cheap enough for every write. */
const SWEEP_PER_WRITE = 2;

export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expires <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: V, ttlMs = this.ttlMs): void {
    // Re-inserted, not updated in place: the Map's order stays the order of writes, which (with one
    // TTL per cache) is the order of expiry, so the sweep below only ever looks at the front.
    this.entries.delete(key);
    this.sweep();
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, { value, expires: Date.now() + ttlMs });
  }

  /**
   * Drops a few expired entries from the front on every write. Without it a cache written faster
   * than it is read (a login per token exchange, a verification per distinct token) holds
   * `maxEntries` mostly expired entries: memory held for nothing, and the process's RSS with it.
   */
  private sweep(): void {
    const now = Date.now();
    for (let i = 0; i < SWEEP_PER_WRITE; i++) {
      const first = this.entries.entries().next().value;
      if (!first || first[1].expires > now) return;
      this.entries.delete(first[0]);
    }
  }

  /** Entries held, expired or not (for tests and metrics). */
  get size(): number {
    return this.entries.size;
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
