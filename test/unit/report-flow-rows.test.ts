/** The report's per-flow rows (lib/report/flow-rows.ts), and the end of input taken in steps. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Connection } from "../../lib/conntrack/connection.js";
import { ConntrackEngine } from "../../lib/conntrack/engine.js";
import { FLOW_ASSURED, FLOW_REPLY, FlowRows, POOLED_ENTRIES } from "../../lib/report/flow-rows.js";
import { FlowTracker } from "../../lib/report/flows.js";
import { EXPIRY_STEP, replayCaptures } from "../../lib/pipeline/replay.js";
import { syntheticCaptureFile } from "../support/synth-file.js";
import { makeUdp } from "./conntrack-fixtures.js";

const T0 = 1_764_000_000;

function connectionAt(slot: number, id: number): Connection {
  const connection = new Connection();
  connection.tableSlot = slot;
  connection.id = id;
  return connection;
}

function timeOf(rows: FlowRows, index: number, field: number): [number, number] {
  const out = new Float64Array(2);
  rows.readTime(index, field, out, 0);
  return [out[0], out[1]];
}

test("a flow is its connection's table slot's row, found while the connection names the slot", () => {
  const rows = new FlowRows();
  const first = connectionAt(5, 1);
  const index = rows.add(first, T0);
  assert.equal(index, 5);
  assert.equal(rows.find(first), index);
  assert.equal(rows.find(connectionAt(6, 2)), -1);
  assert.equal(rows.find(connectionAt(1 << 20, 3)), -1, "beyond the pages");
  rows.markReplied(index, T0, 1);
  rows.remove(index);
  assert.equal(rows.find(first), -1, "removed with its DESTROY");
  // The table gives the slot to another connection: the retired one stops naming it (`moveOut`).
  first.tableSlot = -1;
  const second = connectionAt(5, 2);
  const reused = rows.add(second, T0 + 1);
  assert.equal(reused, index, "the row is reused");
  assert.equal(rows.find(first), -1);
  assert.equal(rows.find(second), reused);
  assert.equal(rows.historyLength(reused), 0, "a reused row starts empty");
  assert.equal(rows.replied(reused), false);
  assert.equal(rows.size, 1);
  // A connection outside any table has no row.
  assert.throws(() => rows.add(connectionAt(-1, 3), T0), /must be in a table/);
});

test("times are exact near the first flow and far from it", () => {
  const rows = new FlowRows();
  const near = rows.add(connectionAt(0, 1), T0);
  assert.equal(rows.markReplied(near, T0 + 1, 500), true);
  assert.equal(rows.markReplied(near, T0 + 2, 0), false, "the first reply is kept");
  assert.deepEqual(timeOf(rows, near, FLOW_REPLY), [T0 + 1, 500]);
  assert.equal(rows.sinceFirst(near, FLOW_REPLY, T0, 999_999_999), 500 - 999_999_999 + 1e9);

  // 2^31 seconds and more from the first flow's second do not fit the row's 32 bits.
  const far = rows.add(connectionAt(1, 2), T0 + 10);
  for (let i = 0; i < 3; i++) rows.pushHistory(far, 3, T0 + 10 + i, i, 64);
  rows.markReplied(far, T0 + 11, 7);
  rows.pushHistory(far, 5, T0 + 2 ** 33, 42, 64);
  rows.markAssured(far, T0 - 2 ** 40, 9);
  assert.deepEqual(timeOf(rows, far, FLOW_REPLY), [T0 + 11, 7], "times set before widening kept");
  assert.deepEqual(timeOf(rows, far, FLOW_ASSURED), [T0 - 2 ** 40, 9]);
  const entry = new Float64Array(3);
  rows.readHistory(far, 1, entry);
  assert.deepEqual([...entry], [3, T0 + 11, 1]);
  rows.readHistory(far, 3, entry);
  assert.deepEqual([...entry], [5, T0 + 2 ** 33, 42]);
  assert.deepEqual(timeOf(rows, near, FLOW_REPLY), [T0 + 1, 500], "the other flow is untouched");
});

test("history past the row's entries goes on in order; past the cap it is counted", () => {
  const rows = new FlowRows();
  const entry = new Float64Array(3);
  for (const [changes, cap] of [
    [POOLED_ENTRIES - 1, 64],
    [POOLED_ENTRIES, 64],
    [POOLED_ENTRIES + 5, 64],
    [30, 12],
    [5, 3],
    // After flows with omissions, a reused row counts none.
    [3, 64],
  ]) {
    const index = rows.add(connectionAt(9, changes), T0);
    for (let i = 0; i < changes; i++) rows.pushHistory(index, i % 11, T0 + i, i * 10, cap);
    const kept = Math.min(changes, cap);
    assert.equal(rows.historyLength(index), kept);
    assert.equal(rows.historyOmitted(index), changes - kept);
    for (let i = 0; i < kept; i++) {
      rows.readHistory(index, i, entry);
      assert.deepEqual([...entry], [i % 11, T0 + i, i * 10], `entry ${i} of ${changes}`);
    }
    rows.remove(index);
  }
});

test("drain and advance in steps give the events of one go, stopping at the limit", () => {
  const run = (limit: number): { events: string[]; calls: number } => {
    const events: string[] = [];
    const engine = new ConntrackEngine({
      onEvent: (event) => events.push(`${event.type} ${event.connection.id} ${event.tsSec}.${event.tsNsec}`),
    });
    for (let i = 0; i < 300; i++)
      engine.process(
        makeUdp({ src: "10.1.0.1", dst: "10.2.0.1", sport: 1000 + i, dport: 53, ts: 100 + (i % 9) }),
      );
    let calls = 1;
    while (!engine.advanceTo(135, 0, limit)) calls++;
    while (!engine.drain(limit)) calls++;
    assert.equal(engine.liveConnections, 0);
    return { events, calls };
  };
  const whole = run(Infinity);
  const stepped = run(7);
  assert.deepEqual(stepped.events, whole.events);
  assert.equal(whole.calls, 1);
  assert.ok(stepped.calls >= 300 / 7, `${stepped.calls} calls`);
});

test("flow records of live connections at the end come in steps, as in one go", () => {
  const collect = (limit: number): string[] => {
    const rows: string[] = [];
    const tracker = new FlowTracker({ onCsvRow: (row) => rows.push(row) });
    const engine = new ConntrackEngine({ onEvent: (event) => tracker.onEvent(event) });
    for (let i = 0; i < 50; i++)
      engine.process(
        makeUdp({ src: "10.1.0.1", dst: "10.2.0.1", sport: 2000 - i, dport: 53, ts: 100 + i / 100 }),
      );
    let calls = 1;
    while (!tracker.finish(engine, limit)) calls++;
    assert.equal(calls, Math.max(1, Math.ceil(50 / limit)));
    assert.equal(tracker.liveCount, 0);
    return rows;
  };
  const whole = collect(Infinity);
  assert.equal(whole.length, 50);
  assert.deepEqual(collect(8), whole);
});

test("the replay lets its sinks drain while the end of the input expires the table", async () => {
  const directory = mkdtempSync(join(tmpdir(), "flow-rows-test-"));
  try {
    // Many conversations live at the end, all expiring at the drain.
    const file = await syntheticCaptureFile(join(directory, "many.pcap"), {
      packets: 12_000,
      conversations: 6_000,
      seed: 3,
      live: 6_000,
    });
    let readingDone = false;
    let records = 0;
    let checksAfterInput = 0;
    let destroyedAtFirstCheck = -1;
    let destroyed = 0;
    let destroyedAtInputEnd = 0;
    const result = await replayCaptures([file], {
      drain: true,
      onPacket: () => void records++,
      onEvent: (event) => {
        if (event.type === "DESTROY") destroyed++;
      },
      backpressure: () => {
        if (readingDone) {
          checksAfterInput++;
          if (destroyedAtFirstCheck < 0) destroyedAtFirstCheck = destroyed;
        }
        if (records === 12_000 && !readingDone) {
          readingDone = true;
          destroyedAtInputEnd = destroyed;
        }
        return null;
      },
    });
    const live = result.engine.stats.maxLive;
    assert.ok(live > 3 * EXPIRY_STEP, `only ${live} live`);
    assert.ok(checksAfterInput >= 3, `${checksAfterInput} checks during the drain`);
    // The first step's DESTROY events, and no more, come before the sink is asked again.
    const firstStep = destroyedAtFirstCheck - destroyedAtInputEnd;
    assert.ok(firstStep > 0 && firstStep <= EXPIRY_STEP, `${firstStep} destroyed in the first step`);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
