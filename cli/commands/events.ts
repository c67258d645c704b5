import { readFile } from "node:fs/promises";
import type { Argv, CommandModule } from "yargs";
import { PACKET_CLASS_NAMES } from "../../lib/decode/packet.js";
import {
  HELPER_NAMES,
  VERDICT_NAMES,
  type ConntrackEvent,
  type HelperName,
} from "../../lib/conntrack/engine.js";
import { DEFAULT_SETTINGS, SYSCTL_NAMES, parseSysctl } from "../../lib/conntrack/settings.js";
import { expandInputs } from "../../lib/pipeline/inputs.js";
import { replayCapturesInJobs, type EngineLike, type JobsReplayResult } from "../../lib/pipeline/jobs.js";
import {
  ChunkedWriter,
  DEFAULT_HELPER_PORTS,
  helperPortsAdding,
  replayCaptures,
  type ReplayOptions,
  type ReplayResult,
} from "../../lib/pipeline/replay.js";
import {
  EVENT_FORMATS,
  createEventFormatter,
  createExpectEventFormatter,
  isoTimeNs,
  type EventFormat,
} from "../../lib/report/event-formats.js";
import { ConntrackEventTextEncoder, MAX_EVENT_LINE_BYTES } from "../../lib/report/conntrack-text.js";
import { EventCsvEncoder } from "../../lib/report/event-csv.js";
import { EventNdjsonEncoder } from "../../lib/report/event-json.js";
import { UsageError } from "../errors.js";
import {
  natOptionsFromArguments,
  observedNatFromArguments,
  withNatOptions,
  withObservedNatOptions,
  type NatArguments,
} from "../nat-options.js";
import { OutputTarget, refuseExistingOutputs } from "../output.js";
import {
  DASH_TOKEN,
  jobsFromArguments,
  parseDurationNs,
  shardFromArguments,
  withCaptureInputs,
  withJobsOption,
  withOutputOption,
  withShardOption,
} from "../options.js";
import { startCommandProgress, withProgressOption } from "../progress.js";

interface EventsArguments extends SettingsArguments {
  files: string[];
  jobs?: string;
  "reorder-window": string;
  format: EventFormat;
  timestamp: boolean;
  expect: boolean;
  "expect-output"?: string;
  drain: boolean;
  summary: boolean;
  output?: string;
  progress?: boolean;
}

/** Options that set up the conntrack model (NAT included); `events`, `table` and `report` share them. */
/** `--format`, `--timestamp`, `--expect`: how `events` and `live` print what the engine says. */
export function withEventFormatOptions<T>(argv: Argv<T>) {
  return argv
    .option("format", { choices: EVENT_FORMATS, default: "text" as const, describe: "output format" })
    .option("timestamp", {
      type: "boolean",
      default: true,
      describe: "prefix text lines with [sec.usec] (--no-timestamp: plain `conntrack -E` lines)",
    })
    .option("expect", {
      type: "boolean",
      default: false,
      describe:
        "print expectation events instead (as `conntrack -E expect -o timestamp`: NEW when a helper " +
        "announces a connection, DESTROY when it is used or expires)",
    });
}

/**
 * The formatters of an event stream (null where that stream is not wanted) and the writer of one
 * connection event: text lines go as bytes straight into the output chunks, the same bytes as the text
 * formatter's strings without a string per event (an events run writes millions of lines); CSV rows
 * likewise, and NDJSON lines.
 */
export function eventStreamFormat(
  format: EventFormat,
  timestamp: boolean,
  wanted: { events: boolean; expectations: boolean },
) {
  const formatOptions = { timestamp };
  const events = wanted.events ? createEventFormatter(format, formatOptions) : null;
  const textEncoder =
    events !== null && format === "text" ? new ConntrackEventTextEncoder(formatOptions) : null;
  const csvEncoder = events !== null && format === "csv" ? new EventCsvEncoder() : null;
  const ndjsonEncoder = events !== null && format === "ndjson" ? new EventNdjsonEncoder() : null;
  return {
    events,
    expectations: wanted.expectations ? createExpectEventFormatter(format, formatOptions) : null,
    writeEvent(writer: ChunkedWriter, event: ConntrackEvent): void {
      if (textEncoder !== null) writer.writeEncoded(textEncoder, event, MAX_EVENT_LINE_BYTES);
      else if (csvEncoder !== null) writer.writeEncoded(csvEncoder, event, csvEncoder.maxBytes(event));
      else if (ndjsonEncoder !== null)
        writer.writeEncoded(ndjsonEncoder, event, ndjsonEncoder.maxBytes(event));
      else writer.write(events!.format(event));
    },
  };
}

export function withConntrackSettings<T>(argv: Argv<T>) {
  return withNatOptions(argv)
    .option("sysctl", {
      type: "string",
      describe: "read conntrack settings from `sysctl -a` output (net.netfilter.nf_conntrack_* lines)",
    })
    .option("timeout", {
      type: "string",
      array: true,
      nargs: 1,
      describe:
        "set one setting, NAME=SECONDS, by its sysctl name with or without net.netfilter. " +
        "(e.g. nf_conntrack_tcp_timeout_established=3600); repeatable, wins over --sysctl",
    })
    .option("hz", {
      type: "number",
      describe: `kernel tick rate (CONFIG_HZ) printed timeouts are counted in (default ${DEFAULT_SETTINGS.hz})`,
    })
    .option("helper", {
      type: "string",
      array: true,
      nargs: 1,
      describe:
        "attach a helper on one more port, NAME=PORT[,PORT…] (as a `CT --helper` rule would; defaults " +
        `${HELPER_NAMES.map((name) => `${name} on ${DEFAULT_HELPER_PORTS[name].join(",")}`).join(", ")}` +
        "); repeatable, e.g. --helper ftp=2121 --helper tftp=1069",
    })
    .option("helpers", {
      type: "boolean",
      default: true,
      describe: "attach helpers at all (--no-helpers: no helper, no expectations, no RELATED connections)",
    })
    .option("ftp-loose", {
      type: "boolean",
      default: false,
      describe:
        "as nf_conntrack_ftp loose=1: expect data connections to an address other than the announcer's",
    });
}

export interface SettingsArguments extends NatArguments {
  sysctl?: string;
  timeout?: string[];
  hz?: number;
  helper?: string[];
  helpers?: boolean;
  "ftp-loose"?: boolean;
}

/**
 * The helper and NAT options of `withConntrackSettings`, as the engine takes them (`nat` undefined
 * without NAT options); bad values are a UsageError.
 */
export function helperOptionsFromArguments(
  args: SettingsArguments,
): Pick<ReplayOptions, "helpers" | "helperPorts" | "ftpLoose" | "nat"> {
  const added: Partial<Record<HelperName, number[]>> = {};
  for (const assignment of args.helper ?? []) {
    const match = /^\s*([\w-]+)\s*=\s*(\S.*?)\s*$/.exec(assignment);
    if (!match) throw new UsageError(`--helper: "${assignment}" is not NAME=PORT (e.g. ftp=2121)`);
    const name = match[1].toLowerCase();
    if (!(HELPER_NAMES as readonly string[]).includes(name))
      throw new UsageError(`--helper: unknown helper "${match[1]}" (known: ${HELPER_NAMES.join(", ")})`);
    const ports = (added[name as HelperName] ??= []);
    for (const text of match[2].split(",")) {
      const port = /^\s*\d{1,5}\s*$/.test(text) ? Number(text) : NaN;
      if (!(port >= 1 && port <= 0xffff))
        throw new UsageError(`--helper: "${text.trim()}" in "${assignment}" is not a port (1-65535)`);
      ports.push(port);
    }
  }
  const helpers = args.helpers !== false;
  if (!helpers && Object.keys(added).length > 0)
    throw new UsageError("--helper and --no-helpers contradict each other");
  const options = { helpers, helperPorts: helperPortsAdding(added), ftpLoose: args["ftp-loose"] === true };
  const nat = natOptionsFromArguments(args);
  return nat === undefined ? options : { ...options, nat };
}

/**
 * The engine settings the options ask for, keyed by sysctl name (plus `hz`). Unknown names in the
 * sysctl file are warned about on `warn`; anything unusable is a UsageError (exit code 2).
 */
export async function settingsFromArguments(
  args: SettingsArguments,
  warn: (message: string) => void,
): Promise<Record<string, number>> {
  const settings: Record<string, number> = {};
  if (args.sysctl !== undefined) {
    const parsed = parseSysctl(await readFile(args.sysctl, "utf8"));
    if (parsed.invalid.length > 0) {
      const first = parsed.invalid[0];
      throw new UsageError(
        `${args.sysctl}: line ${first.line}: value is not a non-negative integer: ${first.text.trim()}`,
      );
    }
    for (const name of parsed.unknown) warn(`${args.sysctl}: unknown conntrack setting ${name} (ignored)`);
    Object.assign(settings, parsed.overrides);
  }
  for (const assignment of args.timeout ?? []) {
    const match = /^\s*([\w.]+)\s*=\s*(\d+)\s*$/.exec(assignment);
    if (!match || !Number.isSafeInteger(Number(match[2])))
      throw new UsageError(`--timeout: "${assignment}" is not NAME=SECONDS`);
    const name = sysctlName(match[1]);
    if (name === null) {
      throw new UsageError(
        `--timeout: unknown setting "${match[1]}" (known: ${Object.keys(SYSCTL_NAMES)
          .map((key) => key.slice("net.netfilter.".length))
          .join(", ")})`,
      );
    }
    settings[SYSCTL_NAMES[name]] = Number(match[2]);
  }
  if (args.hz !== undefined) {
    if (!Number.isInteger(args.hz) || args.hz < 1 || args.hz > 10000)
      throw new UsageError(`--hz: "${args.hz}" is not a tick rate (the kernel uses 100, 250, 300 or 1000)`);
    settings.hz = args.hz;
  }
  return settings;
}

/** The full sysctl name for NAME, which may omit "net.netfilter." or "net.netfilter.nf_conntrack_". */
export function sysctlName(name: string): string | null {
  for (const candidate of [name, `net.netfilter.${name}`, `net.netfilter.nf_conntrack_${name}`])
    if (SYSCTL_NAMES[candidate] !== undefined) return candidate;
  return null;
}

export function warnOnStderr(message: string): void {
  process.stderr.write(`pcap-conntrack: warning: ${message}\n`);
}

export const eventsCommand: CommandModule<object, EventsArguments> = {
  command: "events <files..>",
  describe: "Replay captures through conntrack and print its events as `conntrack -E -o timestamp` would",
  builder: (argv) =>
    withEventFormatOptions(
      withObservedNatOptions(
        withJobsOption(
          withShardOption(
            withProgressOption(withOutputOption(withConntrackSettings(withCaptureInputs(argv)))),
          ),
        ),
      ),
    )
      .option("expect-output", {
        type: "string",
        describe:
          "also write expectation events (same --format) to this file while connection events go to the " +
          "main output: one run gives both listeners' streams",
        coerce: (path: string | undefined) => (path === DASH_TOKEN ? "-" : path),
      })
      .option("drain", {
        type: "boolean",
        default: false,
        describe: "after the input, let every remaining entry expire (DESTROY at its expiry time)",
      })
      .option("summary", {
        type: "boolean",
        default: false,
        describe: "account for every packet on standard error: record classes and conntrack verdicts",
      })
      .example("$0 events capture.pcap --sysctl sysctl.txt", "events under the router's settings")
      .example("tcpdump -U -w - | $0 events -", "live events from a running capture")
      .example(
        "$0 events ftp.pcap --expect-output expect.txt",
        "connection and expectation events in one run",
      )
      .example("$0 events ftp.pcap --helper ftp=2121 --expect", "expectations of an FTP server on port 2121")
      .example(
        "$0 events inside.pcap --masquerade out0=198.51.100.32",
        "reply tuples as a router masquerading behind 198.51.100.32 records them",
      ),
  handler: async (args) => {
    const expectPath = args["expect-output"];
    if (args.expect && expectPath !== undefined)
      throw new UsageError(
        "--expect-output: with --expect the expectation events go to the main output (-o)",
      );
    if (expectPath === "-" && (args.output === undefined || args.output === "-"))
      throw new UsageError(
        "--expect-output: standard output already carries the connection events (use -o FILE)",
      );
    const jobs = jobsFromArguments(args);
    if (jobs > 1 && args.format === "json")
      throw new UsageError("--jobs: a JSON array is not written line by line; use --format ndjson");
    const files = await expandInputs(args.files);
    const settings = await settingsFromArguments(args, warnOnStderr);
    const helperOptions = helperOptionsFromArguments(args);
    const reorderWindowNs = parseDurationNs(args["reorder-window"], "reorder-window");
    refuseExistingOutputs([args.output, expectPath]);
    const output = new OutputTarget(args.output);
    const writer = new ChunkedWriter(output.stream);
    const expectOutput = expectPath === undefined ? null : new OutputTarget(expectPath);
    const expectWriter = expectOutput === null ? null : new ChunkedWriter(expectOutput.stream);
    const stream = eventStreamFormat(args.format, args.timestamp, {
      events: !args.expect,
      expectations: args.expect || expectWriter !== null,
    });
    const { events, expectations } = stream;
    const expectTarget = args.expect ? writer : expectWriter;
    const progress = startCommandProgress(files, {
      requested: args.progress,
      outputWhileReading: args.output === undefined || args.output === "-" || expectPath === "-",
    });
    let result: ReplayResult | JobsReplayResult;
    try {
      writer.write((events ?? expectations!).header());
      if (expectWriter !== null) expectWriter.write(expectations!.header());
      const common = {
        settings,
        ...helperOptions,
        reorderWindowNs,
        drain: args.drain,
        backpressure: () => writer.pending() ?? expectWriter?.pending() ?? null,
        onOpened: progress.onOpened,
      };
      result =
        jobs > 1 && args.format !== "json" // a JSON array with --jobs is refused above
          ? await replayCapturesInJobs(files, {
              ...common,
              jobs,
              format: {
                format: args.format,
                timestamp: args.timestamp,
                events: events !== null,
                expectations: expectations !== null,
              },
              writeEvents: events === null ? undefined : (bytes) => writer.writeBytes(bytes),
              writeExpectations:
                expectTarget === null ? undefined : (bytes) => expectTarget.writeBytes(bytes),
            })
          : await replayCaptures(files, {
              ...common,
              observedNat: observedNatFromArguments(args),
              shard: shardFromArguments(args),
              onEvent: events === null ? undefined : (event) => stream.writeEvent(writer, event),
              onExpectEvent:
                expectations === null || expectTarget === null
                  ? undefined
                  : (event) => expectTarget.write(expectations.format(event)),
            });
      progress.finish();
      writer.write((events ?? expectations!).footer());
      await writer.finish();
      if (expectWriter !== null) {
        expectWriter.write(expectations!.footer());
        await expectWriter.finish();
      }
      await output.commit();
      await expectOutput?.commit();
    } catch (error) {
      progress.finish();
      await output.abandon();
      await expectOutput?.abandon();
      throw error;
    }
    reportWarnings(result);
    if (!args.drain) process.stderr.write(`pcap-conntrack: ${liveSummary(result)}\n`);
    if (args.summary) process.stderr.write(formatReplaySummary(result));
  },
};

/** A replay's result, from one engine or from `--jobs` workers. */
type AnyReplayResult = Omit<ReplayResult, "engine"> & { engine: EngineLike };

export function reportWarnings(result: { warnings: AnyReplayResult["warnings"] }): void {
  for (const warning of result.warnings) {
    warnOnStderr(
      `${warning.file}: ${warning.message} (byte offset ${warning.offset}, packet ${warning.recordNumber})`,
    );
  }
}

export function liveSummary(result: AnyReplayResult): string {
  const live = result.engine.liveConnections;
  const expecting = result.engine.liveExpectations;
  const at = result.last ? ` at ${isoTimeNs(result.last.tsSec, result.last.tsNsec)} (last packet)` : "";
  const alsoExpected = expecting > 0 ? ` and ${expecting} expectation${expecting === 1 ? "" : "s"}` : "";
  return `${live} connection${live === 1 ? "" : "s"}${alsoExpected} still live${at}; --drain expires them`;
}

/** What `formatReplaySummary` reads: a replay's result, or one merged from `--jobs` workers' results. */
export type ReplaySummaryInput = Pick<
  AnyReplayResult,
  "records" | "order" | "observedNat" | "shard" | "expectEvents" | "engine"
> & {
  accounting: Pick<
    AnyReplayResult["accounting"],
    "classes" | "reasons" | "duplicateSightings" | "otherShards"
  >;
  jobs?: number;
};

/** Every record in exactly one class, every decoded packet in exactly one verdict. */
export function formatReplaySummary(result: ReplaySummaryInput): string {
  const lines: string[] = ["summary:"];
  const row = (label: string, value: string | number) => lines.push(`  ${label.padEnd(34)} ${value}`);
  const classes = result.accounting.classes;
  row("records", result.records);
  for (const name of PACKET_CLASS_NAMES) row(`  ${name}`, classes[name]);
  for (const [reason, count] of Object.entries(result.accounting.reasons)) row(`    ${reason}`, count);
  const order = result.order;
  if (order !== undefined) {
    row("records out of time order (as read)", order.outOfOrder);
    if (order.reorderWindowNs > 0) {
      row("  put back in order (--reorder-window)", order.reordered);
      row("  later than the window (left as read)", order.lateBeyondWindow);
      row("  released early (window memory full)", order.releasedEarly);
    }
  }
  const stats = result.engine.stats;
  if (result.observedNat) {
    const observed = result.observedNat;
    row("observed NAT: packets seen twice", observed.pairs);
    row("  translated", observed.translatedPairs);
    row("  second sightings (not tracked)", result.accounting.duplicateSightings);
    if (observed.releasedEarly > 0) row("  left the window early (ring full)", observed.releasedEarly);
  }
  if (result.shard)
    row(
      `other shards' packets (this is ${result.shard.index}/${result.shard.count})`,
      result.accounting.otherShards,
    );
  row("packets tracked (decoded)", stats.packets);
  VERDICT_NAMES.forEach((name, verdict) => row(`  ${name.toLowerCase()}`, stats.verdicts[verdict]));
  const reasons = [...stats.reasons].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  for (const [reason, count] of reasons) row(`    ${reason}`, count);
  if (stats.tcpIgnored > 0) row("  tcp accepted without update", stats.tcpIgnored);
  if (stats.timeWentBack > 0) row("  earlier than the clock", stats.timeWentBack);
  row("connections created", stats.connectionsCreated);
  row("  expired", stats.connectionsExpired);
  row("  killed", stats.connectionsKilled);
  if (stats.earlyDrops > 0 || stats.gcEarlyDrops > 0 || stats.tableFullDrops > 0) {
    row("    evicted from a full table (early_drop)", stats.earlyDrops);
    row("    evicted by the GC's early-drop pass", stats.gcEarlyDrops);
    row("  first packets dropped: table full", stats.tableFullDrops);
  }
  row("  still live", result.engine.liveConnections);
  const jobs = result.jobs ?? 1;
  row(jobs > 1 ? `  most live at once (sum over ${jobs} jobs)` : "  most live at once", stats.maxLive);
  row("events", `NEW ${stats.events.NEW}, UPDATE ${stats.events.UPDATE}, DESTROY ${stats.events.DESTROY}`);
  const expected = stats.expectations;
  row("expectations created", expected.created);
  row("  used (RELATED connections)", expected.used);
  row("  expired", expected.expired);
  row("  evicted (max_expected)", expected.evicted);
  row("  replaced", expected.replaced);
  row("  removed with their master", expected.masterDestroyed);
  row("  still live", result.engine.liveExpectations);
  row("  refused", expected.refused);
  row("expectation events", `NEW ${result.expectEvents.NEW}, DESTROY ${result.expectEvents.DESTROY}`);
  const helpers = stats.helpers;
  row("helper packets", helpers.packets);
  row("  commands parsed", helpers.commands);
  row("  out of sequence (not read)", helpers.outOfSequence);
  row("  split commands (dropped)", helpers.partialDrops);
  row("  malformed commands (dropped)", helpers.malformedDrops);
  row("  address differs (no expectation)", helpers.addressMismatch);
  row("  expectation refused (dropped)", helpers.refusedDrops);
  row("  payload not captured (snaplen)", helpers.payloadNotCaptured);
  row("  rewritten by the NAT helper", helpers.natRewrites);
  row("    of which resized (sequence shifted)", helpers.natResized);
  const nat = stats.nat;
  if (nat.translated > 0 || nat.dropped > 0) {
    row("NAT: connections translated", nat.translated);
    row("  following their master (RELATED)", nat.followedMaster);
    row("  observed (both sides captured)", nat.observed);
    row("  port our own choice (clash)", nat.ownChoice);
    row("  first packets the device would drop", nat.dropped);
    const notes = [...nat.notes].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    for (const [note, count] of notes) row(`    ${note}`, count);
  }
  return `${lines.join("\n")}\n`;
}
