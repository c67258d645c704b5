/** HashedEntries (lib/report/hashed-entries.ts) against a Map, with a hash that collides often. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { HashedEntries, type HashedEntry } from "../../lib/report/hashed-entries.js";

class Entry implements HashedEntry<number, Entry> {
  readonly hash: number;
  sameHash: Entry | null = null;
  older: Entry | null = null;
  newer: Entry | null = null;
  constructor(readonly key: number) {
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
  }
  const order: number[] = [];
  for (let entry = entries.oldest; entry !== null; entry = entry.newer) order.push(entry.key);
  assert.deepEqual(order, [...model.keys()]);
});
