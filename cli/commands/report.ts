import type { CommandModule } from "yargs";
import { expandInputs } from "../../lib/pipeline/inputs.js";
import {
  REPORT_FILES,
  writeReport,
  type ReportFileName,
  type ReportOptions,
} from "../../lib/pipeline/report.js";
import { writeReportInJobs } from "../../lib/pipeline/report-jobs.js";
import { noteOutputPath, UsageError } from "../errors.js";
import {
  DASH_TOKEN,
  jobsFromArguments,
  parseDurationNs,
  shardFromArguments,
  wholeNumberOption,
  withCaptureInputs,
  withForceOption,
  withJobsOption,
  withShardOption,
} from "../options.js";
import { refuseExistingReport } from "../output.js";
import { parseTimePoint } from "./table.js";
import { startCommandProgress, withProgressOption } from "../progress.js";
import { observedNatFromArguments, withObservedNatOptions } from "../nat-options.js";
import {
  formatReplaySummary,
  helperOptionsFromArguments,
  reportWarnings,
  settingsFromArguments,
  warnOnStderr,
  withConntrackSettings,
  type SettingsArguments,
} from "./events.js";

interface ReportArguments extends SettingsArguments {
  files: string[];
  jobs?: string;
  only?: string[];
  force: boolean;
  "reorder-window": string;
  output: string;
  drain: boolean;
  until?: string;
  title?: string;
  "html-max-flows": number;
  "html-max-orphans": number;
  "timeline-rows": number;
  "orphan-memory": number;
  "community-id-seed": number;
  summary: boolean;
  progress?: boolean;
}

export const reportCommand: CommandModule<object, ReportArguments> = {
  command: "report <files..>",
  describe:
    "Replay captures through conntrack and write flow reports to a directory: flows.csv, flows.ndjson, " +
    "events.csv, orphans.csv, nat.csv, nat.ndjson, expectations.csv, summary.json and a self-contained index.html",
  builder: (argv) =>
    withForceOption(
      withJobsOption(
        withShardOption(
          withObservedNatOptions(withProgressOption(withConntrackSettings(withCaptureInputs(argv)))),
        ),
      ),
    )
      .option("output", {
        alias: "o",
        type: "string",
        demandOption: true,
        describe:
          "directory to write the reports into (created if missing; a report in it is replaced only with --force)",
        coerce: (path: string) => (path === DASH_TOKEN ? "-" : path),
      })
      .option("drain", {
        type: "boolean",
        default: false,
        describe:
          "after the input, let every remaining connection expire at its own time (flows end in a timeout) " +
          "instead of listing them as still live",
      })
      .option("until", {
        type: "string",
        describe: "stop at this capture time (epoch seconds, ISO 8601, or +SECONDS from the first packet)",
      })
      .option("title", { type: "string", describe: "title of index.html (default: the inputs' names)" })
      .option("html-max-flows", {
        type: "number",
        default: 2000,
        describe: "most connections index.html lists (flows.csv has them all)",
      })
      .option("html-max-orphans", {
        type: "number",
        default: 1000,
        describe: "most orphaned packets index.html lists (orphans.csv has them all)",
      })
      .option("timeline-rows", {
        type: "number",
        default: 500,
        describe: "most connections the timeline draws",
      })
      .option("orphan-memory", {
        type: "number",
        default: 4096,
        describe: "ended connections remembered to explain late replies and name the nearest connection",
      })
      .option("community-id-seed", { type: "number", default: 0, describe: "Community ID seed (0-65535)" })
      .option("only", {
        type: "string",
        array: true,
        nargs: 1,
        describe:
          `write only these files (repeatable or comma-separated: ${REPORT_FILES.join(", ")}); ` +
          "work no wanted file needs is skipped (--only flows.csv: flows alone, fastest)",
      })
      .option("summary", {
        type: "boolean",
        default: false,
        describe: "also print the packet accounting on standard error",
      })
      .example("$0 report capture.pcap -o report/", "all reports of one capture")
      .example(
        "$0 report samples/tcp-refused/inside.pcap --sysctl samples/tcp-refused/sysctl.txt --drain -o out/",
        "under the router's settings, every connection followed to its end",
      )
      .epilogue("Exit codes: 0 reports written; 2 bad usage or unreadable input."),
  handler: async (args) => {
    if (args.output === "-")
      throw new UsageError("--output: report writes a directory of files, not standard output");
    refuseExistingReport(args.output, onlyFromArguments(args.only) ?? REPORT_FILES);
    noteOutputPath(args.output);
    const files = await expandInputs(args.files);
    const settings = await settingsFromArguments(args, warnOnStderr);
    const helperOptions = helperOptionsFromArguments(args);
    const seed = args["community-id-seed"];
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff)
      throw new UsageError(`--community-id-seed: "${seed}" is not 0-65535`);
    const jobs = jobsFromArguments(args);
    const only = onlyFromArguments(args.only);
    const options: Omit<ReportOptions, "onOpened"> = {
      outputDir: args.output,
      settings,
      ...helperOptions,
      observedNat: observedNatFromArguments(args),
      shard: shardFromArguments(args),
      reorderWindowNs: parseDurationNs(args["reorder-window"], "reorder-window"),
      drain: args.drain,
      until: args.until === undefined ? undefined : parseTimePoint(args.until),
      title: args.title,
      htmlMaxFlows: wholeNumberOption("html-max-flows", args["html-max-flows"], 0),
      htmlMaxOrphans: wholeNumberOption("html-max-orphans", args["html-max-orphans"], 0),
      timelineRows: wholeNumberOption("timeline-rows", args["timeline-rows"], 0),
      orphanMemory: wholeNumberOption("orphan-memory", args["orphan-memory"], 1),
      communityIdSeed: seed,
      describeOptions: {
        sysctl: args.sysctl ?? null,
        timeouts: args.timeout ?? [],
        hz: args.hz ?? null,
        natRules: args["nat-rules"] ?? null,
        natObserve: args["nat-observe"] === true,
        reorderWindow: args["reorder-window"],
        until: args.until ?? null,
      },
      ...(only === undefined ? {} : { only }),
    };
    // With --jobs, shard workers report no reading progress; the line files are read by this thread.
    const progress = startCommandProgress(files, { requested: args.progress, outputWhileReading: false });
    if (jobs > 1) {
      const result = await writeReportInJobs(files, {
        ...options,
        jobs,
        onOpened: progress.onOpened,
      }).finally(() => progress.finish());
      reportWarnings(result);
      for (const part of result.approximate) warnOnStderr(`--jobs ${jobs}: not exactly one run's: ${part}`);
      if (args.summary) process.stderr.write(formatReplaySummary(result.replay));
      return;
    }
    const result = await writeReport(files, { ...options, onOpened: progress.onOpened }).finally(() =>
      progress.finish(),
    );
    reportWarnings(result.replay);
    if (args.summary) process.stderr.write(formatReplaySummary(result.replay));
  },
};

/** The files `--only` names, checked (undefined: all). */
function onlyFromArguments(only: string[] | undefined): ReportFileName[] | undefined {
  if (only === undefined) return undefined;
  const names = only.flatMap((text) => text.split(",")).map((name) => name.trim());
  for (const name of names)
    if (!(REPORT_FILES as readonly string[]).includes(name))
      throw new UsageError(`--only: "${name}" is not a report file (${REPORT_FILES.join(", ")})`);
  return [...new Set(names)] as ReportFileName[];
}
