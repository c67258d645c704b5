/**
 * `report --jobs N`, two ways.
 *
 * Files that are lines in one engine's order (flows.csv, flows.ndjson, events.csv, expectations.csv)
 * are written as the replay goes: the main thread reads and decodes every record once and hands each
 * packet to the worker of its shard, whose engine and flow tracker write the lines, which the main
 * thread puts in one engine's order (lib/pipeline/jobs.ts, as `events --jobs`). Nothing is merged
 * after the replay.
 *
 * Any other file: N worker threads each write the report of one shard of the connections (`--shard
 * I/N`, lib/pipeline/shard.ts) into a scratch directory, and the shards are merged
 * (lib/pipeline/merge-reports.ts) into the report one thread writes. Each worker reads and decodes every
 * record (the shards' clocks follow every packet); what is divided is the tracking and the writing.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { runOneShotWorker } from "./one-shot-worker.js";
import { replayCapturesInJobs, type JobsReplayOptions, type JobsReplayResult } from "./jobs.js";
import { settingsWithEvents } from "./replay.js";
import { allFedStdin, type StdinFanOut } from "./stdin-fan-out.js";
import { mergeShardSummaries, type MergedShardSummary, type ShardReplaySummary } from "./shard-summary.js";
import type { CaptureWarning } from "../capture/source.js";
import { mergeReports } from "./merge-reports.js";
import {
  ReportFile,
  eventsListed,
  makeDirectory,
  openReportFile,
  pendingWrite,
  replayOptionsOf,
  type ReportFileName,
  type ReportOptions,
} from "./report.js";
import type { ReportSummary } from "../report/summary.js";

/** What a report worker is given: the options without functions (they do not cross threads). */
export interface ReportJobData {
  files: readonly string[];
  options: Omit<ReportOptions, "onOpened">;
}

export interface ReportJobDone {
  type: "done";
  warnings: CaptureWarning[];
  /** What `--summary` says of the worker's replay. */
  replay: ShardReplaySummary;
}

export interface ReportJobsResult {
  /** Null when no summary.json was written (the files written as the replay goes). */
  summary: ReportSummary | null;
  files: string[];
  /** Reader warnings (every shard reads every input; the first shard's). */
  warnings: CaptureWarning[];
  /** The replay for `--summary`: the workers' replays as one (as `table --jobs` gives it). */
  replay: MergedShardSummary | JobsReplayResult;
  /** What the merge could not make exactly the single run's (empty almost always; see merge-reports.ts). */
  approximate: string[];
}

/**
 * `onOpened` is called when the main thread reads the inputs itself (the line files); shard workers
 * read their own and report no progress.
 */
export async function writeReportInJobs(
  files: readonly string[],
  options: Omit<ReportOptions, "shard"> & { jobs: number } & JobsRounds,
): Promise<ReportJobsResult> {
  const {
    jobs,
    roundRecords: _roundRecords,
    roundsInFlight: _roundsInFlight,
    onOpened: _onOpened,
    ...reportOptions
  } = options;
  if (!Number.isInteger(jobs) || jobs < 2)
    throw new Error(`jobs: ${jobs} is not a whole number of at least 2`);
  // Either way the connections are shared out by address pair, which observed NAT's sightings lack.
  if ((options.observedNat ?? null) !== null)
    throw new Error("--jobs shards connections by address pair: not with observed NAT");
  const only = options.only;
  if (only !== undefined && only.every((name) => LINE_ORDER_FILES.includes(name)))
    return writeLineFilesInJobs(files, { ...options, only });
  const outputDir = resolve(options.outputDir);
  // Inside the output directory (made first, with its parents, as one thread makes them): the merge
  // then reads and writes on one file system, and needs no right the output does not (beside it, in
  // `-o .`, would be the parent of the working directory).
  await makeDirectory(outputDir);
  const scratch = await mkdtemp(join(outputDir, ".pcap-conntrack-jobs-"));
  try {
    // With `only`, each shard writes those files and what their merge reads (see `shardFilesFor`).
    const shardDirs = Array.from({ length: jobs }, (_, index) => join(scratch, `shard${index}`));
    const done = await allFedStdin(files, (stdin) =>
      shardDirs.map((dir, index) =>
        runWorker(
          { files, options: { ...reportOptions, outputDir: dir, shard: { index, count: jobs } } },
          stdin,
        ),
      ),
    );
    const merged = await mergeReports(shardDirs, {
      outputDir,
      mergeNote: "when-approximate",
      ...(options.only === undefined ? {} : { files: options.only }),
    });
    return {
      summary: merged.summary,
      files: merged.files,
      warnings: done[0].warnings,
      replay: mergeShardSummaries(done.map((worker) => worker.replay)),
      approximate: merged.approximate,
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

function runWorker(data: ReportJobData, stdin: StdinFanOut | null): Promise<ReportJobDone> {
  return runOneShotWorker<ReportJobDone>(
    new URL("./report-jobs-worker.js", import.meta.url),
    data,
    "report",
    stdin,
  );
}

/** The rounds of a replay written as it goes (`JobsReplayOptions`; tests make them small). */
type JobsRounds = Pick<JobsReplayOptions, "roundRecords" | "roundsInFlight">;

/** Report files whose lines come in one engine's order, which `--jobs` writes as the replay goes. */
export const LINE_ORDER_FILES: readonly ReportFileName[] = [
  "flows.csv",
  "flows.ndjson",
  "events.csv",
  "expectations.csv",
];

/** `only` (of LINE_ORDER_FILES) from the workers' lines, in one engine's order, as the replay goes. */
async function writeLineFilesInJobs(
  files: readonly string[],
  options: Omit<ReportOptions, "shard"> & {
    jobs: number;
    only: readonly ReportFileName[];
  } & JobsRounds,
): Promise<ReportJobsResult> {
  const { outputDir, only, settings } = options;
  await makeDirectory(outputDir);
  const open = (name: ReportFileName): ReportFile | null =>
    only.includes(name) ? openReportFile(outputDir, name) : null;
  const flowsCsv = open("flows.csv");
  const flowsJson = open("flows.ndjson");
  const eventsCsv = open("events.csv");
  const expectCsv = open("expectations.csv");
  const streamed = [flowsCsv, flowsJson, eventsCsv, expectCsv].filter(
    (file): file is ReportFile => file !== null,
  );
  let replay: JobsReplayResult;
  try {
    const eventsFile = eventsListed(settings) ? eventsCsv : null;
    replay = await replayCapturesInJobs(files, {
      ...replayOptionsOf(options),
      settings: settingsWithEvents(settings),
      format: {
        format: "csv",
        timestamp: true,
        events: eventsFile !== null,
        expectations: expectCsv !== null,
      },
      writeEvents: eventsFile === null ? undefined : (bytes) => eventsFile.writer.writeBytes(bytes),
      writeExpectations: expectCsv === null ? undefined : (bytes) => expectCsv.writer.writeBytes(bytes),
      flows:
        flowsCsv === null && flowsJson === null
          ? undefined
          : {
              writeCsv: flowsCsv === null ? undefined : (bytes) => flowsCsv.writer.writeBytes(bytes),
              writeNdjson: flowsJson === null ? undefined : (bytes) => flowsJson.writer.writeBytes(bytes),
              maxHistory: options.maxHistory,
              communityIdSeed: options.communityIdSeed,
            },
      backpressure: () => pendingWrite(streamed),
    });
    for (const file of streamed) await file.finish();
  } catch (error) {
    await Promise.all(streamed.map((file) => file.abandon()));
    throw error;
  }
  for (const file of streamed) await file.publish();
  return {
    summary: null,
    files: streamed.map((file) => file.path),
    warnings: replay.warnings,
    replay,
    approximate: [],
  };
}
