import type { Argv } from "yargs";
import { UsageError } from "./errors.js";

/** Options every command that reads captures shares. */
export function withCaptureInputs<T>(argv: Argv<T>) {
  return argv
    .positional("files", {
      describe:
        'capture files (pcap, pcapng, optionally gzip-compressed) or directories; "-" is standard input',
      type: "string",
      array: true,
      demandOption: true,
    })
    .option("reorder-window", {
      describe:
        "hold packets this long (e.g. 200ms, 1s) to put late ones back in timestamp order; 0 keeps each file's order",
      type: "string",
      default: "0",
    });
}

const DURATION = /^(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m)?$/;
const UNIT_NS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9 };

/** Parses "250ms", "1.5s", "0"; a bare number is seconds. */
export function parseDurationNs(text: string, option: string): number {
  const match = DURATION.exec(text.trim());
  if (!match) throw new UsageError(`--${option}: "${text}" is not a duration (examples: 0, 200ms, 1s)`);
  return Math.round(Number(match[1]) * UNIT_NS[match[2] ?? "s"]);
}
