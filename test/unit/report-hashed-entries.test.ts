/** HashedEntries and LivePairs (lib/report/) against a Map, with hashes that collide often. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Connection } from "../../lib/conntrack/connection.js";
import { HashedEntries, type HashedEntry } from "../../lib/report/hashed-entries.js";
import { LivePairs, type PairKey } from "../../lib/report/live-pairs.js";

class Entry implements HashedEntry<number, Entry> {
  hash: number;
  sameHash: Entry | null = null;
  older: Entry | null = null;
  newer: Entry | null = null;
  constructor(public key: number) {
    this.hash = key % 7;
  }
  matches(key: number): boolean {
    return key === this.key;
  }
}

test("entries of one hash are told apart; order is oldest added or touched first", () => {
  let state = 5;
  const random = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  const entries = new HashedEntries<number, Entry>();
  // A Map keeps insertion order: delete and set again is "touch".
  const model = new Map<number, Entry>();
  for (let step = 0; step < 20_000; step++) {
    const key = random(60);
    const found = entries.get(key, key % 7);
    assert.equal(found, model.get(key) ?? null, `step ${step}: key ${key}`);
    const action = random(4);
    if (found === null) {
      const entry = new Entry(key);
      entries.add(entry);
      model.set(key, entry);
    } else if (action === 0) {
      entries.remove(found);
      model.delete(key);
    } else if (action === 1) {
      entries.touch(found);
      model.delete(key);
      model.set(key, found);
    }
    if (model.size > 40) {
      const oldest = entries.oldest!;
      assert.equal(oldest, model.values().next().value);
      entries.remove(oldest);
      model.delete(oldest.key);
    }
    assert.equal(entries.size, model.size);
    // `newest`, keys of a range of their own: moved if there, else added, the oldest reused once 60 are held.
    const other = 1000 + random(40);
    const had = model.get(other);
    const oldestBefore = entries.oldest;
    const full = entries.size >= 60;
    const entry = entries.newest(other, other % 7, 60, () => new Entry(other));
    if (had !== undefined) assert.equal(entry, had);
    else if (full) {
      assert.equal(entry, oldestBefore);
      model.delete(entry.key);
      entry.key = other;
    }
    model.delete(other);
    model.set(other, entry);
    assert.equal(entries.size, model.size);
  }
  const order: number[] = [];
  for (let entry = entries.oldest; entry !== null; entry = entry.newer) order.push(entry.key);
  assert.deepEqual(order, [...model.keys()]);
});

test("live pairs: found, counted and removed as a Map would, through colliding hashes and index growth", () => {
  let state = 3;
  const random = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  const pairs = new LivePairs();
  const model = new Map<number, { live: number; latest: Connection }>();
  const keyOf = (n: number): PairKey => ({
    family: 4 + 2 * (n % 2),
    a0: n,
    a1: 0,
    a2: n * 7,
    a3: 0,
    b0: -n,
    b1: 1,
    b2: 0,
    b3: n >> 3,
    // Few hash values, so probe runs are long and cross the index's end.
    hash: (n * 2654435761) % 13,
  });
  for (let step = 0; step < 40_000; step++) {
    // The population swells past 1 000 pairs (the index grows) and shrinks again.
    const n = random(step < 20_000 ? 1500 : 300);
    const key = keyOf(n);
    const found = pairs.find(key);
    const expected = model.get(n);
    assert.equal(found >= 0, expected !== undefined, `step ${step}: pair ${n}`);
    if (expected !== undefined) assert.equal(pairs.latest(found), expected.latest);
    if (expected === undefined || random(2) === 0) {
      const connection = new Connection();
      connection.id = step;
      pairs.addConnection(key, connection);
      model.set(n, { live: (expected?.live ?? 0) + 1, latest: connection });
    } else {
      const gone = pairs.endConnection(found, key);
      assert.equal(gone, expected.live === 1);
      if (gone) model.delete(n);
      else expected.live--;
    }
    assert.equal(pairs.size, model.size);
  }
});
