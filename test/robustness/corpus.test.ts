import { test } from "node:test";
import assert from "node:assert/strict";
import { collectCaptureStatistics } from "../../lib/pipeline/capture-stats.js";
import { corpusAvailable, corpusEntries } from "../support/corpus.js";

/**
 * tcpdump's own test captures, many malformed on purpose: every file is read through the whole
 * capture → decode pipeline with no crash and no hang, every record is accounted for in one class,
 * and wherever capinfos could read a file we count the same packets it does.
 */
test("the tcpdump corpus: no crash, no hang, capinfos' counts, every record accounted for", async (t) => {
  if (!corpusAvailable()) return t.skip("no ../shared/corpus");
  const entries = corpusEntries();
  assert.ok(entries.length >= 800, `corpus has ${entries.length} entries`);
  const countMismatches: string[] = [];
  const refused: string[] = [];
  let records = 0;
  for (const entry of entries) {
    const started = process.hrtime.bigint();
    let statistics;
    try {
      statistics = await collectCaptureStatistics([entry.path]);
    } catch (error) {
      // Every corpus file is a capture (even those capinfos refuses): none may be refused outright.
      refused.push(`${entry.file}: ${(error as Error).message}`);
      continue;
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    assert.ok(seconds < 10, `${entry.file} took ${seconds} s`);
    const sum = Object.values(statistics.classes).reduce((a, b) => a + b, 0);
    assert.equal(sum, statistics.records, `${entry.file}: classes do not add up`);
    if (entry.packets !== null && statistics.records !== entry.packets)
      countMismatches.push(`${entry.file}: ${statistics.records} records, capinfos ${entry.packets}`);
    for (const warning of statistics.warnings) {
      assert.equal(warning.file, entry.path);
      assert.ok(warning.offset >= 0 && warning.recordNumber >= 1, JSON.stringify(warning));
    }
    records += statistics.records;
  }
  assert.deepEqual(countMismatches, []);
  assert.deepEqual(refused, []);
  assert.ok(records > 10000, `read ${records} records`);
});
