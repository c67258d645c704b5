/** table --jobs's logs of record indices: written in pieces, counted at points in one pass. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RecordLogWriter, countsUpTo } from "../../lib/pipeline/record-log.js";

test("a record log counts its indices up to each point, across its 64 KiB pieces", async () => {
  const directory = mkdtempSync(join(tmpdir(), "record-log-"));
  try {
    const log = new RecordLogWriter(join(directory, "log"));
    const indices: number[] = [];
    // Past three pieces, with gaps, and numbers beyond 2^32.
    for (let i = 0, record = 5; i < 20_000; i++, record += 1 + (i % 7)) indices.push(record);
    indices.push(2 ** 40, 2 ** 40 + 3);
    for (const record of indices) log.append(record);
    log.close();
    assert.equal(log.count, indices.length);
    assert.equal(statSync(log.path).size, indices.length * 8);
    const points = Float64Array.from([
      0,
      5,
      6,
      8191 * 3,
      indices[8191],
      indices[8192],
      indices[19_999],
      2 ** 40,
      2 ** 41,
    ]);
    const counts = await countsUpTo(log.path, points);
    const expected = [...points].map((point) => indices.filter((record) => record <= point).length);
    assert.deepEqual([...counts], expected);

    const empty = new RecordLogWriter(join(directory, "empty"));
    empty.close();
    assert.deepEqual([...(await countsUpTo(empty.path, Float64Array.from([0, 10])))], [0, 0]);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
