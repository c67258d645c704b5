import type { CommandModule } from "yargs";
import { linkTypeName } from "../../lib/capture/linktypes.js";
import {
  CAP_SNAPLEN,
  LiveCaptureError,
  LiveCaptureSource,
  listCaptureDevices,
} from "../../lib/capture/live.js";
import { PcapWriter, PcapngWriter } from "../../lib/capture/writer.js";
import { runLive, type LiveResult } from "../../lib/pipeline/live.js";
import { ChunkedWriter } from "../../lib/pipeline/replay.js";
import type { EventFormat } from "../../lib/report/event-formats.js";
import { UsageError } from "../errors.js";
import { OutputTarget, writeOutput } from "../output.js";
import { DASH_TOKEN, parseDurationNs, withOutputOption } from "../options.js";
import {
  eventStreamFormat,
  formatReplaySummary,
  helperOptionsFromArguments,
  liveSummary,
  settingsFromArguments,
  warnOnStderr,
  withConntrackSettings,
  withEventFormatOptions,
  type SettingsArguments,
} from "./events.js";

interface LiveArguments extends SettingsArguments {
  filter?: string[];
  interface?: string;
  "list-interfaces": boolean;
  format: EventFormat;
  timestamp: boolean;
  expect: boolean;
  output?: string;
  write?: string;
  duration?: string;
  count?: number;
  snaplen: number;
  "buffer-size": number;
  drain: boolean;
  summary: boolean;
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** The end-of-run line: what the capture socket saw, what was lost and where. */
export function captureSummary(device: string, result: LiveResult): string {
  const capture = result.capture;
  const kernel =
    capture.kernel === null
      ? "kernel's counters unavailable (they are read with python3)"
      : `${plural(capture.kernel.received, "packet")} received by the capture socket, ` +
        `${capture.kernel.dropped} dropped by the kernel (buffer full)`;
  const lost = [`${capture.queueDropped} by pcap-conntrack (queue full)`];
  if (capture.interfaceDropped !== null)
    lost.push(`${capture.interfaceDropped} by the interface (rx_dropped)`);
  const why = {
    count: "--count reached",
    duration: "--duration reached",
    signal: "signal",
    stopped: "stopped",
  };
  return (
    `capture on ${device} ended (${why[result.reason]}): libpcap: ${kernel}; ` +
    `${plural(capture.received, "packet")} delivered, dropped ${lost.join(", ")}; ` +
    `${plural(result.replay.records, "packet")} tracked, ${plural(result.replay.events, "event")}`
  );
}

export const liveCommand: CommandModule<object, LiveArguments> = {
  command: "live [filter..]",
  describe: "Capture on an interface and print conntrack's events as they happen (needs libpcap via `cap`)",
  builder: (argv) =>
    withEventFormatOptions(withOutputOption(withConntrackSettings(argv)))
      .positional("filter", {
        type: "string",
        array: true,
        describe: "BPF filter expression, as tcpdump takes it (pcap-filter(7)), e.g. tcp port 80",
      })
      .option("interface", { alias: "i", type: "string", describe: "interface to capture on (any: all)" })
      .option("list-interfaces", {
        alias: "D",
        type: "boolean",
        default: false,
        describe: "list the interfaces libpcap can capture on, and exit",
      })
      .option("write", {
        alias: "w",
        type: "string",
        describe:
          "also save the captured packets: pcapng if FILE ends in .pcapng, else nanosecond pcap; " +
          "`events FILE` (with the same options) replays them into the same events",
        coerce: (path: string | undefined) => (path === DASH_TOKEN ? "-" : path),
      })
      .option("duration", { type: "string", describe: "stop after this long (e.g. 30s, 5m)" })
      .option("count", { alias: "c", type: "number", describe: "stop after this many packets" })
      .option("snaplen", {
        alias: "s",
        type: "number",
        default: CAP_SNAPLEN,
        describe: `bytes kept of each packet (at most ${CAP_SNAPLEN}, libpcap's limit in cap)`,
      })
      .option("buffer-size", {
        alias: "B",
        type: "number",
        default: 4096,
        describe: "libpcap's capture buffer, in KiB (as tcpdump -B)",
      })
      .option("drain", {
        type: "boolean",
        default: false,
        describe: "at the stop, let every remaining entry expire (DESTROY at its expiry time)",
      })
      .option("summary", {
        type: "boolean",
        default: false,
        describe: "account for every packet on standard error at the stop, as `events --summary`",
      })
      .example("$0 live -i eth0", "events of everything crossing eth0")
      .example("$0 live -i eth0 --sysctl sysctl.txt tcp port 80", "web traffic under the router's settings")
      .example("$0 live -i eth0 --write eth0.pcap --duration 1m", "one minute, saved for `events eth0.pcap`"),
  handler: async (args) => {
    if (args["list-interfaces"]) {
      const devices = wrapCaptureErrors(() => listCaptureDevices());
      const lines = devices.map(
        (device) => `${device.name}${device.description ? ` (${device.description})` : ""}\n`,
      );
      await writeOutput(args.output, lines.join(""));
      return;
    }
    if (args.interface === undefined || args.interface === "")
      throw new UsageError(
        "live: name the interface to capture on with -i IFACE (--list-interfaces lists them)",
      );
    const durationNs = args.duration === undefined ? undefined : parseDurationNs(args.duration, "duration");
    if (durationNs !== undefined && durationNs <= 0)
      throw new UsageError(`--duration: "${args.duration}" is not a positive duration`);
    if (args.count !== undefined && !(Number.isInteger(args.count) && args.count > 0))
      throw new UsageError(`--count: "${args.count}" is not a positive whole number of packets`);
    if (!(Number.isInteger(args.snaplen) && args.snaplen >= 1 && args.snaplen <= CAP_SNAPLEN))
      throw new UsageError(`--snaplen: "${args.snaplen}" is not within 1..${CAP_SNAPLEN}`);
    const bufferKiB = args["buffer-size"];
    if (!(Number.isInteger(bufferKiB) && bufferKiB >= 1 && bufferKiB <= 2 * 1024 * 1024 - 1))
      throw new UsageError(`--buffer-size: "${bufferKiB}" is not a size in KiB below 2 GiB`);
    if (args.write === "-" && (args.output === undefined || args.output === "-"))
      throw new UsageError("--write: standard output already carries the events (use -o FILE)");
    const settings = await settingsFromArguments(args, warnOnStderr);
    const helperOptions = helperOptionsFromArguments(args);
    const filter = (args.filter ?? []).join(" ");

    // The outputs first: one that may not be replaced fails before anything is captured.
    const output = new OutputTarget(args.output);
    let saved: OutputTarget | null = null;
    let source: LiveCaptureSource;
    try {
      saved = args.write === undefined ? null : new OutputTarget(args.write);
      source = wrapCaptureErrors(() =>
        LiveCaptureSource.open({
          device: args.interface!,
          filter,
          snaplen: args.snaplen,
          bufferSize: bufferKiB * 1024,
        }),
      );
    } catch (error) {
      await output.abandon();
      await saved?.abandon();
      throw error;
    }
    process.stderr.write(
      `pcap-conntrack: listening on ${source.name}, link-type ${linkTypeName(source.linkType)} ` +
        `(${source.linkType}), snapshot length ${source.snaplen} bytes${filter ? `, filter "${filter}"` : ""}\n`,
    );

    const writer = new ChunkedWriter(output.stream);
    const stream = eventStreamFormat(args.format, args.timestamp, {
      events: !args.expect,
      expectations: args.expect,
    });
    const { events, expectations } = stream;
    const packetWriter =
      saved === null
        ? null
        : /\.pcapng$/i.test(args.write!)
          ? new PcapngWriter(saved.stream, {
              endStream: false,
              userApplication: "pcap-conntrack live",
              interfaces: [
                {
                  linkType: source.linkType,
                  snaplen: source.snaplen,
                  name: source.name,
                  tsResolution: { base: 10, exponent: 9 },
                },
              ],
            })
          : new PcapWriter(saved.stream, {
              endStream: false,
              nanosecond: true,
              linkType: source.linkType,
              snaplen: source.snaplen,
            });

    // The first signal stops the capture cleanly; a second one (a stop taking too long) ends at once.
    const stopping = new AbortController();
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping.signal.aborted) process.exit(signal === "SIGINT" ? 130 : 143);
      stopping.abort();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    let written = 0;
    let flushed = 0;
    let result: LiveResult;
    try {
      writer.write((events ?? expectations!).header());
      result = await runLive(source, {
        settings,
        ...helperOptions,
        count: args.count,
        durationNs,
        signal: stopping.signal,
        writer: packetWriter,
        drain: args.drain,
        onEvent:
          events === null
            ? undefined
            : (event) => {
                written++;
                stream.writeEvent(writer, event);
              },
        onExpectEvent:
          expectations === null
            ? undefined
            : (event) => {
                written++;
                writer.write(expectations.format(event));
              },
        // Events reach the output as they happen, not when a chunk fills.
        onIdle: () => {
          if (written === flushed) return null;
          flushed = written;
          return writer.finish();
        },
        backpressure: () => writer.pending(),
      });
      writer.write((events ?? expectations!).footer());
      await writer.finish();
      await output.commit();
      if (packetWriter !== null) {
        if (packetWriter instanceof PcapngWriter) {
          const capture = result.capture;
          void packetWriter.writeInterfaceStatistics(0, result.stopped.tsSec, result.stopped.tsNsec, {
            received: capture.kernel?.received ?? capture.received,
            osDropped: capture.kernel?.dropped,
            interfaceDropped: capture.interfaceDropped ?? undefined,
            delivered: capture.delivered,
          });
        }
        await packetWriter.close();
        await saved!.commit();
      }
    } catch (error) {
      await source.close();
      await output.abandon();
      await saved?.abandon();
      throw error;
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
    process.stderr.write(`pcap-conntrack: ${captureSummary(source.name, result)}\n`);
    if (!args.drain) process.stderr.write(`pcap-conntrack: ${liveSummary(result.replay)}\n`);
    if (args.summary) process.stderr.write(formatReplaySummary(result.replay));
  },
};

/** Capture failures are the user's to fix (exit code 2), with the message that says how. */
function wrapCaptureErrors<T>(open: () => T): T {
  try {
    return open();
  } catch (error) {
    if (error instanceof LiveCaptureError) throw new UsageError(error.message);
    throw error;
  }
}
