/**
 * `report --jobs N`: N worker threads each write the report of one shard of the connections
 * (`--shard I/N`, lib/pipeline/shard.ts) into a scratch directory, and the shards are merged
 * (lib/pipeline/merge-reports.ts) into the report one thread writes. Each worker reads and decodes every
 * record (the shards' clocks follow every packet); what is divided is the tracking and the writing, which
 * are most of a report's work.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { runOneShotWorker } from "./one-shot-worker.js";
import { allFedStdin, type StdinFanOut } from "./stdin-fan-out.js";
import { mergeShardSummaries, type MergedShardSummary, type ShardReplaySummary } from "./shard-summary.js";
import type { CaptureWarning } from "../capture/source.js";
import { mergeReports } from "./merge-reports.js";
import { makeDirectory, type ReportOptions } from "./report.js";
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
  summary: ReportSummary;
  files: string[];
  /** Reader warnings (every shard reads every input; the first shard's). */
  warnings: CaptureWarning[];
  /** The workers' replays as one, for `--summary` (as `table --jobs` gives it). */
  replay: MergedShardSummary;
  /** What the merge could not make exactly the single run's (empty almost always; see merge-reports.ts). */
  approximate: string[];
}

export async function writeReportInJobs(
  files: readonly string[],
  options: Omit<ReportOptions, "onOpened" | "shard"> & { jobs: number },
): Promise<ReportJobsResult> {
  const { jobs, ...reportOptions } = options;
  if (!Number.isInteger(jobs) || jobs < 2)
    throw new Error(`jobs: ${jobs} is not a whole number of at least 2`);
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
