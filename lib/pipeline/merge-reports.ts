/**
 * Merges the report directories of the N shards of one `report --shard I/N` run into the directory a
 * single run writes: every REPORT_FILES file, rows in the single run's order, connection and
 * expectation ids numbered as the single run numbers them, summary.json's accounting as the single
 * run's, index.html rendered by the same renderer from the merged data.
 *
 * How the single run orders each file, and so how it is merged (equal keys: the lower shard first):
 * - events.csv, expectations.csv: emission order, which is time order (expiries fire at their own
 *   time before the packet that passes it) — merged by the time column;
 * - flows.csv, flows.ndjson: a record as its connection ends (DESTROY order, by end time), then the
 *   connections still live at the end by id — merged by end time, then by merged id;
 * - nat.csv, nat.ndjson: a row right after the flow record of the last connection of its mapping —
 *   written as the merged flows close the mappings;
 * - orphans.csv: packet order (one input: its record numbers; several: time, then input, then record,
 *   as the inputs are merged).
 * Connection ids: the single run numbers connections as they are confirmed (their NEW, a flow's
 * firstPacket); each shard's own ids are in that order too, so the merged id is the rank by
 * (firstPacket, shard, shard's id). A master id follows its connection (master and related connection
 * are between the same hosts, so in one shard). Expectation ids: by their first appearance.
 *
 * Memory: one line (or record) per shard and file, the connection id map (4 bytes per connection, 12
 * while it is built), the ids of live expectations, the live NAT mappings and the page's rows.
 *
 * What the shards cannot tell is named in the merged summary.json's `mergedShards.approximate`.
 */
import { readFile, rmdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import {
  ByteLineReader,
  CsvRowReader,
  LineReader,
  digitsValue,
  findCsvCells,
  csvCell,
  replaceCsvCells,
  splitCsvRow,
  type TextRows,
} from "./text-lines.js";
import { writeNumber } from "../report/ascii-bytes.js";
import type { ByteEncoder } from "./replay.js";
import {
  REPORT_FILES,
  ReportFile,
  makeDirectory,
  SHARD_MERGE_FIELD,
  shardFilesFor,
  type ReportFileName,
  type ShardMergeData,
} from "./report.js";
import { EVENT_CSV_COLUMNS, EXPECT_EVENT_CSV_COLUMNS, csvRow } from "../report/event-formats.js";
import { FLOW_CSV_COLUMNS, flowCsvRow, type FlowRecord } from "../report/flows.js";
import { ORPHAN_CSV_COLUMNS, type OrphanRecord } from "../report/orphans.js";
import {
  NAT_CSV_COLUMNS,
  natMappingCsvRow,
  type NatEndpoint,
  type NatMappingRecord,
} from "../report/nat-mappings.js";
import { SummaryBuilder, type ReportSummary } from "../report/summary.js";
import { renderHtmlReport } from "../report/html.js";
import type { TupleRecord } from "../report/event-formats.js";

/** Directories that are not the shards of one run, or files in them that are not what `report` writes. */
export class ReportMergeError extends Error {}

export interface MergeReportsResult {
  summary: ReportSummary;
  /** Paths written, in REPORT_FILES order. */
  files: string[];
}

interface Shard {
  dir: string;
  index: number;
  count: number;
  summary: ReportSummary;
  data: ShardMergeData;
  /** Merged connection id of each of this shard's ids (index: the shard's id); 0 when unknown. */
  ids: Int32Array;
}

/** The summary.json fields every shard of one run has alike, compared to refuse shards of other runs. */
const ALIKE: [string, (summary: ReportSummary) => unknown][] = [
  ["inputs", (summary) => summary.capture.inputs],
  ["records", (summary) => [summary.packets.records, summary.packets.classes]],
  ["options", (summary) => summary.options],
  ["settings", (summary) => summary.settings],
  ["first and last packet", (summary) => [summary.capture.firstPacket, summary.capture.lastPacket]],
  [
    "page settings",
    (summary) => {
      const { pageOrphans: _pageOrphans, ...settings } = summary[SHARD_MERGE_FIELD] as ShardMergeData;
      return settings;
    },
  ],
];

export async function mergeReports(
  dirs: readonly string[],
  options: {
    outputDir: string;
    /**
     * Whether summary.json says it was merged (`mergedShards`): always (default), or only when
     * something in it is approximate (`report --jobs`, whose output is the single run's otherwise).
     */
    mergeNote?: "always" | "when-approximate";
    /**
     * The files to write (default: every one). The shards need only the files these are merged from
     * (`shardFilesFor`). Without summary.json and index.html the returned summary's top talkers are
     * not counted (empty).
     */
    files?: readonly ReportFileName[];
  },
): Promise<MergeReportsResult & { approximate: string[] }> {
  const wanted = new Set<ReportFileName>(options.files ?? REPORT_FILES);
  const present = new Set(
    dirs.length === 0 ? [] : await filterAsync(REPORT_FILES, (name) => isFile(join(dirs[0], name))),
  );
  const needed = new Set(shardSourcesFor([...wanted], present));
  const shards = await readShards(dirs, needed);
  const approximate: string[] = [];
  const wantSummary = wanted.has("summary.json") || wanted.has("index.html");
  const uncounted = shards.find((shard) => shard.summary.orphans === null);
  if (wantSummary && uncounted !== undefined)
    throw new ReportMergeError(
      `${join(uncounted.dir, "summary.json")}: written with --only files that count no orphans, so ` +
        "summary.json and index.html cannot be merged from it",
    );
  // Flow records where anything reads them; flows.csv alone otherwise (shards written for it).
  const flowRecords = needed.has("flows.ndjson");
  const ties = await numberConnections(shards, flowRecords ? "flows.ndjson" : "flows.csv");

  const outputExisted = await stat(options.outputDir).then(
    () => true,
    () => false,
  );
  await makeDirectory(options.outputDir);
  const outputs = new Map<string, OutputFile>();
  for (const name of REPORT_FILES)
    if (wanted.has(name)) outputs.set(name, new OutputFile(join(options.outputDir, name)));
  // A file not wanted is merged into nothing when another wanted one comes from the same shard files.
  const out = (name: ReportFileName): OutputSink => outputs.get(name) ?? DISCARD;
  try {
    const events = needed.has("events.csv")
      ? await mergeEvents(shards, out("events.csv"))
      : { ties: 0, mostLiveAtOnce: null };
    const expectations = needed.has("expectations.csv")
      ? await mergeExpectations(shards, out("expectations.csv"))
      : { ties: 0 };
    const flows = flowRecords
      ? await mergeFlows(
          shards,
          out("flows.csv"),
          out("flows.ndjson"),
          needed.has("nat.ndjson") ? { csv: out("nat.csv"), ndjson: out("nat.ndjson") } : null,
          { talkers: wantSummary, page: wanted.has("index.html") },
        )
      : await mergeFlowsCsv(shards, out("flows.csv"));
    const orphans = needed.has("orphans.csv")
      ? await mergeOrphans(shards, out("orphans.csv"))
      : { total: 0, page: [], outOfOrder: false };
    const crossShardTies = ties + events.ties + expectations.ties + flows.ties;
    if (crossShardTies > 0)
      approximate.push(
        `order of rows with equal times in two shards (${crossShardTies} ties: connections confirmed, ` +
          "events, expectation events or flows ending in the same nanosecond): the single run's order " +
          "comes from its packet order, which the shards do not write; the lower shard goes first",
      );
    if (events.mostLiveAtOnce === null && wantSummary)
      approximate.push(
        "connections.mostLiveAtOnce: the most any one shard had (a lower bound); events.csv is empty " +
          "(nf_conntrack_events=0) so the table's size over time cannot be followed",
      );
    const ended = flows.total - flows.live;
    const orphanMemory = Number(runOption(shards[0], "orphanMemory") ?? 4096);
    const orphanTotal = shards.reduce((sum, shard) => sum + (shard.summary.orphans?.total ?? 0), 0);
    if (ended > orphanMemory && orphanTotal > 0 && (wantSummary || wanted.has("orphans.csv")))
      approximate.push(
        `orphans (orphans.csv, summary.json's orphans, the page's): ${ended} connections ended, more ` +
          `than the --orphan-memory ${orphanMemory} the single run remembers, each shard its own last ones, ` +
          "so late replies and packets after a connection's end may be told apart differently",
      );
    if (orphans.outOfOrder && wanted.has("orphans.csv"))
      approximate.push(
        "orphans.csv's order: inputs hold records out of time order, and the shards do not write the " +
          "order the single run read them in",
      );
    const summary = mergeSummaries(shards, flows.talkers, events.mostLiveAtOnce, approximate);
    if (options.mergeNote === "when-approximate" && approximate.length === 0)
      delete (summary as unknown as Record<string, unknown>).mergedShards;
    await out("summary.json").writeAll(`${JSON.stringify(summary, null, 2)}\n`);
    const page = shards[0].data;
    if (wanted.has("index.html"))
      await out("index.html").writeAll(
        renderHtmlReport({
          title: page.title,
          summary,
          flows: flows.page,
          totalFlows: flows.total,
          orphans: orphans.page,
          totalOrphans: orphans.total,
          natMappings: flows.natPage,
          totalNatMappings: flows.natTotal,
          timelineRows: page.timelineRows,
          generator: page.generator,
        }),
      );
    // Every file is complete before any is renamed; the page goes last, as `report` does it.
    for (const file of outputs.values()) await file.finish();
    for (const file of outputs.values()) await file.publish();
    return { summary, files: [...outputs.values()].map((file) => file.path), approximate };
  } catch (error) {
    await Promise.all([...outputs.values()].map((file) => file.abandon()));
    // A damaged shard found while merging leaves nothing behind, as a refusal before it does.
    if (!outputExisted) await rmdir(options.outputDir).catch(() => undefined);
    throw error;
  }
}

// ------------------------------------------------------------------ the shards

/**
 * The files a merge of `dirs` can write: those whose shard files (`shardSourcesFor`) the directories
 * hold (shards written with `--only` hold only some), summary.json and the page only where the shards
 * counted orphans. Directories holding different report files are not the shards of one run: refused,
 * naming a file one lacks. Without what every merge reads (summary.json, a flows file) the flows, so
 * that the merge names what is missing.
 */
export async function mergeableFiles(dirs: readonly string[]): Promise<ReportFileName[]> {
  const present = new Set<string>();
  for (const name of REPORT_FILES) {
    const found = await Promise.all(dirs.map((dir) => isFile(join(dir, name))));
    if (found.every(Boolean)) present.add(name);
    else if (found.some(Boolean)) {
      const lacking = dirs[found.indexOf(false)];
      throw new ReportMergeError(`${join(lacking, name)}: missing (${dirs[found.indexOf(true)]} has it)`);
    }
  }
  // A shard's summary.json written for files that need no orphans did not count them (`orphans: null`).
  const orphansCounted = present.has("summary.json") && (await orphansCountedIn(dirs[0]));
  const files = REPORT_FILES.filter(
    (name) =>
      shardSourcesFor([name], present).every((needed) => present.has(needed)) &&
      (orphansCounted || (name !== "summary.json" && name !== "index.html")),
  );
  return files.length === 0 ? ["flows.csv", "flows.ndjson"] : files;
}

/**
 * `shardFilesFor(files)` from shards holding `present`: where flows.csv would be read but the shards
 * hold flow records instead (written for flows.ndjson), the records serve (flows.csv's rows are made
 * from them).
 */
function shardSourcesFor(files: readonly ReportFileName[], present: ReadonlySet<string>): ReportFileName[] {
  const needed = shardFilesFor(files);
  if (!needed.includes("flows.csv") || present.has("flows.csv") || !present.has("flows.ndjson"))
    return needed;
  return REPORT_FILES.filter(
    (name) => name === "flows.ndjson" || (name !== "flows.csv" && needed.includes(name)),
  );
}

async function filterAsync<T>(items: readonly T[], keep: (item: T) => Promise<boolean>): Promise<T[]> {
  const kept = await Promise.all(items.map(keep));
  return items.filter((_item, index) => kept[index]);
}

async function orphansCountedIn(dir: string): Promise<boolean> {
  try {
    const summary = JSON.parse(await readFile(join(dir, "summary.json"), "utf8")) as ReportSummary;
    return summary.orphans !== null;
  } catch {
    return true; // readShards names what is wrong with it
  }
}

async function readShards(dirs: readonly string[], needed: ReadonlySet<ReportFileName>): Promise<Shard[]> {
  if (dirs.length === 0) throw new ReportMergeError("no report directories to merge");
  const shards: Shard[] = [];
  for (const dir of dirs) {
    const path = join(dir, "summary.json");
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") throw new ReportMergeError(`${path}: missing; ${dir} is not a report directory`);
      throw error;
    }
    let summary: ReportSummary;
    try {
      summary = JSON.parse(text) as ReportSummary;
    } catch (error) {
      throw new ReportMergeError(`${path}: not JSON (${(error as Error).message})`);
    }
    const shard = summary?.packets?.shard;
    const data = summary?.[SHARD_MERGE_FIELD] as ShardMergeData | undefined;
    if (shard === undefined || shard === null)
      throw new ReportMergeError(
        `${path}: not a shard's report (no packets.shard: written without --shard I/N)`,
      );
    if (data === undefined)
      throw new ReportMergeError(
        `${path}: no ${SHARD_MERGE_FIELD} (written by a version that cannot be merged)`,
      );
    shards.push({ dir, index: shard.index, count: shard.count, summary, data, ids: new Int32Array(0) });
  }
  const first = shards[0];
  for (const [position, shard] of shards.entries()) {
    const path = join(shard.dir, "summary.json");
    if (shard.count !== first.count)
      throw new ReportMergeError(
        `${path}: shard ${shard.index}/${shard.count}, but ${first.dir} is shard ${first.index}/${first.count}`,
      );
    const twin = shards.slice(0, position).find((other) => other.index === shard.index);
    if (twin !== undefined)
      throw new ReportMergeError(`${path}: shard ${shard.index}/${shard.count} again (${twin.dir} is too)`);
    for (const [what, read] of ALIKE)
      if (JSON.stringify(read(shard.summary)) !== JSON.stringify(read(first.summary)))
        throw new ReportMergeError(
          `${path}: other ${what} than ${join(first.dir, "summary.json")}: not a shard of the same run`,
        );
  }
  const missing: number[] = [];
  for (let index = 0; index < first.count; index++)
    if (!shards.some((shard) => shard.index === index)) missing.push(index);
  if (missing.length > 0)
    throw new ReportMergeError(
      `shard${missing.length > 1 ? "s" : ""} ${missing.map((index) => `${index}/${first.count}`).join(", ")} missing ` +
        `(${shards.length} report director${shards.length > 1 ? "ies" : "y"} given)`,
    );
  shards.sort((a, b) => a.index - b.index);
  for (const shard of shards)
    for (const name of needed) {
      const path = join(shard.dir, name);
      if (!(await isFile(path))) throw new ReportMergeError(`${path}: missing`);
    }
  return shards;
}

/**
 * Builds each shard's id map from its flows.ndjson or flows.csv (every confirmed connection has a
 * record, a row): the merged id is the rank by (firstPacket, shard, shard's id). Returns the ties
 * across shards.
 */
async function numberConnections(shards: Shard[], from: "flows.ndjson" | "flows.csv"): Promise<number> {
  const starts: { sec: Float64Array; nsec: Int32Array; count: number }[] = [];
  const firstPacketColumn = FLOW_CSV_COLUMNS.indexOf("first_packet");
  for (const shard of shards) {
    const size = Math.max(shard.summary.connections.total, shard.summary.connections.created);
    const sec = new Float64Array(size + 1).fill(-1);
    const nsec = new Int32Array(size + 1);
    const csv = from === "flows.csv";
    const lines = csv ? shardRows(join(shard.dir, from)) : shardLines(join(shard.dir, from));
    if (csv) await expectHeader(lines, FLOW_CSV_COLUMNS);
    let records = 0;
    for (let line = await lines.next(); line !== null; line = await lines.next()) {
      records++;
      let local: number;
      let time: string;
      if (csv) {
        local = Number(csvCell(line, 0));
        time = csvCell(line, firstPacketColumn);
        if (!Number.isInteger(local) || time === "") throw lines.error("not a flows.csv row");
      } else {
        const id = /^\{"id":(\d+),/.exec(line);
        const at = line.indexOf('"firstPacket":"');
        if (id === null || at < 0)
          throw lines.error('not a flow record (no "id" first, or no "firstPacket")');
        local = Number(id[1]);
        time = line.slice(at + 15, at + 45);
      }
      if (local < 1 || local > size)
        throw lines.error(`connection id ${local} beyond the ${size} connections summary.json counts`);
      if (sec[local] >= 0) throw lines.error(`connection id ${local} twice`);
      const seconds = Date.parse(`${time.slice(0, 19)}Z`) / 1000;
      const nanoseconds = Number(time.slice(20, 29));
      if (!Number.isFinite(seconds) || !Number.isInteger(nanoseconds))
        throw lines.error(`firstPacket "${time}" is not a time`);
      sec[local] = seconds;
      nsec[local] = nanoseconds;
    }
    checkRowCount(lines, records, shard.summary.connections.total);
    starts.push({ sec, nsec, count: size });
    shard.ids = new Int32Array(size + 1);
  }
  const next = shards.map(() => 1);
  const skip = (s: number): void => {
    while (next[s] <= starts[s].count && starts[s].sec[next[s]] < 0) next[s]++;
  };
  shards.forEach((_shard, s) => skip(s));
  let id = 0;
  let ties = 0;
  for (;;) {
    let best = -1;
    let tied = false;
    for (let s = 0; s < shards.length; s++) {
      if (next[s] > starts[s].count) continue;
      if (best < 0) {
        best = s;
        continue;
      }
      const order =
        starts[s].sec[next[s]] - starts[best].sec[next[best]] ||
        starts[s].nsec[next[s]] - starts[best].nsec[next[best]];
      if (order < 0) {
        best = s;
        tied = false;
      } else if (order === 0) tied = true;
    }
    if (best < 0) break;
    if (tied) ties++;
    shards[best].ids[next[best]++] = ++id;
    skip(best);
  }
  return ties;
}

/** One of summary.json's `options` (the run's choices). */
function runOption(shard: Shard, name: string): unknown {
  return (shard.summary.options as Record<string, unknown> | undefined)?.[name];
}

function mergedId(shard: Shard, local: number, where: () => string): number {
  const id = local >= 1 && local < shard.ids.length ? shard.ids[local] : 0;
  if (id === 0) throw new ReportMergeError(`${where()}: connection id ${local} has no flow record`);
  return id;
}

// ------------------------------------------------------------------ events and expectations

interface Head {
  shard: number;
  reader: TextRows;
  line: string;
  key: string;
  /** Rows taken from this shard's file so far, and how many its summary.json says it holds (null: not known). */
  rows: number;
  expected: number | null;
}

/**
 * Starts merging a shard's file at its first row (after any header), or checks that it holds none when
 * it is empty.
 */
async function startHead(
  heads: Head[],
  shard: number,
  reader: TextRows,
  expected: number | null,
  keyOf: (line: string, reader: TextRows) => string,
): Promise<void> {
  const line = await reader.next();
  if (line === null) checkRowCount(reader, 0, expected);
  else heads.push({ shard, reader, line, key: keyOf(line, reader), rows: 0, expected });
}

/** A shard file cut short (a copy that stopped, a full disk) must not merge into a short report. */
function checkRowCount(reader: Pick<TextRows, "error">, rows: number, expected: number | null): void {
  if (expected !== null && rows !== expected)
    throw reader.error(
      `${rows} rows where its summary.json counts ${expected}: the file is cut short or changed`,
    );
}

/**
 * Merges one CSV file of every shard by a key, equal keys the lower shard first; `emit` gets each row.
 * Returns how many rows were chosen while another shard's next row had the same key.
 */
async function mergeCsv(
  shards: Shard[],
  name: string,
  columns: readonly string[],
  expected: (shard: Shard) => number | null,
  keyOf: (line: string, reader: TextRows) => string,
  emit: (line: string, head: Head) => Promise<void> | void,
): Promise<number> {
  const heads: Head[] = [];
  for (let s = 0; s < shards.length; s++) {
    const reader = shardLines(join(shards[s].dir, name));
    await expectHeader(reader, columns);
    await startHead(heads, s, reader, expected(shards[s]), keyOf);
  }
  return mergeHeads(heads, keyOf, emit);
}

async function mergeHeads(
  heads: Head[],
  keyOf: (line: string, reader: TextRows) => string,
  emit: (line: string, head: Head) => Promise<void> | void,
): Promise<number> {
  let ties = 0;
  while (heads.length > 0) {
    let best = 0;
    let tied = false;
    for (let i = 1; i < heads.length; i++) {
      if (heads[i].key < heads[best].key) {
        best = i;
        tied = false;
      } else if (heads[i].key === heads[best].key) tied = true;
    }
    if (tied) ties++;
    const head = heads[best];
    // A wait only when there is one: most writes go into the writer's buffer and most lines are read.
    const written = emit(head.line, head);
    if (written !== undefined) await written;
    head.rows++;
    const next = head.reader.next();
    const line = next === null || typeof next === "string" ? next : await next;
    if (line === null) {
      checkRowCount(head.reader, head.rows, head.expected);
      heads.splice(best, 1);
    } else {
      head.line = line;
      head.key = keyOf(line, head.reader);
    }
  }
  return ties;
}

function timeKey(line: string, reader: TextRows): string {
  const comma = line.indexOf(",");
  if (comma <= 0) throw reader.error("no time column");
  return line.slice(0, comma);
}

async function mergeEvents(
  shards: Shard[],
  out: OutputSink,
): Promise<{ ties: number; mostLiveAtOnce: number | null }> {
  const idColumn = EVENT_CSV_COLUMNS.indexOf("connection_id");
  const masterColumn = EVENT_CSV_COLUMNS.indexOf("master_connection_id");
  const typeColumn = EVENT_CSV_COLUMNS.indexOf("type");
  const cellColumns = [typeColumn, idColumn, masterColumn];
  if (!(typeColumn < idColumn && idColumn < masterColumn)) throw new Error("events.csv's columns moved");
  const cells = new Int32Array(2 * cellColumns.length);
  await out.write(csvRow(EVENT_CSV_COLUMNS));
  // events.csv holds every event, or none when the settings turned events off.
  const eventRows = (shard: Shard): number =>
    runOption(shard, "eventsListedInEventsCsv") === false
      ? 0
      : Object.values(shard.summary.events).reduce((total, count) => total + count, 0);
  // Lines go through as bytes, only the id cells rewritten: no string per event.
  const heads: ByteHead[] = [];
  for (let s = 0; s < shards.length; s++) {
    const reader = new ByteLineReader(join(shards[s].dir, "events.csv"), {
      errorClass: ReportMergeError,
      requireLineEnd: true,
    });
    await expectHeader(reader, EVENT_CSV_COLUMNS);
    const expected = eventRows(shards[s]);
    if (await reader.next()) heads.push({ shard: s, reader, keyEnd: timeEnd(reader), rows: 0, expected });
    else checkRowCount(reader, 0, expected);
  }
  let live = 0;
  let most = 0;
  let ties = 0;
  // The chosen line with its id cells (found in `cells`) as `mergedIds` (0: an empty cell), straight
  // into the output's chunk.
  let found = 0;
  const mergedIds = [0, 0, 0];
  const renumbered: ByteEncoder<ByteHead> = {
    encode(head, target, at) {
      const reader = head.reader;
      const bytes = reader.bytes;
      let copied = reader.start;
      for (let i = 1; i < found; i++) {
        if (mergedIds[i] === 0) continue;
        at += bytes.copy(target, at, copied, cells[2 * i]);
        at = writeNumber(target, at, mergedIds[i]);
        copied = cells[2 * i + 1];
      }
      at += bytes.copy(target, at, copied, reader.end);
      target[at++] = 0x0a;
      return at;
    },
  };
  while (heads.length > 0) {
    let best = 0;
    let tied = false;
    for (let i = 1; i < heads.length; i++) {
      const order = compareKeys(heads[i], heads[best]);
      if (order < 0) {
        best = i;
        tied = false;
      } else if (order === 0) tied = true;
    }
    if (tied) ties++;
    const head = heads[best];
    const reader = head.reader;
    const bytes = reader.bytes;
    found = findCsvCells(bytes, reader.start, reader.end, cellColumns, cells);
    const type = found > 0 ? eventType(bytes, cells[0], cells[1]) : EventType.Other;
    // Every id is checked, also when events.csv itself is not written (the summary's merge reads it).
    for (let i = 1; i < found; i++) {
      const cellStart = cells[2 * i];
      const cellEnd = cells[2 * i + 1];
      if (cellEnd === cellStart) {
        mergedIds[i] = 0;
        continue;
      }
      const local = digitsValue(bytes, cellStart, cellEnd);
      mergedIds[i] = mergedId(
        shards[head.shard],
        local >= 0 ? local : Number(bytes.toString("utf8", cellStart, cellEnd)),
        () => reader.where(),
      );
    }
    // Room for the line and two ids of at most 16 digits each, and its line end.
    const written = out.writeEncoded(renumbered, head, reader.end - reader.start + 2 * 16 + 1);
    if (written !== undefined) await written;
    // The engine counts its table's size as a connection is confirmed (its NEW) and after the
    // expiries before it: following NEW and DESTROY in the merged order gives the single run's most.
    if (type === EventType.New && ++live > most) most = live;
    else if (type === EventType.Destroy) live--;
    head.rows++;
    const next = reader.next();
    if (next === true || (next !== false && (await next))) head.keyEnd = timeEnd(reader);
    else {
      checkRowCount(reader, head.rows, head.expected);
      heads.splice(best, 1);
    }
  }
  const listed = runOption(shards[0], "eventsListedInEventsCsv") !== false;
  return { ties, mostLiveAtOnce: listed ? most : null };
}

/** A shard's events.csv in a merge by time: its current line, where that line's time cell ends. */
interface ByteHead {
  shard: number;
  reader: ByteLineReader;
  keyEnd: number;
  rows: number;
  expected: number | null;
}

/** Where the current line's first cell (its time) ends. */
function timeEnd(reader: ByteLineReader): number {
  const comma = reader.bytes.indexOf(0x2c, reader.start);
  if (comma <= reader.start || comma >= reader.end) throw reader.error("no time column");
  return comma;
}

/** Two heads' time cells compared as the text they are (ASCII: byte by byte). */
function compareKeys(a: ByteHead, b: ByteHead): number {
  const left = a.reader.bytes;
  const right = b.reader.bytes;
  const leftLength = a.keyEnd - a.reader.start;
  const rightLength = b.keyEnd - b.reader.start;
  const length = Math.min(leftLength, rightLength);
  for (let i = 0; i < length; i++) {
    const order = left[a.reader.start + i] - right[b.reader.start + i];
    if (order !== 0) return order;
  }
  return leftLength - rightLength;
}

const enum EventType {
  Other = 0,
  New = 1,
  Destroy = 2,
}

const NEW_BYTES = Buffer.from("NEW");
const DESTROY_BYTES = Buffer.from("DESTROY");

function eventType(bytes: Buffer, start: number, end: number): EventType {
  if (sameBytes(bytes, start, end, NEW_BYTES)) return EventType.New;
  if (sameBytes(bytes, start, end, DESTROY_BYTES)) return EventType.Destroy;
  return EventType.Other;
}

function sameBytes(bytes: Buffer, start: number, end: number, word: Buffer): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (bytes[start + i] !== word[i]) return false;
  return true;
}

async function mergeExpectations(shards: Shard[], out: OutputSink): Promise<{ ties: number }> {
  const masterColumn = EXPECT_EVENT_CSV_COLUMNS.indexOf("master_connection_id");
  const idColumn = EXPECT_EVENT_CSV_COLUMNS.indexOf("expectation_id");
  const typeColumn = EXPECT_EVENT_CSV_COLUMNS.indexOf("type");
  // Expectation ids in the order they appear (a NEW first, as they are created); forgotten at their
  // DESTROY, so this holds the live expectations only.
  const live = new Map<string, number>();
  let nextId = 1;
  await out.write(csvRow(EXPECT_EVENT_CSV_COLUMNS));
  const expectationRows = (shard: Shard): number =>
    shard.summary.expectations.events.NEW + shard.summary.expectations.events.DESTROY;
  const ties = await mergeCsv(
    shards,
    "expectations.csv",
    EXPECT_EVENT_CSV_COLUMNS,
    expectationRows,
    timeKey,
    (line, head) => {
      const cells = splitCsvRow(line);
      const where = () => head.reader.where();
      if (cells[masterColumn] !== "")
        cells[masterColumn] = `${mergedId(shards[head.shard], Number(cells[masterColumn]), where)}`;
      const key = `${head.shard}:${cells[idColumn]}`;
      let id = live.get(key);
      if (id === undefined) live.set(key, (id = nextId++));
      if (cells[typeColumn] === "DESTROY") live.delete(key);
      cells[idColumn] = `${id}`;
      return out.write(`${cells.join(",")}\n`);
    },
  );
  return { ties };
}

// ------------------------------------------------------------------ flows and NAT mappings

interface FlowsResult {
  ties: number;
  total: number;
  live: number;
  page: FlowRecord[];
  natPage: NatMappingRecord[];
  natTotal: number;
  talkers: SummaryBuilder;
}

function emptyFlowsResult(talkers: SummaryBuilder): FlowsResult {
  return { ties: 0, total: 0, live: 0, page: [], natPage: [], natTotal: 0, talkers };
}

/** A shard's nat.ndjson, read as its flows close the mappings. */
interface NatStream {
  reader: LineReader;
  head: NatMappingRecord | null;
  headKey: string;
  /** Flows seen per mapping key since its mapping opened. */
  seen: Map<string, number>;
}

async function mergeFlows(
  shards: Shard[],
  flowsCsv: OutputSink,
  flowsJson: OutputSink,
  natOutputs: { csv: OutputSink; ndjson: OutputSink } | null,
  wanted: { talkers: boolean; page: boolean },
): Promise<FlowsResult> {
  const page = shards[0].data;
  const result = emptyFlowsResult(new SummaryBuilder({ topTalkers: page.topTalkers }));
  const nat: NatStream[] = [];
  for (const shard of natOutputs === null ? [] : shards) {
    const stream: NatStream = {
      reader: shardLines(join(shard.dir, "nat.ndjson")),
      head: null,
      headKey: "",
      seen: new Map(),
    };
    await advanceNat(stream);
    nat.push(stream);
  }
  const writeCsv = flowsCsv !== DISCARD;
  const writeJson = flowsJson !== DISCARD;
  if (writeCsv) await flowsCsv.write(csvRow(FLOW_CSV_COLUMNS));
  if (natOutputs !== null) await natOutputs.csv.write(csvRow(NAT_CSV_COLUMNS));

  // A shard's flows.csv rows are its flows.ndjson lines' (written from the same state, in the same
  // order): copied with their ids renumbered instead of made again from the record.
  const csvRows = new Map<TextRows, CsvRowReader | null>();
  // Ended flows by end time, then the live ones by merged id, as the single run writes them.
  const shardOf = new Map<TextRows, Shard>();
  const current = new Map<TextRows, FlowLine>();
  const keyOf = (line: string, reader: TextRows): string => {
    const flow = flowLine(line, reader, shardOf.get(reader)!);
    current.set(reader, flow);
    return flow.endTime !== null ? `0${flow.endTime}` : `1${String(flow.id).padStart(12, "0")}`;
  };
  const heads: Head[] = [];
  for (let s = 0; s < shards.length; s++) {
    const reader = shardLines(join(shards[s].dir, "flows.ndjson"));
    shardOf.set(reader, shards[s]);
    let rows: CsvRowReader | null = null;
    if (writeCsv && (await isFile(join(shards[s].dir, "flows.csv")))) {
      rows = shardRows(join(shards[s].dir, "flows.csv"));
      await expectHeader(rows, FLOW_CSV_COLUMNS);
    }
    csvRows.set(reader, rows);
    await startHead(heads, s, reader, shards[s].summary.connections.total, keyOf);
  }
  result.ties = await mergeHeads(heads, keyOf, async (line, head) => {
    const flow = current.get(head.reader)!;
    const masterText = flow.masterId === null ? "null" : String(flow.masterId);
    result.total++;
    if (flow.endTime === null) result.live++;
    let record: FlowRecord | null = null;
    const recordOf = (): FlowRecord => {
      if (record !== null) return record;
      try {
        record = JSON.parse(line) as FlowRecord;
      } catch {
        throw head.reader.error("not JSON");
      }
      record.id = flow.id;
      record.masterId = flow.masterId;
      return record;
    };
    if (writeCsv) {
      const rows = csvRows.get(head.reader)!;
      if (rows === null) await flowsCsv.write(flowCsvRow(recordOf()));
      else await flowsCsv.write(renumberedCsvRow(await rows.next(), flow, rows));
    }
    if (writeJson)
      await flowsJson.write(
        `{"id":${flow.id}${line.slice(flow.idEnd, flow.masterAt)},"masterId":${masterText}${line.slice(flow.masterEnd)}\n`,
      );
    if (wanted.talkers) addFlowTalkers(result.talkers, line, head.reader);
    if (wanted.page && result.page.length < page.htmlMaxFlows) result.page.push(recordOf());
    if (flow.nat === "none" || natOutputs === null) return;
    // The single run writes a mapping's row right after the record of its last connection.
    const stream = nat[head.shard];
    const key = flowNatKey(recordOf());
    const seen = (stream.seen.get(key) ?? 0) + 1;
    stream.seen.set(key, seen);
    if (stream.head !== null && stream.headKey === key && stream.head.connections === seen) {
      stream.seen.delete(key);
      const mapping = stream.head;
      mapping.connectionIds = mapping.connectionIds.map((id) =>
        mergedId(shards[head.shard], id, () => stream.reader.where()),
      );
      await natOutputs.csv.write(natMappingCsvRow(mapping));
      await natOutputs.ndjson.write(`${JSON.stringify(mapping)}\n`);
      result.natTotal++;
      if (result.natPage.length < page.htmlMaxFlows) result.natPage.push(mapping);
      await advanceNat(stream);
    }
  });
  for (const [reader, rows] of csvRows)
    if (rows !== null && (await rows.next()) !== null)
      throw rows.error(`more rows than ${reader.path} has lines`);
  for (const stream of nat)
    if (stream.head !== null) throw stream.reader.error("a NAT mapping none of the flows closes");
  return result;
}

/**
 * flows.csv from the shards' flows.csv alone (shards written for it, without flows.ndjson): ended flows
 * by end time, then the live ones by merged id, as the single run writes them; ids renumbered in place.
 */
async function mergeFlowsCsv(shards: Shard[], out: OutputSink): Promise<FlowsResult> {
  const endColumn = FLOW_CSV_COLUMNS.indexOf("end_time");
  const idColumns = [0, FLOW_CSV_COLUMNS.indexOf("master_connection_id")];
  const result = emptyFlowsResult(new SummaryBuilder());
  await out.write(csvRow(FLOW_CSV_COLUMNS));
  const shardOf = new Map<TextRows, Shard>();
  const keyOf = (row: string, rows: TextRows): string => {
    const shard = shardOf.get(rows)!;
    const end = csvCell(row, endColumn);
    if (end !== "") return `0${end}`;
    const id = mergedId(shard, Number(csvCell(row, 0)), () => rows.where());
    return `1${String(id).padStart(12, "0")}`;
  };
  const heads: Head[] = [];
  for (let s = 0; s < shards.length; s++) {
    const rows = shardRows(join(shards[s].dir, "flows.csv"));
    shardOf.set(rows, shards[s]);
    await expectHeader(rows, FLOW_CSV_COLUMNS);
    await startHead(heads, s, rows, shards[s].summary.connections.total, keyOf);
  }
  result.ties = await mergeHeads(heads, keyOf, (row, head) => {
    const shard = shards[head.shard];
    result.total++;
    if (head.key.startsWith("1")) result.live++;
    const renumbered = replaceCsvCells(row, idColumns, (cell) =>
      String(mergedId(shard, Number(cell), () => head.reader.where())),
    );
    return out.write(`${renumbered}\n`);
  });
  return result;
}

/** Reads a shard's CSV header: the one the project writes for `columns` (an empty file has none). */
async function expectHeader(rows: TextRows | ByteLineReader, columns: readonly string[]): Promise<void> {
  const header = csvRow(columns).slice(0, -1);
  const first =
    rows instanceof ByteLineReader ? ((await rows.next()) ? rows.text() : null) : await rows.next();
  if (first !== null && first !== header)
    throw rows.error(`not the header ${basename(rows.path)} has (${header.slice(0, 40)}…)`);
}

/** What the merge reads of a flows.ndjson line without parsing it: ids (merged) and where they are. */
interface FlowLine {
  /** The id in the shard, and the merged connection id and master id. */
  localId: number;
  id: number;
  masterId: number | null;
  endTime: string | null;
  nat: string;
  /** Where the line goes on after the id's digits; where `,"masterId":` starts and its value ends. */
  idEnd: number;
  masterAt: number;
  masterEnd: number;
}

/**
 * Reads a flow record line as `FLOW_NDJSON_ENCODER` writes it (keys in `FlowRecord`'s order). A key is
 * found as `,"key":`: inside a JSON string a quote is escaped, so that text is a key; the keys after
 * the free text (endTime, masterId) are found from the end.
 */
function flowLine(line: string, reader: TextRows, shard: Shard): FlowLine {
  const fail = (what: string): never => {
    throw reader.error(`not a flow record (${what})`);
  };
  if (!line.startsWith('{"id":')) fail('no "id" first');
  const idEnd = line.indexOf(",", 6);
  const localId = Number(line.slice(6, idEnd));
  const masterAt = line.lastIndexOf(',"masterId":');
  const endAt = line.lastIndexOf(',"endTime":');
  const natAt = line.indexOf(',"nat":"');
  if (idEnd < 0 || !Number.isInteger(localId) || masterAt < 0 || endAt < 0 || natAt < 0)
    fail("no id, nat, endTime or masterId");
  const masterEnd = line.indexOf(",", masterAt + 12);
  const masterText = line.slice(masterAt + 12, masterEnd < 0 ? undefined : masterEnd);
  let endTime: string | null = null;
  if (!line.startsWith("null", endAt + 11)) {
    const close = line.indexOf('"', endAt + 12);
    if (line[endAt + 11] !== '"' || close < 0) fail("endTime is neither null nor a time");
    endTime = line.slice(endAt + 12, close);
  }
  const where = () => reader.where();
  return {
    localId,
    id: mergedId(shard, localId, where),
    masterId: masterText === "null" ? null : mergedId(shard, Number(masterText), where),
    endTime,
    nat: line.slice(natAt + 8, line.indexOf('"', natAt + 8)),
    idEnd,
    masterAt,
    masterEnd: masterEnd < 0 ? line.length : masterEnd,
  };
}

/**
 * What the top talkers count of a flows.ndjson line (`SummaryBuilder.addFlow`'s talkers), read without
 * parsing it: keys are found as `flowLine` finds them, and addresses hold no escapes.
 */
function addFlowTalkers(talkers: SummaryBuilder, line: string, reader: TextRows): void {
  const fail = (what: string): never => {
    throw reader.error(`not a flow record (${what})`);
  };
  const tuple = line.indexOf(',"original":{"src":"');
  const srcEnd = line.indexOf('"', tuple + 20);
  if (tuple < 0 || srcEnd < 0 || !line.startsWith(',"dst":"', srcEnd + 1)) fail("no original src and dst");
  const dstEnd = line.indexOf('"', srcEnd + 9);
  if (dstEnd < 0) fail("no original dst");
  // The four counts follow one another near the line's end.
  let at = line.lastIndexOf(',"originalPackets":');
  const number = (key: string): number => {
    const end = line.indexOf(",", at + key.length);
    const value =
      at < 0 || end < 0 || !line.startsWith(key, at) ? NaN : Number(line.slice(at + key.length, end));
    at = end;
    return Number.isFinite(value) ? value : fail(`no number ${key}`);
  };
  const originalPackets = number(',"originalPackets":');
  const originalBytes = number(',"originalBytes":');
  const replyPackets = number(',"replyPackets":');
  const replyBytes = number(',"replyBytes":');
  talkers.addTalkers(
    line.slice(tuple + 20, srcEnd),
    line.slice(srcEnd + 9, dstEnd),
    originalBytes + replyBytes,
    originalPackets + replyPackets,
  );
}

/**
 * A shard's flows.csv row with the merged ids: the id is the first cell, the master id the one before
 * the community id (the last cell: base64, no comma or quote).
 */
function renumberedCsvRow(row: string | null, flow: FlowLine, rows: CsvRowReader): string {
  if (row === null) throw rows.error("fewer rows than flows.ndjson has lines");
  const idEnd = row.indexOf(",");
  const last = row.lastIndexOf(",");
  const masterStart = row.lastIndexOf(",", last - 1);
  if (idEnd <= 0 || masterStart <= idEnd) throw rows.error("not a flows.csv row");
  if (row.slice(0, idEnd) !== String(flow.localId))
    throw rows.error(
      `connection ${row.slice(0, idEnd)}, but flows.ndjson's line is connection ${flow.localId}`,
    );
  const master = flow.masterId === null ? "" : String(flow.masterId);
  return `${flow.id}${row.slice(idEnd, masterStart + 1)}${master}${row.slice(last)}\n`;
}

async function advanceNat(stream: NatStream): Promise<void> {
  const line = await stream.reader.next();
  if (line === null) {
    stream.head = null;
    return;
  }
  try {
    stream.head = JSON.parse(line) as NatMappingRecord;
  } catch {
    throw stream.reader.error("not JSON");
  }
  const head = stream.head;
  stream.headKey = natKey(head.protocol, head.kind, head.inside, head.outside, head.remote);
}

function natKey(
  protocol: string,
  kind: string,
  inside: NatEndpoint,
  outside: NatEndpoint,
  remote: NatEndpoint,
): string {
  return `${protocol} ${kind} ${inside.address}#${inside.port} ${outside.address}#${outside.port} ${remote.address}#${remote.port}`;
}

/** The mapping a flow belongs to, as lib/report/nat-mappings.ts defines its endpoints. */
function flowNatKey(flow: FlowRecord): string {
  const { original, reply } = flow;
  const source = (tuple: TupleRecord): number | null => tuple.sport ?? tuple.id ?? null;
  const destination = (tuple: TupleRecord): number | null => tuple.dport ?? tuple.id ?? null;
  const point = (address: string, port: number | null): NatEndpoint => ({ address, port });
  if (flow.nat === "dnat")
    return natKey(
      flow.protocol,
      flow.nat,
      point(reply.src, source(reply)),
      point(original.dst, destination(original)),
      point(original.src, source(original)),
    );
  return natKey(
    flow.protocol,
    flow.nat,
    point(original.src, source(original)),
    point(reply.dst, destination(reply)),
    flow.nat === "both" ? point(reply.src, source(reply)) : point(original.dst, destination(original)),
  );
}

// ------------------------------------------------------------------ orphans

const ORPHAN_COLUMN = Object.fromEntries(ORPHAN_CSV_COLUMNS.map((name, index) => [name, index]));
/** The connection ids an orphan's reason names. */
const REASON_IDS = /(after connection |a new connection )(\d+)/g;

async function mergeOrphans(
  shards: Shard[],
  out: OutputSink,
): Promise<{ total: number; page: OrphanRecord[]; outOfOrder: boolean }> {
  const summary = shards[0].summary;
  const inputs = summary.capture.inputs.map((input) => input.file);
  const order = summary.capture.order;
  // One input read as it is: its record numbers are the order. Otherwise the inputs were merged by
  // time (equal times: the lower input first, then record order).
  const byRecord = inputs.length === 1 && (order === null || order.reorderWindowNs === 0);
  const outOfOrder = !byRecord && order !== null && order.outOfOrder > order.reordered;
  const inputIndex = new Map(inputs.map((name, index) => [name, index]));
  const keyOf = (line: string, reader: TextRows): string => {
    const cells = splitCsvRow(line);
    const packet = cells[ORPHAN_COLUMN.packet].padStart(15, "0");
    if (byRecord) return packet;
    const input = inputIndex.get(unquote(cells[ORPHAN_COLUMN.input]));
    if (input === undefined) throw reader.error("an input summary.json does not name");
    return `${cells[ORPHAN_COLUMN.time]} ${String(input).padStart(6, "0")} ${packet}`;
  };
  const rowsOf = shards.map(() => 0);
  const page: OrphanRecord[] = [];
  const maxPage = shards[0].data.htmlMaxOrphans;
  let total = 0;
  await out.write(csvRow(ORPHAN_CSV_COLUMNS));
  await mergeCsv(
    shards,
    "orphans.csv",
    ORPHAN_CSV_COLUMNS,
    (shard) => shard.summary.orphans?.total ?? null,
    keyOf,
    (line, head) => {
      const shard = shards[head.shard];
      const where = () => head.reader.where();
      const renumber = (local: number): number => mergedId(shard, local, where);
      const cells = splitCsvRow(line);
      for (const column of ["ended_connection_id", "nearest_connection_id", "created_connection_id"]) {
        const index = ORPHAN_COLUMN[column];
        if (cells[index] !== "") cells[index] = `${renumber(Number(cells[index]))}`;
      }
      const reason = ORPHAN_COLUMN.reason;
      cells[reason] = cells[reason].replace(
        REASON_IDS,
        (_all, words: string, id: string) => `${words}${renumber(Number(id))}`,
      );
      if (page.length < maxPage) {
        // The page's records come from the shard's summary.json: orphans.csv rounds secondsAfterEnd.
        const record = shard.data.pageOrphans[rowsOf[head.shard]];
        if (record === undefined)
          throw new ReportMergeError(`${where()}: not among summary.json's page orphans`);
        page.push({
          ...record,
          reason: record.reason.replace(
            REASON_IDS,
            (_all, words: string, id: string) => `${words}${renumber(Number(id))}`,
          ),
          endedConnectionId: record.endedConnectionId === null ? null : renumber(record.endedConnectionId),
          nearestConnectionId:
            record.nearestConnectionId === null ? null : renumber(record.nearestConnectionId),
          createdConnectionId:
            record.createdConnectionId === null ? null : renumber(record.createdConnectionId),
        });
      }
      rowsOf[head.shard]++;
      total++;
      return out.write(`${cells.join(",")}\n`);
    },
  );
  return { total, page, outOfOrder };
}

// ------------------------------------------------------------------ summary.json

function sortedCounts(map: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(map).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
}

/** Sums of counters that every shard keeps under the same keys (the first shard's key order). */
function sumRecords<T extends Record<string, number>>(records: T[]): T {
  const sum = { ...records[0] };
  for (const record of records.slice(1))
    for (const [key, value] of Object.entries(record))
      (sum as Record<string, number>)[key] = ((sum as Record<string, number>)[key] ?? 0) + value;
  return sum;
}

function sumCounts(records: Record<string, number>[]): Record<string, number> {
  return sortedCounts(sumRecords(records));
}

function mergeSummaries(
  shards: Shard[],
  talkers: SummaryBuilder,
  mostLiveAtOnce: number | null,
  approximate: string[],
): ReportSummary {
  const all = shards.map((shard) => shard.summary);
  const first = all[0];
  const sum = (read: (summary: ReportSummary) => number): number =>
    all.reduce((total, summary) => total + read(summary), 0);
  const packets = first.packets;
  const classSum = Object.values(packets.classes).reduce((total, n) => total + n, 0);
  const tracked = sum((summary) => summary.packets.decoded);
  const verdicts = sumRecords(all.map((summary) => summary.packets.verdicts));
  const verdictSum = Object.values(verdicts).reduce((total, n) => total + n, 0);
  const duplicates = packets.duplicateSightings;
  const merged: Record<string, unknown> = {};
  for (const key of Object.keys(first)) {
    switch (key) {
      case "packets":
        merged.packets = {
          records: packets.records,
          classes: packets.classes,
          classReasons: packets.classReasons,
          decoded: tracked,
          verdicts,
          verdictReasons: sumCounts(all.map((summary) => summary.packets.verdictReasons)),
          tcpAcceptedWithoutUpdate: sum((summary) => summary.packets.tcpAcceptedWithoutUpdate),
          earlierThanClock: sum((summary) => summary.packets.earlierThanClock),
          ...(duplicates === undefined
            ? {}
            : { duplicateSightings: sum((s) => s.packets.duplicateSightings ?? 0) }),
          // Every shard read every record; each decoded packet was tracked by exactly one of them.
          reconciles: {
            records: classSum === packets.records,
            decoded:
              packets.classes.decoded === tracked + sum((s) => s.packets.duplicateSightings ?? 0) &&
              verdictSum === tracked,
          },
        };
        break;
      case "connections":
        merged.connections = {
          total: sum((summary) => summary.connections.total),
          created: sum((summary) => summary.connections.created),
          liveAtEnd: sum((summary) => summary.connections.liveAtEnd),
          mostLiveAtOnce:
            mostLiveAtOnce ?? Math.max(...all.map((summary) => summary.connections.mostLiveAtOnce)),
          assured: sum((summary) => summary.connections.assured),
          unreplied: sum((summary) => summary.connections.unreplied),
          related: sum((summary) => summary.connections.related),
          byProtocol: sumCounts(all.map((summary) => summary.connections.byProtocol)),
          byFinalState: sumCounts(all.map((summary) => summary.connections.byFinalState)),
          byEndReason: sumCounts(all.map((summary) => summary.connections.byEndReason)),
          byNat: sumCounts(all.map((summary) => summary.connections.byNat)),
        };
        break;
      case "orphans": {
        const counted = all.map((summary) => summary.orphans);
        merged.orphans = counted.every((orphans) => orphans !== null)
          ? {
              total: counted.reduce((total, orphans) => total + orphans.total, 0),
              byKind: sumCounts(counted.map((orphans) => orphans.byKind)),
              byReason: sumCounts(counted.map((orphans) => orphans.byReason)),
            }
          : null;
        break;
      }
      case "events":
        merged.events = sumRecords(all.map((summary) => summary.events));
        break;
      case "expectations":
        merged.expectations = {
          created: sum((summary) => summary.expectations.created),
          used: sum((summary) => summary.expectations.used),
          expired: sum((summary) => summary.expectations.expired),
          liveAtEnd: sum((summary) => summary.expectations.liveAtEnd),
          events: sumRecords(all.map((summary) => summary.expectations.events)),
        };
        break;
      case "topTalkers":
      case "topTalkersUndercountAtMost":
        // Recounted from the merged flows in their order, as the single run counts them.
        merged[key] = talkers.topTalkers()[key];
        break;
      case SHARD_MERGE_FIELD:
        break;
      default:
        // capture, settings, options: alike in every shard (readShards compared them).
        merged[key] = first[key];
    }
  }
  merged.mergedShards = {
    count: shards.length,
    note:
      "merged from the report directories of shards 0 to " +
      `${shards.length - 1} (report --shard I/${shards.length}); everything else is the single run's`,
    approximate,
  };
  return merged as ReportSummary;
}

// ------------------------------------------------------------------ files

/** Where merged rows go: a file, or nowhere (`DISCARD`). */
interface OutputSink {
  write(text: string): Promise<void> | void;
  /** `item` as `encoder` writes it, in at most `maxBytes` (lib/pipeline/replay.ts ChunkedWriter). */
  writeEncoded<T>(encoder: ByteEncoder<T>, item: T, maxBytes: number): Promise<void> | void;
  writeAll(text: string): Promise<void>;
}

/** A file the merge computes (it comes from the shard files of one that is wanted) but does not write. */
const DISCARD: OutputSink = {
  write: () => undefined,
  writeEncoded: () => undefined,
  writeAll: () => Promise.resolve(),
};

/** A shard file's lines (rows), its errors `ReportMergeError`s. */
function shardLines(path: string): LineReader {
  // `report` ends every line: a last one without is a file cut short.
  return new LineReader(path, { errorClass: ReportMergeError, requireLineEnd: true });
}

function shardRows(path: string): CsvRowReader {
  return new CsvRowReader(path, { errorClass: ReportMergeError });
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (entry) => entry.isFile(),
    () => false,
  );
}

/** A report file (written under a temporary name, renamed into place by `publish`) written line by line. */
class OutputFile extends ReportFile implements OutputSink {
  write(text: string): Promise<void> | void {
    this.writer.write(text);
    return this.writer.pending() ?? undefined;
  }

  writeEncoded<T>(encoder: ByteEncoder<T>, item: T, maxBytes: number): Promise<void> | void {
    this.writer.writeEncoded(encoder, item, maxBytes);
    return this.writer.pending() ?? undefined;
  }

  async writeAll(text: string): Promise<void> {
    await this.write(text);
  }
}

function unquote(cell: string): string {
  return cell.startsWith('"') ? cell.slice(1, -1).replace(/""/g, '"') : cell;
}
