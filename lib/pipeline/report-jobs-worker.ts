/** One shard's report for `report --jobs N` (lib/pipeline/report-jobs.ts). */
import { workerData } from "node:worker_threads";
import { writeReport } from "./report.js";
import { answerParent } from "./one-shot-worker.js";
import { shardReplaySummary } from "./shard-summary.js";
import type { ReportJobData, ReportJobDone } from "./report-jobs.js";

const data = workerData as ReportJobData;
answerParent(
  writeReport(data.files, data.options).then((result): ReportJobDone => ({
    type: "done",
    warnings: result.replay.warnings,
    replay: shardReplaySummary(result.replay),
  })),
);
