/** The expiry heap against a plain model: what expires first, with lagging keys, ties and removals. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Connection } from "../../lib/conntrack/connection.js";
import { ExpiryHeap } from "../../lib/conntrack/table.js";

test("the heap gives connections in (expiry, id) order, whatever pushes, moves and removals came between", () => {
  for (const seed of [1, 2, 3, 4]) {
    let state = seed;
    const random = (n: number): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return (state >>> 8) % n;
    };
    const heap = new ExpiryHeap();
    /** The model: expiry by slot of every connection in the heap. */
    const expiries = new Map<number, number>();
    const bySlot = new Map<number, Connection>();
    const freeSlots: number[] = [];
    let nextSlot = 0;
    let nextId = 1;
    let now = 0;
    for (let step = 0; step < 20_000; step++) {
      const action = random(10);
      if (action < 4 || expiries.size === 0) {
        const connection = new Connection();
        connection.id = nextId++;
        connection.tableSlot = freeSlots.length > 0 ? freeSlots.pop()! : nextSlot++;
        // Few distinct times: many ties, broken by id.
        connection.expiresAt = now + random(50);
        heap.push(connection);
        expiries.set(connection.tableSlot, connection.expiresAt);
        bySlot.set(connection.tableSlot, connection);
      } else if (action < 7) {
        // A refresh: later (the key lags until it comes due) or earlier (the key moves at once).
        const slots = [...expiries.keys()];
        const slot = slots[random(slots.length)];
        const expiry = now + random(80);
        heap.setExpiry(slot, expiry);
        expiries.set(slot, expiry);
      } else if (action < 8) {
        const slots = [...expiries.keys()];
        const slot = slots[random(slots.length)];
        const connection = bySlot.get(slot)!;
        heap.remove(connection);
        assert.equal(connection.expiresAt, expiries.get(slot), "a removed connection keeps its expiry");
        assert.equal(heap.contains(slot), false);
        expiries.delete(slot);
        freeSlots.push(slot);
      } else {
        now += random(20);
        for (;;) {
          let expected = -1;
          for (const [slot, expiry] of expiries) {
            if (expiry > now) continue;
            if (
              expected < 0 ||
              expiry < expiries.get(expected)! ||
              (expiry === expiries.get(expected)! && bySlot.get(slot)!.id < bySlot.get(expected)!.id)
            )
              expected = slot;
          }
          const popped = heap.popExpired(now);
          if (expected < 0) {
            assert.equal(popped, null, `seed ${seed} step ${step}: nothing is due at ${now}`);
            break;
          }
          assert.equal(popped, bySlot.get(expected), `seed ${seed} step ${step}`);
          expiries.delete(expected);
          freeSlots.push(expected);
        }
      }
      assert.equal(heap.size, expiries.size);
    }
  }
});

test("keyAt(k) is the k-th earliest key, and leaves the heap as it was", () => {
  const heap = new ExpiryHeap();
  let state = 9;
  const random = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  const keys: number[] = [];
  for (let slot = 0; slot < 3000; slot++) {
    const connection = new Connection();
    connection.id = slot + 1;
    connection.tableSlot = slot;
    connection.expiresAt = random(500);
    heap.push(connection);
    keys.push(connection.expiresAt);
  }
  keys.sort((a, b) => a - b);
  for (const k of [1, 2, 7, 100, 2048, 2999, 3000]) assert.equal(heap.keyAt(k), keys[k - 1], `k = ${k}`);
  assert.equal(heap.keyAt(3001), Infinity);
  let popped = 0;
  while (heap.popExpired(Infinity) !== null) popped++;
  assert.equal(popped, 3000);
});
