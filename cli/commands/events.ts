import { createWriteStream } from "node:fs";
import { readFile, rename, unlink } from "node:fs/promises";
import type { Writable } from "node:stream";
import type { Argv, CommandModule } from "yargs";
import { PACKET_CLASS_NAMES } from "../../lib/decode/packet.js";
import { VERDICT_NAMES } from "../../lib/conntrack/engine.js";
import { DEFAULT_SETTINGS, SYSCTL_NAMES, parseSysctl } from "../../lib/conntrack/settings.js";
import { expandInputs } from "../../lib/pipeline/inputs.js";
import { ChunkedWriter, replayCaptures, type ReplayResult } from "../../lib/pipeline/replay.js";
import {
  EVENT_FORMATS,
  createEventFormatter,
  isoTimeNs,
  type EventFormat,
} from "../../lib/report/event-formats.js";
import { UsageError } from "../errors.js";
import { parseDurationNs, withCaptureInputs, withOutputOption } from "../options.js";

interface EventsArguments {
  files: string[];
  "reorder-window": string;
  format: EventFormat;
  timestamp: boolean;
  sysctl?: string;
  timeout?: string[];
  hz?: number;
  drain: boolean;
  summary: boolean;
  output?: string;
}

/** Options that set up the conntrack model; `events` and `table` share them. */
export function withConntrackSettings<T>(argv: Argv<T>) {
  return argv
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
    });
}

export interface SettingsArguments {
  sysctl?: string;
  timeout?: string[];
  hz?: number;
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
    if (!match) throw new UsageError(`--timeout: "${assignment}" is not NAME=SECONDS`);
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

/**
 * Where a command's streamed output goes: standard output, or a file written under a temporary
 * name and renamed once complete so an interrupted run leaves no half file.
 */
export class OutputTarget {
  readonly stream: Writable;
  private readonly temporary: string | null;

  constructor(private readonly path: string | undefined) {
    if (path === undefined || path === "-") {
      this.stream = process.stdout;
      this.temporary = null;
      // A reader that stops early (`| head`) is not an error: stop quietly.
      process.stdout.on("error", (error: NodeJS.ErrnoException) => {
        if (error.code === "EPIPE") process.exit(0);
      });
    } else {
      this.temporary = `${path}.partial-${process.pid}`;
      this.stream = createWriteStream(this.temporary);
    }
  }

  async commit(): Promise<void> {
    if (this.temporary === null) return;
    await new Promise<void>((resolve, reject) => {
      this.stream.once("error", reject);
      this.stream.end(resolve);
    });
    await rename(this.temporary, this.path!);
  }

  async abandon(): Promise<void> {
    if (this.temporary === null) return;
    this.stream.destroy();
    await unlink(this.temporary).catch(() => undefined);
  }
}

export const eventsCommand: CommandModule<object, EventsArguments> = {
  command: "events <files..>",
  describe: "Replay captures through conntrack and print its events as `conntrack -E -o timestamp` would",
  builder: (argv) =>
    withOutputOption(withConntrackSettings(withCaptureInputs(argv)))
      .option("format", { choices: EVENT_FORMATS, default: "text" as const, describe: "output format" })
      .option("timestamp", {
        type: "boolean",
        default: true,
        describe: "prefix text lines with [sec.usec] (--no-timestamp: plain `conntrack -E` lines)",
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
      .example("tcpdump -U -w - | $0 events -", "live events from a running capture"),
  handler: async (args) => {
    const files = await expandInputs(args.files);
    const settings = await settingsFromArguments(args, warnOnStderr);
    const formatter = createEventFormatter(args.format, { timestamp: args.timestamp });
    const output = new OutputTarget(args.output);
    const writer = new ChunkedWriter(output.stream);
    let result: ReplayResult;
    try {
      writer.write(formatter.header());
      result = await replayCaptures(files, {
        settings,
        reorderWindowNs: parseDurationNs(args["reorder-window"], "reorder-window"),
        drain: args.drain,
        onEvent: (event) => writer.write(formatter.format(event)),
        backpressure: () => writer.pending(),
      });
      writer.write(formatter.footer());
      await writer.finish();
      await output.commit();
    } catch (error) {
      await output.abandon();
      throw error;
    }
    reportWarnings(result);
    if (!args.drain) process.stderr.write(`pcap-conntrack: ${liveSummary(result)}\n`);
    if (args.summary) process.stderr.write(formatReplaySummary(result));
  },
};

export function reportWarnings(result: ReplayResult): void {
  for (const warning of result.warnings) {
    warnOnStderr(
      `${warning.file}: ${warning.message} (byte offset ${warning.offset}, packet ${warning.recordNumber})`,
    );
  }
}

export function liveSummary(result: ReplayResult): string {
  const live = result.engine.liveConnections;
  const at = result.last ? ` at ${isoTimeNs(result.last.tsSec, result.last.tsNsec)} (last packet)` : "";
  return `${live} connection${live === 1 ? "" : "s"} still live${at}; --drain expires them`;
}

/** Every record in exactly one class, every decoded packet in exactly one verdict. */
export function formatReplaySummary(result: ReplayResult): string {
  const lines: string[] = ["summary:"];
  const row = (label: string, value: string | number) => lines.push(`  ${label.padEnd(34)} ${value}`);
  const classes = result.accounting.classes;
  row("records", result.records);
  for (const name of PACKET_CLASS_NAMES) row(`  ${name}`, classes[name]);
  for (const [reason, count] of Object.entries(result.accounting.reasons)) row(`    ${reason}`, count);
  const stats = result.engine.stats;
  row("packets tracked (decoded)", stats.packets);
  VERDICT_NAMES.forEach((name, verdict) => row(`  ${name.toLowerCase()}`, stats.verdicts[verdict]));
  const reasons = [...stats.reasons].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  for (const [reason, count] of reasons) row(`    ${reason}`, count);
  if (stats.tcpIgnored > 0) row("  tcp accepted without update", stats.tcpIgnored);
  if (stats.timeWentBack > 0) row("  earlier than the clock", stats.timeWentBack);
  row("connections created", stats.connectionsCreated);
  row("  expired", stats.connectionsExpired);
  row("  killed", stats.connectionsKilled);
  row("  still live", result.engine.liveConnections);
  row("  most live at once", stats.maxLive);
  row("events", `NEW ${stats.events.NEW}, UPDATE ${stats.events.UPDATE}, DESTROY ${stats.events.DESTROY}`);
  return `${lines.join("\n")}\n`;
}
