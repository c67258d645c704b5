import { test } from "node:test";
import assert from "node:assert/strict";
import { openCapture } from "../../lib/capture/open.js";
import { reorderSource, ReorderedSource } from "../../lib/capture/reorder.js";
import { mergeSources } from "../../lib/capture/merge.js";
import { frame, pcapBytes, readAll, writeScratch } from "./capture-fixtures.js";

function secondsFile(name: string, seconds: number[], size = (index: number) => 40 + index): string {
  return writeScratch(
    name,
    pcapBytes({
      records: seconds.map((sec, index) => ({ sec, fraction: 0, data: frame(index, size(index)) })),
    }),
  );
}

test("a zero window returns the source itself", async () => {
  const source = await openCapture(secondsFile("reorder-zero.pcap", [1, 2]));
  assert.equal(reorderSource(source, { windowNs: 0 }), source);
  await source.close();
});

test("late records within the window are put back in order; later ones pass at once", async () => {
  const path = secondsFile("reorder-window.pcap", [1, 3, 2, 4, 10, 6, 7, 11, 5, 12]);
  const source = reorderSource(await openCapture(path, { bufferBytes: 64 }), {
    windowNs: 2e9,
  }) as ReorderedSource;
  const records = await readAll(source);
  assert.deepEqual(
    records.map((r) => r.sec),
    [1, 2, 3, 4, 6, 7, 5, 10, 11, 12],
  );
  assert.deepEqual(
    records.map((r) => r.number),
    [1, 3, 2, 4, 6, 7, 9, 5, 8, 10],
  );
  for (const record of records)
    assert.equal(record.hex, frame(record.number - 1, 40 + record.number - 1).toString("hex"));
  assert.equal(source.reordered, 3);
  assert.equal(source.lateBeyondWindow, 1);
  assert.equal(source.releasedEarly, 0);
  // The input's own count of records that went back in time is unchanged by reordering.
  assert.equal(source.outOfOrder, 3);
});

test("full slots release the earliest record early and count it", async () => {
  const path = secondsFile("reorder-slots.pcap", [1, 2, 4, 3, 5]);
  const source = reorderSource(await openCapture(path), {
    windowNs: 100e9,
    maxHeldRecords: 2,
  }) as ReorderedSource;
  const records = await readAll(source);
  assert.deepEqual(
    records.map((r) => r.sec),
    [1, 2, 3, 4, 5],
  );
  assert.equal(source.releasedEarly, 3);
  assert.equal(source.reordered, 1);
});

test("a full arena releases early; held bytes survive the ring wrapping", async () => {
  const seconds: number[] = [];
  let seed = 7;
  for (let index = 0; index < 400; index++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    seconds.push(1000 + index - (seed % 4));
  }
  const size = (index: number) => 20 + ((index * 37) % 90);
  const path = secondsFile("reorder-arena.pcap", seconds, size);
  const source = reorderSource(await openCapture(path, { bufferBytes: 256 }), {
    windowNs: 3e9,
    maxHeldBytes: 300,
  }) as ReorderedSource;
  const records = await readAll(source);
  assert.equal(records.length, 400);
  assert.deepEqual(
    records.map((r) => r.number).sort((a, b) => a - b),
    seconds.map((_, index) => index + 1),
  );
  for (const record of records) {
    assert.equal(record.hex, frame(record.number - 1, size(record.number - 1)).toString("hex"));
    assert.equal(record.sec, seconds[record.number - 1]);
  }
  assert.ok(source.releasedEarly > 0);
  let outOfOrder = 0;
  for (let index = 1; index < records.length; index++)
    if (records[index].sec < records[index - 1].sec) outOfOrder++;
  // Releases from the heap never go back in time; only records passed on late can.
  assert.ok(
    outOfOrder <= 2 * source.lateBeyondWindow,
    `${outOfOrder} inversions, ${source.lateBeyondWindow} late`,
  );
  const roomy = reorderSource(await openCapture(path), { windowNs: 3e9 }) as ReorderedSource;
  const sorted = await readAll(roomy);
  assert.equal(roomy.releasedEarly, 0);
  assert.equal(roomy.lateBeyondWindow, 0);
  for (let index = 1; index < sorted.length; index++) assert.ok(sorted[index].sec >= sorted[index - 1].sec);
  assert.deepEqual(
    sorted.map((r) => r.number),
    seconds
      .map((sec, index) => [sec, index + 1])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1])
      .map(([, number]) => number),
  );
});

test("reordered inputs merge", async () => {
  const a = secondsFile("reorder-merge-a.pcap", [1, 4, 3, 6]);
  const b = secondsFile("reorder-merge-b.pcap", [2, 5]);
  const merged = mergeSources([
    reorderSource(await openCapture(a), { windowNs: 5e9 }),
    reorderSource(await openCapture(b), { windowNs: 5e9 }),
  ]);
  const records = await readAll(merged);
  assert.deepEqual(
    records.map((r) => [r.inputIndex, r.sec]),
    [
      [0, 1],
      [1, 2],
      [0, 3],
      [0, 4],
      [1, 5],
      [0, 6],
    ],
  );
});
