import { test } from "node:test";
import assert from "node:assert/strict";
import { openCapture } from "../../lib/capture/open.js";
import { mergeSources } from "../../lib/capture/merge.js";
import {
  enhancedPacket,
  frame,
  interfaceDescription,
  pcapBytes,
  readAll,
  sectionHeader,
  writeScratch,
  type ReadRecord,
} from "./capture-fixtures.js";

/** Reference merge: repeatedly take the input head with the smallest (time, input index). */
function referenceMerge(inputs: ReadRecord[][]): [number, number][] {
  const heads = inputs.map(() => 0);
  const order: [number, number][] = [];
  for (;;) {
    let best = -1;
    for (let input = 0; input < inputs.length; input++) {
      const head = inputs[input][heads[input]];
      if (head === undefined) continue;
      const current = best < 0 ? undefined : inputs[best][heads[best]];
      if (
        current === undefined ||
        head.sec < current.sec ||
        (head.sec === current.sec && head.nsec < current.nsec)
      ) {
        best = input;
      }
    }
    if (best < 0) return order;
    order.push([best, inputs[best][heads[best]].number]);
    heads[best]++;
  }
}

function pcapInput(name: string, times: [number, number][], tagBase: number): string {
  return writeScratch(
    name,
    pcapBytes({
      records: times.map(([sec, usec], index) => ({
        sec,
        fraction: usec,
        data: frame(tagBase + index, 30 + index),
      })),
    }),
  );
}

test("merges by timestamp, ties by input index then file order, bytes intact", async () => {
  const paths = [
    pcapInput(
      "merge-a.pcap",
      [
        [1, 0],
        [3, 0],
        [3, 0],
        [2, 5],
        [9, 0],
      ],
      0,
    ),
    pcapInput(
      "merge-b.pcap",
      [
        [0, 5],
        [3, 0],
        [4, 0],
        [4, 0],
      ],
      100,
    ),
    pcapInput(
      "merge-c.pcap",
      [
        [3, 0],
        [5, 0],
      ],
      200,
    ),
    writeScratch(
      "merge-d.pcapng",
      Buffer.concat([
        sectionHeader(),
        interfaceDescription(1, 0),
        interfaceDescription(101, 0),
        enhancedPacket(1, 2_000_000n, frame(300, 20)),
        enhancedPacket(0, 3_000_000n, frame(301, 21)),
        enhancedPacket(1, 10_000_000n, frame(302, 22)),
      ]),
    ),
  ];
  const separately: ReadRecord[][] = [];
  for (const path of paths) separately.push(await readAll(await openCapture(path)));
  const inputs = [];
  for (const path of paths) inputs.push(await openCapture(path, { bufferBytes: 64 }));
  const merged = mergeSources(inputs);
  const records = await readAll(merged);
  assert.deepEqual(
    records.map((r) => [r.inputIndex, r.number]),
    referenceMerge(separately),
  );
  for (const record of records) {
    const original = separately[record.inputIndex][record.number - 1];
    assert.deepEqual(
      { ...record, interfaceId: 0, inputIndex: 0 },
      { ...original, interfaceId: 0, inputIndex: 0 },
    );
  }
  // Input a goes back in time once (3 → 2.000005).
  assert.equal(merged.outOfOrder, 1);
  assert.deepEqual(merged.format, ["pcap", "pcap", "pcap", "pcapng"]);
  assert.deepEqual(merged.compressed, [false, false, false, false]);
  assert.equal(merged.interfaces.length, 5);
  const pcapngRecords = records.filter((r) => r.inputIndex === 3);
  assert.deepEqual(
    pcapngRecords.map((r) => [
      r.linkType,
      merged.interfaces[r.interfaceId].linkType,
      merged.interfaceOrigin(r.interfaceId),
    ]),
    [
      [101, 101, { inputIndex: 3, interfaceId: 1 }],
      [1, 1, { inputIndex: 3, interfaceId: 0 }],
      [101, 101, { inputIndex: 3, interfaceId: 1 }],
    ],
  );
  for (const record of records.filter((r) => r.inputIndex < 3)) {
    assert.deepEqual(merged.interfaceOrigin(record.interfaceId), {
      inputIndex: record.inputIndex,
      interfaceId: 0,
    });
  }
});

test("warnings of all inputs, live", async () => {
  const whole = pcapBytes({
    records: [0, 1, 2].map((index) => ({ sec: index, fraction: 0, data: frame(index) })),
  });
  const cut = writeScratch("merge-cut.pcap", whole.subarray(0, whole.length - 10));
  const fine = pcapInput(
    "merge-fine.pcap",
    [
      [0, 1],
      [1, 1],
    ],
    0,
  );
  const merged = mergeSources([await openCapture(fine), await openCapture(cut)]);
  assert.equal(merged.warnings.length, 0);
  const records = await readAll(merged);
  assert.deepEqual(
    records.map((r) => [r.inputIndex, r.sec]),
    [
      [1, 0],
      [0, 0],
      [1, 1],
      [0, 1],
    ],
  );
  assert.deepEqual(
    merged.warnings.map((w) => [w.file, w.recordNumber, w.message]),
    [[cut, 3, "file ends in the middle of packet 3 (66 of 76 bytes)"]],
  );
});

test("an input without packets and a single input", async () => {
  const empty = writeScratch("merge-empty.pcap", pcapBytes({ records: [] }));
  const one = pcapInput(
    "merge-one.pcap",
    [
      [5, 0],
      [6, 0],
    ],
    0,
  );
  const records = await readAll(mergeSources([await openCapture(empty), await openCapture(one)]));
  assert.deepEqual(
    records.map((r) => [r.inputIndex, r.sec]),
    [
      [1, 5],
      [1, 6],
    ],
  );
});
