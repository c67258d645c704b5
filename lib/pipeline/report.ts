/**
 * The `report` command's work as a library call: replays captures once and writes, into one
 * directory, flows.csv, flows.ndjson, events.csv, orphans.csv, nat.csv, nat.ndjson, expectations.csv
 * (streamed as the replay goes, honouring each file's backpressure), then summary.json and index.html.
 * Every file is written under a temporary name; all are renamed into place once all are complete.
 */
import { createWriteStream } from "node:fs";
import { mkdir, rename, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Writable } from "node:stream";
import {
  ChunkedWriter,
  DEFAULT_HELPER_PORTS,
  EXPIRY_STEP,
  OUTPUT_HIGH_WATER_MARK,
  replayCaptures,
  settingsWithEvents,
  waitFor,
  type ReplayOptions,
  type ReplayResult,
} from "./replay.js";
import { createEventFormatter, createExpectEventFormatter, csvRow } from "../report/event-formats.js";
import { EventCsvEncoder } from "../report/event-csv.js";
import { FLOW_CSV_COLUMNS, FlowTracker, type FlowRecord } from "../report/flows.js";
import { ORPHAN_CSV_COLUMNS, OrphanTracker, orphanCsvRow, type OrphanRecord } from "../report/orphans.js";
import { SummaryBuilder, type ReportSummary } from "../report/summary.js";
import { renderHtmlReport } from "../report/html.js";
import { describeHelperSettings, describeNatSettings } from "../report/run-options.js";
import {
  NAT_CSV_COLUMNS,
  NatMappingTracker,
  natMappingCsvRow,
  type NatMappingRecord,
} from "../report/nat-mappings.js";

export const REPORT_FILES = [
  "flows.csv",
  "flows.ndjson",
  "events.csv",
  "orphans.csv",
  "nat.csv",
  "expectations.csv",
  "nat.ndjson",
  "summary.json",
  "index.html",
] as const;
export type ReportFileName = (typeof REPORT_FILES)[number];

/**
 * The shard files a merge that writes `files` reads: always summary.json (the accounting, the run's
 * settings) and a flows file (connection ids are numbered from it): flows.ndjson where flow records are
 * read (flows.ndjson itself, the summary's top talkers, the page, NAT mappings), else flows.csv; and
 * what each file is merged from (summary.json and the page follow the table's size through events.csv).
 */
export function shardFilesFor(files: readonly ReportFileName[]): ReportFileName[] {
  const wanted = new Set(files);
  const any = (...names: ReportFileName[]): boolean => names.some((name) => wanted.has(name));
  const needed = new Set<ReportFileName>(["summary.json"]);
  needed.add(
    any("flows.ndjson", "summary.json", "index.html", "nat.csv", "nat.ndjson") ? "flows.ndjson" : "flows.csv",
  );
  if (any("events.csv", "summary.json", "index.html")) needed.add("events.csv");
  if (any("expectations.csv")) needed.add("expectations.csv");
  if (any("nat.csv", "nat.ndjson", "index.html")) needed.add("nat.ndjson");
  if (any("orphans.csv", "index.html")) needed.add("orphans.csv");
  return REPORT_FILES.filter((name) => needed.has(name));
}

/** summary.json's field, in a shard's report only, holding what `merge` needs beyond the other files. */
export const SHARD_MERGE_FIELD = "shardMergeData";

/**
 * What merging shard reports (lib/pipeline/merge-reports.ts) cannot read from the other files: the
 * page's settings, and the orphans the page shows as records (orphans.csv rounds secondsAfterEnd).
 */
export interface ShardMergeData {
  title: string;
  generator: string;
  htmlMaxFlows: number;
  htmlMaxOrphans: number;
  timelineRows: number;
  topTalkers: number;
  /** The first `htmlMaxOrphans` orphans of this shard: the merged page's are among them. */
  pageOrphans: OrphanRecord[];
}

export interface ReportOptions extends Omit<
  ReplayOptions,
  "onEvent" | "onExpectEvent" | "onPacket" | "onInputs" | "backpressure"
> {
  /** Directory the reports go to (created if missing). */
  outputDir: string;
  /** Page title (default: "pcap-conntrack report: " + the inputs). */
  title?: string;
  /** Most flows and orphans index.html carries (default 2000 and 1000), timeline rows (default 500). */
  htmlMaxFlows?: number;
  htmlMaxOrphans?: number;
  timelineRows?: number;
  /** Ended connections remembered for orphan answers (default 4096). */
  orphanMemory?: number;
  /** State changes kept per connection (default 64). */
  maxHistory?: number;
  communityIdSeed?: number;
  topTalkers?: number;
  /**
   * Shown in summary.json under `options` (the command line's choices); `helpers` and `nat` there are
   * always the settings the replay ran with.
   */
  describeOptions?: Record<string, unknown>;
  /** Generator line for index.html (default "pcap-conntrack report"). */
  generator?: string;
  /**
   * The files to write (default all of REPORT_FILES). What no wanted file needs is not done at all:
   * flows.csv alone skips the events, orphans, NAT mappings, JSON records, summary and page. With
   * `shard`, also the files merging the wanted ones reads (`shardFilesFor`).
   */
  only?: readonly ReportFileName[];
}

export interface ReportResult {
  replay: ReplayResult;
  summary: ReportSummary;
  /** Paths written, in REPORT_FILES order. */
  files: string[];
}

/** A report file written under a temporary name: `finish` completes it, `publish` renames it into place. */
export class ReportFile {
  readonly stream: Writable;
  readonly writer: ChunkedWriter;
  readonly temporary: string;
  constructor(readonly path: string) {
    this.temporary = `${path}${temporarySuffix()}`;
    this.stream = createWriteStream(this.temporary, { highWaterMark: OUTPUT_HIGH_WATER_MARK });
    this.writer = new ChunkedWriter(this.stream);
  }
  async finish(): Promise<void> {
    await this.writer.finish();
    await new Promise<void>((resolve, reject) => {
      this.stream.once("error", reject);
      this.stream.end(resolve);
    });
  }
  async publish(): Promise<void> {
    await rename(this.temporary, this.path);
  }
  async abandon(): Promise<void> {
    this.stream.destroy();
    await unlink(this.temporary).catch(() => undefined);
  }
}

/** The line each CSV report file starts with. */
const CSV_HEADERS: Partial<Record<ReportFileName, string>> = {
  "flows.csv": csvRow(FLOW_CSV_COLUMNS),
  "events.csv": createEventFormatter("csv").header(),
  "orphans.csv": csvRow(ORPHAN_CSV_COLUMNS),
  "nat.csv": csvRow(NAT_CSV_COLUMNS),
  "expectations.csv": createExpectEventFormatter("csv").header(),
};

/** Report file `name` in `dir`, under its temporary name, its header (a CSV file's) written. */
export function openReportFile(dir: string, name: ReportFileName): ReportFile {
  const file = new ReportFile(join(dir, name));
  const header = CSV_HEADERS[name];
  if (header !== undefined) file.writer.write(header);
  return file;
}

/** Options a report reads itself; the rest are the replay's. */
type ReportOwnOption =
  | "outputDir"
  | "title"
  | "htmlMaxFlows"
  | "htmlMaxOrphans"
  | "timelineRows"
  | "orphanMemory"
  | "maxHistory"
  | "communityIdSeed"
  | "topTalkers"
  | "describeOptions"
  | "generator"
  | "only";

/** The replay's part of a report's options. */
export function replayOptionsOf<T extends ReportOptions>(options: T): Omit<T, ReportOwnOption> {
  const {
    outputDir: _outputDir,
    title: _title,
    htmlMaxFlows: _htmlMaxFlows,
    htmlMaxOrphans: _htmlMaxOrphans,
    timelineRows: _timelineRows,
    orphanMemory: _orphanMemory,
    maxHistory: _maxHistory,
    communityIdSeed: _communityIdSeed,
    topTalkers: _topTalkers,
    describeOptions: _describeOptions,
    generator: _generator,
    only: _only,
    ...replayOptions
  } = options;
  return replayOptions;
}

/** What to wait for before writing on: the first of `files` whose stream is full, else null. */
export function pendingWrite(files: readonly ReportFile[]): Promise<void> | null {
  for (const file of files) {
    const wait = file.writer.pending();
    if (wait !== null) return wait;
  }
  return null;
}

/**
 * `mkdir -p`, but a directory that cannot be made in a parent that exists fails at once: Node's
 * recursive mkdir tries the parent and the directory again forever there (`-o /proc/x` spun).
 */
export async function makeDirectory(path: string): Promise<void> {
  const made = async (): Promise<boolean> => {
    try {
      await mkdir(path);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EEXIST" && (await stat(path)).isDirectory()) return true;
      if (code === "ENOENT" && dirname(path) !== path) return false;
      throw error;
    }
  };
  if (await made()) return;
  await makeDirectory(dirname(path));
  await mkdir(path).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code !== "EEXIST" || !(await stat(path)).isDirectory()) throw error;
  });
}

export async function writeReport(files: readonly string[], options: ReportOptions): Promise<ReportResult> {
  const dir = options.outputDir;
  await makeDirectory(dir);
  // A shard also writes what merging its wanted files reads.
  const only = new Set<ReportFileName>(
    (options.shard ?? null) === null || options.only === undefined
      ? (options.only ?? REPORT_FILES)
      : shardFilesFor(options.only).concat(options.only),
  );
  const open = (name: ReportFileName): ReportFile | null =>
    only.has(name) ? openReportFile(dir, name) : null;
  const flowsCsv = open("flows.csv");
  const flowsJson = open("flows.ndjson");
  const eventsCsv = open("events.csv");
  const orphansCsv = open("orphans.csv");
  const natCsv = open("nat.csv");
  const expectCsv = open("expectations.csv");
  const natJson = open("nat.ndjson");
  const streamed = [flowsCsv, flowsJson, eventsCsv, orphansCsv, natCsv, expectCsv, natJson].filter(
    (file): file is ReportFile => file !== null,
  );
  const wantSummary = only.has("summary.json") || only.has("index.html");
  const wantPage = only.has("index.html");
  const wantNat = natCsv !== null || natJson !== null || wantPage;
  // A shard's summary.json written only for the merge (of files that do not count orphans) does without.
  const asked = options.only ?? REPORT_FILES;
  const wantOrphans = orphansCsv !== null || asked.includes("summary.json") || asked.includes("index.html");
  const wantFlows = flowsCsv !== null || flowsJson !== null || wantNat || wantSummary;

  const htmlMaxFlows = options.htmlMaxFlows ?? 2000;
  const htmlMaxOrphans = options.htmlMaxOrphans ?? 1000;
  const pageFlows: FlowRecord[] = [];
  const pageOrphans: OrphanRecord[] = [];
  const summary = new SummaryBuilder({ topTalkers: options.topTalkers });
  const eventCsv = new EventCsvEncoder();
  const expectFormat = createExpectEventFormatter("csv");

  const pageNat: NatMappingRecord[] = [];
  const natMappings = new NatMappingTracker({
    onMapping: (record) => {
      natCsv?.writer.write(natMappingCsvRow(record));
      natJson?.writer.write(`${JSON.stringify(record)}\n`);
      if (wantPage && pageNat.length < htmlMaxFlows) pageNat.push(record);
    },
  });
  const flows = new FlowTracker({
    maxHistory: options.maxHistory,
    communityIdSeed: options.communityIdSeed,
    // flows.csv is written from the tracker's state; a record is built only for what reads records.
    csv: flowsCsv?.writer,
    ndjson: flowsJson?.writer,
    // Records are built only for what reads them: the page's first flows and translated connections.
    onFlowEnd:
      !wantNat && !wantSummary
        ? undefined
        : (end) => {
            if (wantSummary) summary.addFlowEnd(end);
            const forPage = wantPage && pageFlows.length < htmlMaxFlows;
            if (!forPage && !(wantNat && natMappings.tracks(end.connection!.id))) return;
            const record = end.record();
            if (wantNat) natMappings.onFlow(record);
            if (forPage) pageFlows.push(record);
          },
  });
  const orphans = new OrphanTracker({
    memory: options.orphanMemory,
    onOrphan: (record) => {
      orphansCsv?.writer.write(orphanCsvRow(record));
      if (wantPage && pageOrphans.length < htmlMaxOrphans) pageOrphans.push(record);
    },
  });

  // The flows need every event whatever nf_conntrack_events says; events.csv shows what a listener
  // would have seen, so it stays empty when the settings turn events off.
  const replayOptions = replayOptionsOf(options);
  const eventsWanted = eventsListed(options.settings);
  const settings = settingsWithEvents(options.settings);

  const backpressure = (): Promise<void> | null => pendingWrite(streamed);
  let replay: ReplayResult;
  try {
    const eventsFile = eventsWanted ? eventsCsv : null;
    replay = await replayCaptures(files, {
      ...replayOptions,
      settings,
      onInputs: (names) => orphans.setInputNames(names),
      onEvent: (event) => {
        if (eventsFile !== null) eventsFile.writer.writeEncoded(eventCsv, event, eventCsv.maxBytes(event));
        if (wantOrphans) orphans.onEvent(event);
        if (wantFlows) flows.onEvent(event);
        if (wantNat && event.type === "NEW") natMappings.onNew(event.connection);
      },
      onExpectEvent:
        expectCsv === null ? undefined : (event) => expectCsv.writer.write(expectFormat.format(event)),
      onPacket: !wantOrphans
        ? undefined
        : (record, _packetClass, packet, verdict, reason, connection) => {
            if (verdict < 0) return;
            const live = wantFlows ? flows.liveConnection(verdict, connection) : null;
            orphans.onPacket(record.inputIndex, record.recordNumber, packet, verdict, reason, live);
          },
      backpressure,
    });
    if (wantFlows) while (!flows.finish(replay.engine, EXPIRY_STEP)) await waitFor(backpressure);
    for (const file of streamed) await file.finish();
  } catch (error) {
    await Promise.all(streamed.map((file) => file.abandon()));
    throw error;
  }

  const title = options.title ?? `pcap-conntrack report: ${replay.inputNames.join(", ")}`;
  const generator = options.generator ?? "pcap-conntrack report";
  const timelineRows = options.timelineRows ?? 500;
  const shardMergeData: ShardMergeData | null = replay.shard
    ? {
        title,
        generator,
        htmlMaxFlows,
        htmlMaxOrphans,
        timelineRows,
        topTalkers: options.topTalkers ?? 20,
        pageOrphans,
      }
    : null;
  const reportSummary = summary.build(replay, wantOrphans ? orphans : null, {
    ...(shardMergeData === null ? {} : { [SHARD_MERGE_FIELD]: shardMergeData }),
    options: {
      ...(options.describeOptions ?? {}),
      helpers: describeHelperSettings(options, DEFAULT_HELPER_PORTS),
      nat: describeNatSettings(options.nat),
      drain: options.drain === true,
      eventsListedInEventsCsv: eventsWanted,
      orphanMemory: options.orphanMemory ?? 4096,
      communityIdSeed: options.communityIdSeed ?? 0,
    },
  });
  const summaryPath = join(dir, "summary.json");
  const htmlPath = join(dir, "index.html");
  const written: string[] = [];
  try {
    if (only.has("summary.json"))
      await writeTemporary(summaryPath, `${JSON.stringify(reportSummary, null, 2)}\n`, written);
    if (wantPage)
      await writeTemporary(
        htmlPath,
        renderHtmlReport({
          title,
          summary: reportSummary,
          flows: pageFlows,
          totalFlows: flows.emitted,
          orphans: pageOrphans,
          totalOrphans: orphans.count,
          natMappings: pageNat,
          totalNatMappings: natMappings.emitted,
          timelineRows,
          generator,
        }),
        written,
      );
  } catch (error) {
    await Promise.all([
      ...streamed.map((file) => unlink(file.temporary).catch(() => undefined)),
      ...written.map((temporary) => unlink(temporary).catch(() => undefined)),
    ]);
    throw error;
  }
  // Every file is complete before any is renamed, so a full disk or a crash while writing leaves the
  // previous report as it was. The page goes last: a report with its index.html is whole.
  for (const file of streamed) await file.publish();
  const finished = streamed.map((file) => file.path);
  for (const path of [summaryPath, htmlPath]) {
    if (!written.includes(`${path}${temporarySuffix()}`)) continue;
    await rename(`${path}${temporarySuffix()}`, path);
    finished.push(path);
  }
  return { replay, summary: reportSummary, files: finished };
}

/**
 * Whether events.csv lists the events: not when the settings turn events off (nf_conntrack_events 0),
 * as a listener would then have seen none; the flows follow them all the same.
 */
export function eventsListed(settings: ReportOptions["settings"]): boolean {
  const requested = (settings ?? {}) as Record<string, number>;
  return (requested["net.netfilter.nf_conntrack_events"] ?? requested.events ?? 1) !== 0;
}

function temporarySuffix(): string {
  return `.partial-${process.pid}`;
}

/** Writes `text` under `path`'s temporary name (recorded in `written`), to be renamed into place later. */
async function writeTemporary(path: string, text: string, written: string[]): Promise<void> {
  const temporary = `${path}${temporarySuffix()}`;
  written.push(temporary);
  await writeFile(temporary, text);
}
