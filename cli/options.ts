import { availableParallelism } from "node:os";
import type { Argv } from "yargs";
import { UsageError } from "./errors.js";
import { parseShard, type ShardSelection } from "../lib/pipeline/shard.js";
import { allowReplacingOutputs } from "./output.js";

/**
 * yargs drops a lone "-" argument (yargs-parser #381), yet "-" names standard input and output. The
 * entry point swaps it for this token before parsing, and the options that take a path swap it back.
 */
export const DASH_TOKEN = "\u0000-";

export function protectDashes(argv: readonly string[]): string[] {
  return argv.map((argument) => (argument === "-" ? DASH_TOKEN : argument));
}

function restoreDash(value: string): string {
  return value === DASH_TOKEN ? "-" : value;
}

/** Options every command that reads captures shares. */
export function withCaptureInputs<T>(argv: Argv<T>) {
  return argv
    .positional("files", {
      describe:
        'capture files (pcap, pcapng, optionally gzip-compressed) or directories; "-" is standard input',
      type: "string",
      array: true,
      demandOption: true,
      coerce: (files: string[]) => files.map(restoreDash),
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

/** `-o FILE`: where a command writes; "-" or absent is standard output. */
export function withOutputOption<T>(argv: Argv<T>) {
  return withForceOption(
    argv.option("output", {
      alias: "o",
      type: "string",
      describe: "write here instead of standard output",
      coerce: (path: string | undefined) => (path === undefined ? undefined : restoreDash(path)),
    }),
  );
}

/** `--force`: an existing output file (or report) is replaced; without it, the command refuses. */
export function withForceOption<T>(argv: Argv<T>) {
  return argv.option("force", {
    type: "boolean",
    default: false,
    describe: "replace output files that exist already",
    coerce: (force: boolean) => {
      allowReplacingOutputs(force === true);
      return force;
    },
  });
}

/** Parses "250ms", "1.5s", "0"; a bare number is seconds. */
export function parseDurationNs(text: string, option: string): number {
  const match = DURATION.exec(text.trim());
  if (!match) throw new UsageError(`--${option}: "${text}" is not a duration (examples: 0, 200ms, 1s)`);
  return Math.round(Number(match[1]) * UNIT_NS[match[2] ?? "s"]);
}

/** A numeric option's value, checked: a whole number of at least `minimum` (UsageError otherwise). */
export function wholeNumberOption(name: string, value: number, minimum: number): number {
  if (!Number.isInteger(value) || value < minimum)
    throw new UsageError(`--${name}: "${value}" is not a whole number of at least ${minimum}`);
  return value;
}

/** `--jobs N`: worker threads that share the connections (lib/pipeline/jobs.ts). */
export function withJobsOption<T>(argv: Argv<T>) {
  return argv.option("jobs", {
    alias: "j",
    type: "string",
    default: "1",
    describe:
      "worker threads sharing the connections by address pair, output as one thread's " +
      '("auto": one per CPU but one, none below 4 CPUs; not with --shard, --nat-observe, --nat-vantage arrival)',
  });
}

/**
 * `--jobs auto`: the main thread reads and decodes every packet, so it needs a core of its own; below 4
 * CPUs the threads' overhead eats what they share (measured: 2 workers on 2 CPUs are no faster).
 */
export function autoJobs(cpus: number): number {
  return cpus >= 4 ? cpus - 1 : 1;
}

/** The worker count `--jobs` asks for; 1 means no workers. */
export function jobsFromArguments(args: {
  jobs?: string;
  shard?: string;
  "nat-observe"?: boolean;
  "nat-vantage"?: string;
}): number {
  const text = (args.jobs ?? "1").trim();
  const jobs = text === "auto" ? autoJobs(availableParallelism()) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(jobs) || jobs < 1 || jobs > 256)
    throw new UsageError(`--jobs: "${args.jobs}" is not a number of threads (1-256) or "auto"`);
  if (jobs === 1) return 1;
  if (args.shard !== undefined)
    throw new UsageError("--jobs and --shard: run each shard with its own --jobs");
  if (args["nat-observe"] === true)
    throw new UsageError(
      "--jobs: observed NAT pairs packets across connections' address pairs (use --jobs 1)",
    );
  if (args["nat-vantage"] === "arrival")
    throw new UsageError("--jobs: the arrival vantage's packets do not carry the connection's address pair");
  return jobs;
}

/** `--shard I/N` (events, table, report): track only shard I of N (lib/pipeline/shard.ts). */
export function withShardOption<T>(argv: Argv<T>) {
  return argv.option("shard", {
    type: "string",
    describe:
      "track only shard I of N (I/N, from 0): connections split by a hash of their two addresses, so N " +
      "runs over the same captures share the work (not with --nat-observe or --nat-vantage arrival)",
  });
}

export function shardFromArguments(args: {
  shard?: string;
  "nat-observe"?: boolean;
  "nat-vantage"?: string;
}): ShardSelection | null {
  if (args.shard === undefined) return null;
  let shard: ShardSelection;
  try {
    shard = parseShard(args.shard);
  } catch (error) {
    throw new UsageError(`--shard: ${(error as Error).message}`);
  }
  if (args["nat-observe"] === true || args["nat-vantage"] === "arrival")
    throw new UsageError(
      "--shard: shards split connections by their address pair; with --nat-observe or --nat-vantage " +
        "arrival packets do not carry it",
    );
  return shard;
}
