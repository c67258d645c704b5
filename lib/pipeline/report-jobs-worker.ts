/** One shard's report for `report --jobs N` (lib/pipeline/report-jobs.ts). */
import { parentPort, workerData } from "node:worker_threads";
import { writeReport } from "./report.js";
import type { ReportJobData, ReportJobMessage } from "./report-jobs.js";

const data = workerData as ReportJobData;
writeReport(data.files, data.options).then(
  (result) =>
    parentPort!.postMessage({ type: "done", warnings: result.replay.warnings } satisfies ReportJobMessage),
  (error: unknown) => {
    const failure = error instanceof Error ? error : new Error(String(error));
    parentPort!.postMessage({
      type: "error",
      message: failure.message,
      stack: failure.stack,
    } satisfies ReportJobMessage);
  },
);
