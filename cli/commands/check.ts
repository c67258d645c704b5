import { readFile } from "node:fs/promises";
import type { CommandModule } from "yargs";
import { expandInputs } from "../../lib/pipeline/inputs.js";
import { PolicyError, parsePolicy } from "../../lib/check/policy.js";
import { runCheck } from "../../lib/check/evaluate.js";
import {
  CHECK_FORMATS,
  formatCheckJson,
  formatCheckJunit,
  formatCheckText,
  type CheckFormat,
} from "../../lib/check/output.js";
import { UsageError } from "../errors.js";
import { observedNatFromArguments, withObservedNatOptions } from "../nat-options.js";
import { startCommandProgress, withProgressOption } from "../progress.js";
import { writeOutput } from "../output.js";
import {
  DASH_TOKEN,
  parseDurationNs,
  wholeNumberOption,
  withCaptureInputs,
  withOutputOption,
} from "../options.js";
import { parseTimePoint } from "./table.js";
import {
  formatReplaySummary,
  helperOptionsFromArguments,
  reportWarnings,
  settingsFromArguments,
  warnOnStderr,
  withConntrackSettings,
  type SettingsArguments,
} from "./events.js";

interface CheckArguments extends SettingsArguments {
  files: string[];
  "reorder-window": string;
  policy: string;
  junit?: string;
  format: CheckFormat;
  output?: string;
  drain: boolean;
  until?: string;
  "max-listed": number;
  "orphan-memory": number;
  summary: boolean;
  progress?: boolean;
}

export const checkCommand: CommandModule<object, CheckArguments> = {
  command: "check <files..>",
  describe:
    "Replay captures through conntrack and check them against a policy (limits, allowed and denied flows, " +
    "required flows, NAT, duration and size bounds); exit 1 when a rule is violated",
  builder: (argv) =>
    withObservedNatOptions(
      withProgressOption(withOutputOption(withConntrackSettings(withCaptureInputs(argv)))),
    )
      .option("policy", {
        type: "string",
        demandOption: true,
        describe: "the policy, YAML or JSON (examples in samples/policies/)",
      })
      .option("junit", {
        type: "string",
        describe: "also write JUnit XML here, one test case per rule, for CI test reports",
        coerce: (path: string | undefined) => (path === DASH_TOKEN ? "-" : path),
      })
      .option("format", {
        choices: CHECK_FORMATS,
        default: "text" as const,
        describe: "text (a readable summary) or json (for scripts)",
      })
      .option("drain", {
        type: "boolean",
        default: false,
        describe:
          "after the input, let every remaining connection expire at its own time instead of counting it as " +
          "still open at the end",
      })
      .option("until", {
        type: "string",
        describe: "stop at this capture time (epoch seconds, ISO 8601, or +SECONDS from the first packet)",
      })
      .option("max-listed", {
        type: "number",
        default: 20,
        describe: "connections or packets listed per violated rule (all are counted)",
      })
      .option("orphan-memory", {
        type: "number",
        default: 4096,
        describe: "ended connections remembered to recognise late replies",
      })
      .option("summary", {
        type: "boolean",
        default: false,
        describe: "also print the packet accounting on standard error",
      })
      .example(
        "$0 check capture.pcap --policy policy.yaml --junit conntrack-junit.xml",
        "fail the build when the traffic breaks the policy; CI shows one test per rule",
      )
      .example(
        "$0 check inside.pcap --sysctl sysctl.txt --drain --policy samples/policies/echo-service.yaml",
        "under the router's settings, every connection followed to its end",
      )
      .example(
        "$0 check inside.pcap outside.pcap --nat-observe --policy samples/policies/masquerade.yaml",
        "NAT expectations against the translation both captures show (or give the rules: --masquerade …)",
      )
      .example("$0 check capture.pcap --policy policy.json --format json", "the outcome for scripts")
      .epilogue(
        "Exit codes: 0 every rule holds; 1 a rule is violated; 2 bad usage, unreadable input or a bad policy " +
          "(each problem named by file, line, column and field).",
      ),
  handler: async (args) => {
    if (Array.isArray(args.policy)) throw new UsageError("--policy: give one policy file");
    let policy;
    try {
      policy = parsePolicy(await readFile(args.policy, "utf8"), args.policy);
    } catch (error) {
      if (error instanceof PolicyError) throw new UsageError(`bad policy:\n${error.message}`);
      throw error;
    }
    const files = await expandInputs(args.files);
    const settings = await settingsFromArguments(args, warnOnStderr);
    const helperOptions = helperOptionsFromArguments(args);
    const observedNat = observedNatFromArguments(args);
    const progress = startCommandProgress(files, { requested: args.progress, outputWhileReading: false });
    const { outcome, replay } = await runCheck(files, policy, {
      onOpened: progress.onOpened,
      settings,
      ...helperOptions,
      observedNat,
      reorderWindowNs: parseDurationNs(args["reorder-window"], "reorder-window"),
      drain: args.drain,
      until: args.until === undefined ? undefined : parseTimePoint(args.until),
      maxListed: wholeNumberOption("max-listed", args["max-listed"], 0),
      orphanMemory: wholeNumberOption("orphan-memory", args["orphan-memory"], 1),
    }).finally(() => progress.finish());
    reportWarnings(replay);
    if (args.summary) process.stderr.write(formatReplaySummary(replay));
    if (args.junit !== undefined) await writeOutput(args.junit, formatCheckJunit(outcome));
    if (args.junit !== "-" || args.output !== undefined)
      await writeOutput(
        args.output,
        args.format === "json" ? formatCheckJson(outcome) : formatCheckText(outcome),
      );
    if (!outcome.passed) process.exitCode = 1;
  },
};
