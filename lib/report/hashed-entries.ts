/**
 * Entries found by a 32-bit hash of their key and checked against the key itself (no string key built
 * per entry), kept in the order they were added or last moved (oldest first), so a bounded memory
 * forgets its oldest in constant time. The report's trackers use it for what they remember per
 * connection; a Map from hash to the first entry of each chain does the finding.
 */
export interface HashedEntry<K, E> {
  hash: number;
  /** Next entry of the same hash. */
  sameHash: E | null;
  older: E | null;
  newer: E | null;
  matches(key: K): boolean;
}

export class HashedEntries<K, E extends HashedEntry<K, E>> {
  private readonly chains = new Map<number, E>();
  private oldestEntry: E | null = null;
  private newestEntry: E | null = null;
  size = 0;

  get oldest(): E | null {
    return this.oldestEntry;
  }

  /** The entry whose key is `key` (of hash `hash`), or null. */
  get(key: K, hash: number): E | null {
    for (let entry = this.chains.get(hash) ?? null; entry !== null; entry = entry.sameHash)
      if (entry.matches(key)) return entry;
    return null;
  }

  /** Adds `entry` (whose key is not here yet, `hash` set) as the newest. */
  add(entry: E): void {
    entry.sameHash = this.chains.get(entry.hash) ?? null;
    this.chains.set(entry.hash, entry);
    this.link(entry);
    this.size++;
  }

  remove(entry: E): void {
    const first = this.chains.get(entry.hash)!;
    if (first === entry) {
      if (entry.sameHash === null) this.chains.delete(entry.hash);
      else this.chains.set(entry.hash, entry.sameHash);
    } else {
      let before = first;
      while (before.sameHash !== entry) before = before.sameHash!;
      before.sameHash = entry.sameHash;
    }
    entry.sameHash = null;
    this.unlink(entry);
    this.size--;
  }

  /**
   * The entry of `key` made the newest: the one there, or else a new one added under `hash` (the
   * oldest, forgotten, once `capacity` are held; `create()` before that), whose key the caller writes.
   */
  newest(key: K, hash: number, capacity: number, create: () => E): E {
    let entry = this.get(key, hash);
    if (entry !== null) {
      this.touch(entry);
      return entry;
    }
    if (this.size >= capacity) {
      entry = this.oldestEntry!;
      this.remove(entry);
    } else {
      entry = create();
    }
    entry.hash = hash;
    this.add(entry);
    return entry;
  }

  /** Makes `entry` the newest. */
  touch(entry: E): void {
    if (this.newestEntry === entry) return;
    this.unlink(entry);
    this.link(entry);
  }

  private link(entry: E): void {
    entry.older = this.newestEntry;
    entry.newer = null;
    if (this.newestEntry !== null) this.newestEntry.newer = entry;
    else this.oldestEntry = entry;
    this.newestEntry = entry;
  }

  private unlink(entry: E): void {
    if (entry.older !== null) entry.older.newer = entry.newer;
    else this.oldestEntry = entry.newer;
    if (entry.newer !== null) entry.newer.older = entry.older;
    else this.newestEntry = entry.older;
    entry.older = entry.newer = null;
  }
}
