import type { CommandModule } from "yargs";
import type { Connection } from "../../lib/conntrack/connection.js";
import { expandInputs } from "../../lib/pipeline/inputs.js";
import {
  ChunkedWriter,
  replayCaptures,
  waitFor,
  type ReplayResult,
  type TimePoint,
} from "../../lib/pipeline/replay.js";
import { formatProcLine } from "../../lib/report/conntrack-text.js";
import { formatExpectProcLine } from "../../lib/report/expect-text.js";
import { tableInJobs, type MergedTable } from "../../lib/pipeline/table-jobs.js";
import type { Expectation } from "../../lib/conntrack/expectations.js";
import {
  EXPECT_TABLE_CSV_COLUMNS,
  JsonArrayFormatter,
  TABLE_CSV_COLUMNS,
  connectionCsvRow,
  connectionRecord,
  conntrackExpectListTrailer,
  conntrackListTrailer,
  csvRow,
  expectationCsvRow,
  expectationRecord,
  expectationTimeout,
  formatConntrackListLine,
  formatExpectListLine,
  isoTimeNs,
  procLineOptionsOf,
  tableViewOf,
  type ConnectionRecord,
  type ExpectationRecord,
} from "../../lib/report/event-formats.js";
import { UsageError } from "../errors.js";
import { OutputTarget, refuseExistingOutputs } from "../output.js";
import {
  jobsFromArguments,
  parseDurationNs,
  shardFromArguments,
  withCaptureInputs,
  withJobsOption,
  withOutputOption,
  withShardOption,
} from "../options.js";
import { startCommandProgress, withProgressOption } from "../progress.js";
import { observedNatFromArguments, withObservedNatOptions } from "../nat-options.js";
import {
  formatReplaySummary,
  helperOptionsFromArguments,
  reportWarnings,
  settingsFromArguments,
  warnOnStderr,
  withConntrackSettings,
  type ReplaySummaryInput,
  type SettingsArguments,
} from "./events.js";

export const TABLE_FORMATS = ["proc", "conntrack", "csv", "json"] as const;
type TableFormat = (typeof TABLE_FORMATS)[number];

interface TableArguments extends SettingsArguments {
  files: string[];
  "reorder-window": string;
  at?: string;
  format: TableFormat;
  expect: boolean;
  summary: boolean;
  output?: string;
  progress?: boolean;
}

/**
 * Reads a point in capture time: epoch seconds with an optional fraction ("1764000000.25"), ISO 8601
 * ("2025-11-24T16:00:00.25Z"; without an offset it is local time, as ISO 8601 says), or "+SECONDS"
 * counted from the first packet ("+1.5"). Fractions are kept to the nanosecond.
 */
export function parseTimePoint(text: string): TimePoint {
  const trimmed = text.trim();
  const relative = /^\+(\d+)(?:\.(\d+))?$/.exec(trimmed);
  if (relative) return { kind: "relative", offsetNs: Number(relative[1]) * 1e9 + fractionNs(relative[2]) };
  const epoch = /^(\d+)(?:\.(\d+))?$/.exec(trimmed);
  if (epoch) return { kind: "absolute", tsSec: Number(epoch[1]), tsNsec: fractionNs(epoch[2]) };
  const iso =
    /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(
      trimmed,
    );
  if (iso) {
    const [, year, month, day, hour, minute, second, fraction, zone] = iso;
    const fields = [
      Number(year),
      Number(month) - 1,
      Number(day),
      Number(hour),
      Number(minute),
      Number(second ?? 0),
    ];
    const valid =
      fields[1] <= 11 &&
      fields[2] >= 1 &&
      fields[2] <= 31 &&
      fields[3] <= 23 &&
      fields[4] <= 59 &&
      fields[5] <= 60;
    if (valid) {
      let ms: number;
      if (zone === undefined) {
        ms = new Date(fields[0], fields[1], fields[2], fields[3], fields[4], fields[5]).getTime();
      } else {
        ms = Date.UTC(fields[0], fields[1], fields[2], fields[3], fields[4], fields[5]) - zoneOffsetMs(zone);
      }
      return { kind: "absolute", tsSec: Math.floor(ms / 1000), tsNsec: fractionNs(fraction) };
    }
  }
  throw new UsageError(
    `--at: "${text}" is not a time (examples: 1764000000.5, 2025-11-24T16:00:00.5Z, +2.5 for 2.5 s after the first packet)`,
  );
}

function fractionNs(digits: string | undefined): number {
  if (digits === undefined) return 0;
  return Number(digits.slice(0, 9).padEnd(9, "0"));
}

function zoneOffsetMs(zone: string): number {
  if (zone.toUpperCase() === "Z") return 0;
  const sign = zone[0] === "-" ? -1 : 1;
  const digits = zone.slice(1).replace(":", "");
  return sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0)) * 60_000;
}

export const tableCommand: CommandModule<object, TableArguments> = {
  command: "table <files..>",
  describe: "Replay captures through conntrack and print the connection table as it stood at a given time",
  builder: (argv) =>
    withObservedNatOptions(
      withJobsOption(
        withShardOption(withProgressOption(withOutputOption(withConntrackSettings(withCaptureInputs(argv))))),
      ),
    )
      .option("at", {
        type: "string",
        describe:
          "when to look: epoch seconds (1764000000.5), ISO 8601 (2025-11-24T16:00:00.5Z) or +SECONDS after " +
          "the first packet; default: the last packet",
      })
      .option("format", {
        choices: TABLE_FORMATS,
        default: "proc" as const,
        describe:
          "proc: /proc/net/nf_conntrack lines; conntrack: `conntrack -L` lines; csv; json " +
          "(with --expect: /proc/net/nf_conntrack_expect and `conntrack -L expect` lines)",
      })
      .option("expect", {
        type: "boolean",
        default: false,
        describe: "print the expectation table instead of the connection table",
      })
      .option("summary", {
        type: "boolean",
        default: false,
        describe: "account for every packet read on standard error: record classes and conntrack verdicts",
      })
      .example("$0 table capture.pcap --at +30", "the table 30 s after the first packet")
      .example("$0 table capture.pcap --format conntrack", "as `conntrack -L` lists it at the end")
      .example(
        "$0 table ftp.pcap --expect --at +2",
        "/proc/net/nf_conntrack_expect 2 s after the first packet",
      ),
  handler: async (args) => {
    refuseExistingOutputs([args.output]);
    const until = args.at === undefined ? undefined : parseTimePoint(args.at);
    const jobs = jobsFromArguments(args);
    const files = await expandInputs(args.files);
    const settings = await settingsFromArguments(args, warnOnStderr);
    const helperOptions = helperOptionsFromArguments(args);
    const reorderWindowNs = parseDurationNs(args["reorder-window"], "reorder-window");
    if (jobs > 1) {
      const merged = await tableInJobs(
        files,
        { settings, ...helperOptions, reorderWindowNs, until },
        args.format === "proc" || args.format === "conntrack" ? args.format : "records",
        jobs,
        args.expect,
      );
      reportWarnings(merged);
      await outputTable(
        args,
        (writer) => writeMergedTable(merged, args.format, writer, args.expect),
        merged,
        merged.summary,
      );
      return;
    }
    // The table is written once reading is over, so nothing streams to the terminal meanwhile.
    const progress = startCommandProgress(files, { requested: args.progress, outputWhileReading: false });
    let result: ReplayResult;
    try {
      result = await replayCaptures(files, {
        settings,
        ...helperOptions,
        observedNat: observedNatFromArguments(args),
        shard: shardFromArguments(args),
        reorderWindowNs,
        until,
        onOpened: progress.onOpened,
      });
    } finally {
      progress.finish();
    }
    reportWarnings(result);
    await outputTable(
      args,
      (writer) =>
        args.expect ? writeExpectTable(result, args.format, writer) : writeTable(result, args.format, writer),
      result,
      result,
    );
  },
};

type CaptureTime = { tsSec: number; tsNsec: number };

/**
 * Writes the table through `write` (all of it or, on a failure, none), then what goes to stderr: the
 * `conntrack -L` trailer, an empty table's warning, and with `--summary` the table's time and the
 * replay's accounting.
 */
async function outputTable(
  args: TableArguments,
  write: (writer: ChunkedWriter) => Promise<number>,
  span: { until: CaptureTime | null; last: CaptureTime | null },
  summary: ReplaySummaryInput,
): Promise<void> {
  const output = new OutputTarget(args.output);
  const writer = new ChunkedWriter(output.stream);
  let count: number;
  try {
    count = await write(writer);
    await writer.finish();
    await output.commit();
  } catch (error) {
    await output.abandon();
    throw error;
  }
  if (args.format === "conntrack")
    process.stderr.write(
      `${args.expect ? conntrackExpectListTrailer(count) : conntrackListTrailer(count)}\n`,
    );
  if (span.until === null && span.last === null) warnOnStderr("no packets: the table is empty");
  if (args.summary) {
    const at = span.until ?? span.last;
    if (at) process.stderr.write(`table at ${isoTimeNs(at.tsSec, at.tsNsec)}\n`);
    process.stderr.write(formatReplaySummary(summary));
  }
}

/** Lines written between two waits for the output to drain (a table may hold millions of entries). */
const LINES_BETWEEN_WAITS = 1024;

/** Writes each item's text, waiting for the writer to drain every `LINES_BETWEEN_WAITS` items. */
async function writeAll<T>(
  writer: ChunkedWriter,
  items: readonly T[],
  text: (item: T) => string,
): Promise<void> {
  for (let i = 0; i < items.length; i++) {
    writer.write(text(items[i]));
    if ((i + 1) % LINES_BETWEEN_WAITS === 0) await waitFor(() => writer.pending());
  }
}

/** Writes the live expectations in creation order; returns how many. */
export async function writeExpectTable(
  result: ReplayResult,
  format: TableFormat,
  writer: ChunkedWriter,
): Promise<number> {
  const view = tableViewOf(result.engine);
  const expectations = result.engine.expectations();
  switch (format) {
    case "proc":
      await writeAll(
        writer,
        expectations,
        (expectation) => `${formatExpectProcLine(expectation, { now: view.now, hz: view.hz })}\n`,
      );
      break;
    case "conntrack":
      await writeAll(writer, expectations, (expectation) => `${formatExpectListLine(expectation, view)}\n`);
      break;
    case "csv":
      writer.write(csvRow(EXPECT_TABLE_CSV_COLUMNS));
      await writeAll(writer, expectations, (expectation) =>
        expectationCsvRow(expectationRecord(expectation, expectationTimeout(expectation, view))),
      );
      break;
    case "json": {
      const json = new JsonArrayFormatter((expectation: Expectation) =>
        expectationRecord(expectation, expectationTimeout(expectation, view)),
      );
      writer.write(json.header());
      await writeAll(writer, expectations, (expectation) => json.format(expectation));
      writer.write(json.footer());
      break;
    }
  }
  return expectations.length;
}

/** Writes the live entries in creation order; returns how many. */
export async function writeTable(
  result: ReplayResult,
  format: TableFormat,
  writer: ChunkedWriter,
): Promise<number> {
  const engine = result.engine;
  const view = tableViewOf(result.engine);
  const connections: Connection[] = [...engine.entries()].sort((a, b) => a.id - b.id);
  switch (format) {
    case "proc": {
      const options = procLineOptionsOf(engine);
      await writeAll(writer, connections, (connection) => `${formatProcLine(connection, options)}\n`);
      break;
    }
    case "conntrack":
      await writeAll(writer, connections, (connection) => `${formatConntrackListLine(connection, view)}\n`);
      break;
    case "csv":
      writer.write(csvRow(TABLE_CSV_COLUMNS));
      await writeAll(writer, connections, (connection) =>
        connectionCsvRow(connectionRecord(connection, view)),
      );
      break;
    case "json": {
      const json = new JsonArrayFormatter((connection: Connection) => connectionRecord(connection, view));
      writer.write(json.header());
      await writeAll(writer, connections, (connection) => json.format(connection));
      writer.write(json.footer());
      break;
    }
  }
  return connections.length;
}

/**
 * Writes a table merged from `--jobs` workers (`table-jobs.ts`), of connections or (`expect`)
 * expectations; returns how many entries.
 */
export async function writeMergedTable(
  merged: MergedTable,
  format: TableFormat,
  writer: ChunkedWriter,
  expect = false,
): Promise<number> {
  if (merged.lines !== null) {
    await writeAll(writer, merged.lines, (line) => `${line}\n`);
    return merged.lines.length;
  }
  const records = merged.records!;
  if (format === "csv") {
    writer.write(csvRow(expect ? EXPECT_TABLE_CSV_COLUMNS : TABLE_CSV_COLUMNS));
    await writeAll(writer, records, (record) =>
      expect ? expectationCsvRow(record as ExpectationRecord) : connectionCsvRow(record as ConnectionRecord),
    );
  } else {
    const json = new JsonArrayFormatter((record: ConnectionRecord | ExpectationRecord) => record);
    writer.write(json.header());
    await writeAll(writer, records, (record) => json.format(record));
    writer.write(json.footer());
  }
  return records.length;
}
