/**
 * `table --jobs N`: N worker threads each replay one shard of the connections (`--shard I/N`,
 * lib/pipeline/shard.ts) and return their live entries (or expectations); the main thread puts them in
 * one engine's order with one engine's ids. A connection's id in one run is its rank among all
 * confirmations, and one record is tracked by one shard only (its address pair's): so each worker also
 * logs the (global) record index of every confirmation it makes, to a file (there are as many as the
 * capture has connections), and an entry's id is its own shard's id plus the other shards'
 * confirmations up to the record that created it, counted from their logs in one pass each at the end.
 * Expectations likewise, by the records that created them (a record may create several, all in its
 * shard). Memory follows the live entries.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runOneShotWorker } from "./one-shot-worker.js";
import { allFedStdin, type StdinFanOut } from "./stdin-fan-out.js";
import { countsUpTo } from "./record-log.js";
import { mergeShardSummaries, type MergedShardSummary, type ShardReplaySummary } from "./shard-summary.js";
import type { CaptureWarning } from "../capture/source.js";
import type { ConnectionRecord, ExpectationRecord } from "../report/event-formats.js";
import type { ReplayOptions } from "./replay.js";

/** What a table worker is given: the replay's options without functions, its shard and the format. */
export interface TableJobData {
  files: readonly string[];
  options: Omit<
    ReplayOptions,
    "onEvent" | "onExpectEvent" | "onPacket" | "onInputs" | "backpressure" | "onOpened"
  >;
  shard: { index: number; count: number };
  /** Lines (`proc`, `conntrack`) or records (`records`: csv and json). */
  output: "proc" | "conntrack" | "records";
  /** The expectation table instead of the connection table. */
  expect: boolean;
  /** Where the workers write their logs of record indices. */
  scratch: string;
}

/** A worker's log of ascending record indices (lib/pipeline/record-log.ts). */
export interface RecordLog {
  path: string;
  count: number;
}

export interface TableJobResult {
  type: "done";
  /** Global record index of each confirmation, in confirmation order (so ascending). */
  confirmations: RecordLog;
  /** With `expect`: the global record index of each expectation's creation, in creation order. */
  expectationsCreated: RecordLog;
  /**
   * Per live entry (or expectation), in creation order: the record index that created it, its id in
   * this shard, and the record that confirmed its master connection (-1: none).
   */
  created: Float64Array;
  localIds: Float64Array;
  masters: Float64Array;
  lines: string[] | null;
  records: (ConnectionRecord | ExpectationRecord)[] | null;
  warnings: CaptureWarning[];
  first: { tsSec: number; tsNsec: number } | null;
  last: { tsSec: number; tsNsec: number } | null;
  until: { tsSec: number; tsNsec: number } | null;
  /** The replay's accounting (alike in every shard) and its engine's counts (this shard's). */
  summary: ShardReplaySummary;
}

/** The merged table: entries in one engine's order, with its ids for records; the rest the first shard's. */
export type MergedTable = Pick<
  TableJobResult,
  "lines" | "records" | "warnings" | "first" | "last" | "until"
> & {
  summary: MergedShardSummary;
};

export async function tableInJobs(
  files: readonly string[],
  options: TableJobData["options"],
  output: TableJobData["output"],
  jobs: number,
  expect = false,
): Promise<MergedTable> {
  if (!Number.isInteger(jobs) || jobs < 2)
    throw new Error(`jobs: ${jobs} is not a whole number of at least 2`);
  const scratch = await mkdtemp(join(tmpdir(), "pcap-conntrack-table-"));
  try {
    const results = await allFedStdin(files, (stdin) =>
      Array.from({ length: jobs }, (_, index) =>
        runWorker({ files, options, shard: { index, count: jobs }, output, expect, scratch }, stdin),
      ),
    );
    return await mergeTables(results, output, expect);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function mergeTables(
  results: TableJobResult[],
  output: TableJobData["output"],
  expect: boolean,
): Promise<MergedTable> {
  // The records every id is counted up to: the entries' own (in their kind's logs) and their masters'
  // (only records carry ids: lines need the order alone).
  const withIds = output === "records";
  const entryPoints = ascendingUnique(results.flatMap((result) => [...result.created]));
  const masterPoints = ascendingUnique(
    results.flatMap((result) => [...result.masters].filter((r) => r >= 0)),
  );
  const entryCounts = !withIds
    ? []
    : await Promise.all(
        results.map((result) =>
          countsUpTo((expect ? result.expectationsCreated : result.confirmations).path, entryPoints),
        ),
      );
  const masterCounts = !withIds
    ? []
    : await Promise.all(results.map((result) => countsUpTo(result.confirmations.path, masterPoints)));
  /** One engine's id of the connection a record created: confirmations up to that record, in all shards. */
  const idOf = (record: number): number => {
    const at = indexOf(masterPoints, record);
    let id = 0;
    for (const counts of masterCounts) id += counts[at];
    return id;
  };
  /** One engine's id of a shard's entry: its id there and what the other shards created up to its record. */
  const mergedId = (shard: number, localId: number, record: number): number => {
    const at = indexOf(entryPoints, record);
    let id = localId;
    for (let other = 0; other < entryCounts.length; other++)
      if (other !== shard) id += entryCounts[other][at];
    return id;
  };
  const order: { shard: number; entry: number; record: number; localId: number }[] = [];
  results.forEach((result, shard) => {
    for (let entry = 0; entry < result.created.length; entry++)
      order.push({ shard, entry, record: result.created[entry], localId: result.localIds[entry] });
  });
  order.sort((a, b) => a.record - b.record || a.localId - b.localId);
  const merged: MergedTable = {
    lines: output === "records" ? null : [],
    records: output === "records" ? [] : null,
    warnings: results[0].warnings,
    first: results[0].first,
    last: results[0].last,
    until: results[0].until,
    summary: mergeShardSummaries(results.map((result) => result.summary)),
  };
  for (const { shard, entry, record, localId } of order) {
    const result = results[shard];
    if (merged.lines !== null) {
      merged.lines.push(result.lines![entry]);
      continue;
    }
    const master = result.masters[entry];
    merged.records!.push({
      ...result.records![entry],
      id: mergedId(shard, localId, record),
      masterId: master >= 0 ? idOf(master) : null,
    });
  }
  return merged;
}

function ascendingUnique(values: number[]): Float64Array {
  const sorted = Float64Array.from(values).sort();
  let kept = 0;
  for (let i = 0; i < sorted.length; i++)
    if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[kept++] = sorted[i];
  return sorted.subarray(0, kept);
}

/** The index of `value` in the ascending `list` (which holds it). */
function indexOf(list: Float64Array, value: number): number {
  let low = 0;
  let high = list.length - 1;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (list[middle] < value) low = middle + 1;
    else high = middle;
  }
  return low;
}

function runWorker(data: TableJobData, stdin: StdinFanOut | null): Promise<TableJobResult> {
  return runOneShotWorker<TableJobResult>(
    new URL("./table-jobs-worker.js", import.meta.url),
    data,
    "table",
    stdin,
  );
}
