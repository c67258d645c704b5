/**
 * The address pairs of live connections, how many connections each has and the latest of them, for
 * orphans.csv's "nearest connection". It follows the live table, so it is kept compact: a pair is
 * eleven 32-bit words in one array and a connection reference, found through an open-addressing index
 * (linear probing, deletion by moving the probe run back: no tombstones). About 60 bytes a pair where
 * an object and a Map entry took 180.
 */
import type { Connection } from "../conntrack/connection.js";

/** The two addresses of a pair in a fixed order (see `AddressPair` in orphans.ts) and its hash. */
export interface PairKey {
  family: number;
  a0: number;
  a1: number;
  a2: number;
  a3: number;
  b0: number;
  b1: number;
  b2: number;
  b3: number;
  hash: number;
}

const PAIR_WORDS = 11;
const W_FAMILY = 0;
const W_LIVE = 9;
/** The key's hash, kept for moving the pair in the index. */
const W_HASH = 10;

export class LivePairs {
  private words = new Int32Array(PAIR_WORDS * 256);
  private readonly latestConnections: (Connection | null)[] = [];
  private readonly freeIndices: number[] = [];
  private nextFresh = 0;
  /** Pair index + 1 by hash position (0: empty); always at most half full. */
  private index = new Int32Array(512);
  size = 0;

  /** The index of `key`'s pair, -1 when it has no live connection. */
  find(key: PairKey): number {
    const mask = this.index.length - 1;
    for (let at = key.hash & mask; ; at = (at + 1) & mask) {
      const entry = this.index[at];
      if (entry === 0) return -1;
      if (this.matches(entry - 1, key)) return entry - 1;
    }
  }

  /** A connection of `key`'s pair went live: counts it and makes it the latest. */
  addConnection(key: PairKey, connection: Connection): void {
    let pair = this.find(key);
    if (pair < 0) pair = this.insert(key);
    this.words[pair * PAIR_WORDS + W_LIVE]++;
    this.latestConnections[pair] = connection;
  }

  /** A connection of pair `pair` ended; true when it was the pair's last (the pair is gone then). */
  endConnection(pair: number, key: PairKey): boolean {
    if (--this.words[pair * PAIR_WORDS + W_LIVE] > 0) return false;
    this.removeFromIndex(pair, key.hash);
    this.latestConnections[pair] = null;
    this.freeIndices.push(pair);
    this.size--;
    return true;
  }

  latest(pair: number): Connection {
    return this.latestConnections[pair]!;
  }

  private matches(pair: number, key: PairKey): boolean {
    const words = this.words;
    const at = pair * PAIR_WORDS;
    return (
      words[at + 1] === key.a0 &&
      words[at + 5] === key.b0 &&
      words[at + W_FAMILY] === key.family &&
      words[at + 2] === key.a1 &&
      words[at + 3] === key.a2 &&
      words[at + 4] === key.a3 &&
      words[at + 6] === key.b1 &&
      words[at + 7] === key.b2 &&
      words[at + 8] === key.b3
    );
  }

  private insert(key: PairKey): number {
    let pair: number;
    if (this.freeIndices.length > 0) pair = this.freeIndices.pop()!;
    else {
      pair = this.nextFresh++;
      if ((pair + 1) * PAIR_WORDS > this.words.length) {
        const grown = new Int32Array(this.words.length * 2);
        grown.set(this.words);
        this.words = grown;
      }
    }
    const words = this.words;
    const at = pair * PAIR_WORDS;
    words[at + W_FAMILY] = key.family;
    words[at + 1] = key.a0;
    words[at + 2] = key.a1;
    words[at + 3] = key.a2;
    words[at + 4] = key.a3;
    words[at + 5] = key.b0;
    words[at + 6] = key.b1;
    words[at + 7] = key.b2;
    words[at + 8] = key.b3;
    words[at + W_LIVE] = 0;
    words[at + W_HASH] = key.hash;
    if ((this.size + 1) * 2 > this.index.length) this.growIndex();
    this.place(pair, key.hash);
    this.size++;
    return pair;
  }

  private place(pair: number, hash: number): void {
    const mask = this.index.length - 1;
    let at = hash & mask;
    while (this.index[at] !== 0) at = (at + 1) & mask;
    this.index[at] = pair + 1;
  }

  private removeFromIndex(pair: number, hash: number): void {
    const index = this.index;
    const mask = index.length - 1;
    let hole = hash & mask;
    while (index[hole] !== pair + 1) hole = (hole + 1) & mask;
    // Move back each later entry of the run that may no longer be reachable past the hole.
    for (let at = (hole + 1) & mask; index[at] !== 0; at = (at + 1) & mask) {
      const home = this.hashOf(index[at] - 1) & mask;
      // The entry at `at` stays unless its home lies cyclically outside (hole, at].
      const inRange = hole <= at ? home > hole && home <= at : home > hole || home <= at;
      if (inRange) continue;
      index[hole] = index[at];
      hole = at;
    }
    index[hole] = 0;
  }

  private growIndex(): void {
    const old = this.index;
    this.index = new Int32Array(old.length * 2);
    for (let at = 0; at < old.length; at++)
      if (old[at] !== 0) this.place(old[at] - 1, this.hashOf(old[at] - 1));
  }

  private hashOf(pair: number): number {
    return this.words[pair * PAIR_WORDS + W_HASH];
  }
}

/** The hash of an address pair (its words in their fixed order). */
export function pairHash(
  family: number,
  a0: number,
  a1: number,
  a2: number,
  a3: number,
  b0: number,
  b1: number,
  b2: number,
  b3: number,
): number {
  let h = Math.imul(family ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15) ^ a0, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 13) ^ b0, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16) ^ a1 ^ b1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 15) ^ a2 ^ b2, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ a3 ^ b3, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
