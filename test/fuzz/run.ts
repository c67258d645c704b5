/**
 * `npm run fuzz`: runs every fuzz target (or those named) for a time or a count, each in a worker
 * thread so that a hang can be stopped and an input that exhausts memory is caught, and prints the
 * executions per target. A finding's input is written to test/fuzz/findings/ and the exit code is 1.
 *
 *   npm run fuzz -- --seconds 60                 every target for 60 s
 *   npm run fuzz -- --target capture --count 5000 --seed 7
 *   npm run fuzz -- --target decode --replay test/fuzz/findings/decode-crash-0123456789ab.bin
 */
import { readFileSync } from "node:fs";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { fuzzTarget, makeInput, runInput, saveFinding, type Finding } from "./fuzz.js";
import { TARGETS, targetNamed } from "./targets.js";

/** No progress for this long: the input at hand hangs. */
const HANG_MS = 20_000;
/** Heap each target's worker may use; beyond it the input at hand is a memory finding. */
const WORKER_HEAP_MB = 1024;

interface WorkerInput {
  target: string;
  seed: number;
  milliseconds?: number;
  count?: number;
  progress: SharedArrayBuffer;
}

interface WorkerOutput {
  executions: number;
  milliseconds: number;
  finding: Omit<Finding, "input"> & { input: Uint8Array };
}

async function workerMain(): Promise<void> {
  const data = workerData as WorkerInput;
  const progress = new Int32Array(data.progress);
  const result = await fuzzTarget(targetNamed(data.target), {
    seed: data.seed,
    count: data.count,
    milliseconds: data.milliseconds,
    onIteration: (i) => Atomics.store(progress, 0, i + 1),
  });
  parentPort!.postMessage({
    executions: result.executions,
    milliseconds: result.milliseconds,
    finding: result.finding,
  });
}

interface Options {
  targets: string[];
  seconds: number | undefined;
  count: number | undefined;
  seed: number;
  replay: string | null;
}

function parseArguments(argv: string[]): Options {
  const options: Options = { targets: [], seconds: undefined, count: undefined, seed: 0, replay: null };
  let seedGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--target") options.targets.push(...value().split(","));
    else if (arg === "--seconds") options.seconds = Number(value());
    else if (arg === "--count") options.count = Number(value());
    else if (arg === "--seed") {
      options.seed = Number(value()) >>> 0;
      seedGiven = true;
    } else if (arg === "--replay") options.replay = value();
    else if (arg === "--help" || arg === "-h") {
      process.stdout.write(
        "npm run fuzz -- [--target NAME[,NAME…]] [--seconds N | --count N] [--seed N] [--replay FILE]\n" +
          `targets: ${TARGETS.map((t) => `${t.name} (${t.description})`).join("\n         ")}\n`,
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}`);
  }
  if (!seedGiven) options.seed = (Date.now() ^ (process.pid << 16)) >>> 0;
  if (options.seconds === undefined && options.count === undefined) options.seconds = 10;
  for (const n of [options.seconds, options.count]) {
    if (n !== undefined && !(n > 0)) throw new Error("--seconds and --count take a positive number");
  }
  if (options.targets.length === 0) options.targets = TARGETS.map((t) => t.name);
  for (const name of options.targets) targetNamed(name);
  return options;
}

function runInWorker(
  name: string,
  options: Options,
): Promise<{ executions: number; milliseconds: number; finding: Finding | null }> {
  const progress = new SharedArrayBuffer(4);
  const counter = new Int32Array(progress);
  const input: WorkerInput = {
    target: name,
    seed: options.seed,
    milliseconds: options.seconds === undefined ? undefined : options.seconds * 1000,
    count: options.count,
    progress,
  };
  const worker = new Worker(new URL(import.meta.url), {
    workerData: input,
    resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
  });
  const started = Date.now();
  // The input at hand, made again from its iteration number: the worker cannot hand it over.
  const current = (kind: Finding["kind"], message: string): Finding => {
    const iteration = Math.max(0, Atomics.load(counter, 0) - 1);
    return {
      target: name,
      seed: options.seed,
      iteration,
      kind,
      message,
      input: makeInput(targetNamed(name), options.seed, iteration),
    };
  };
  return new Promise((resolve) => {
    let settled = false;
    let lastSeen = -1;
    let lastChange = Date.now();
    const finish = (result: { executions: number; milliseconds: number; finding: Finding | null }): void => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      resolve(result);
    };
    const watchdog = setInterval(() => {
      const now = Atomics.load(counter, 0);
      if (now !== lastSeen) {
        lastSeen = now;
        lastChange = Date.now();
        return;
      }
      if (Date.now() - lastChange > HANG_MS) {
        const finding = current("hang", `no progress for ${HANG_MS / 1000} s on one input`);
        void worker.terminate();
        finish({ executions: Math.max(0, now - 1), milliseconds: Date.now() - started, finding });
      }
    }, 1000);
    worker.on("message", (message: WorkerOutput) => {
      const finding =
        message.finding === null ? null : { ...message.finding, input: Buffer.from(message.finding.input) };
      finish({ executions: message.executions, milliseconds: message.milliseconds, finding });
    });
    worker.on("error", (error: Error & { code?: string }) => {
      const kind = error.code === "ERR_WORKER_OUT_OF_MEMORY" ? "memory" : "crash";
      const finding = current(kind, error.stack ?? String(error));
      finish({
        executions: Math.max(0, Atomics.load(counter, 0) - 1),
        milliseconds: Date.now() - started,
        finding,
      });
    });
    worker.on("exit", (code) => {
      if (!settled) {
        finish({
          executions: Atomics.load(counter, 0),
          milliseconds: Date.now() - started,
          finding: current("crash", `worker exited with code ${code}`),
        });
      }
    });
  });
}

async function main(): Promise<void> {
  const options = parseArguments(process.argv.slice(2));
  if (options.replay !== null) {
    if (options.targets.length !== 1) throw new Error("--replay needs exactly one --target");
    const finding = await runInput(targetNamed(options.targets[0]), readFileSync(options.replay));
    if (finding === null) {
      process.stdout.write(`${options.replay}: no finding\n`);
      return;
    }
    process.stdout.write(`${options.replay}: ${finding.kind}\n${finding.message}\n`);
    process.exitCode = 1;
    return;
  }
  const budget = options.count !== undefined ? `${options.count} inputs` : `${options.seconds} s`;
  process.stdout.write(`fuzzing ${options.targets.join(", ")}: ${budget} each, seed ${options.seed}\n`);
  const rows: string[] = [];
  let findings = 0;
  let total = 0;
  for (const name of options.targets) {
    const result = await runInWorker(name, options);
    total += result.executions;
    const seconds = result.milliseconds / 1000;
    const rate = seconds > 0 ? Math.round(result.executions / seconds) : 0;
    let outcome = "ok";
    if (result.finding !== null) {
      findings++;
      const path = saveFinding(result.finding);
      outcome = `${result.finding.kind.toUpperCase()} at input ${result.finding.iteration}: ${path}`;
      process.stdout.write(`\n${name}: ${result.finding.kind}\n${result.finding.message}\n\n`);
    }
    const row = `${name.padEnd(10)} ${String(result.executions).padStart(9)} executions ${seconds.toFixed(1).padStart(7)} s ${String(rate).padStart(7)}/s  ${outcome}`;
    rows.push(row);
    process.stdout.write(`${row}\n`);
  }
  process.stdout.write(
    `total: ${total} executions, ${findings} finding${findings === 1 ? "" : "s"} (seed ${options.seed})\n`,
  );
  if (findings > 0) process.exitCode = 1;
}

if (isMainThread) {
  main().catch((error: unknown) => {
    process.stderr.write(`fuzz: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 2;
  });
} else {
  await workerMain();
}
