/**
 * The in-process fuzz loop: input i of a run seeded s is a pure function of (target, s, i), drawn
 * from the target's generator or its seeds and then mutated; each input runs through the target,
 * and one that throws or takes too long is a finding. Used by `npm run fuzz` (run.ts, one worker
 * per target so that a hang can be stopped) and by the short deterministic run in `npm test`.
 */
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import fc from "fast-check";
import { iterationSeed, mutate, Prng } from "./mutate.js";
import type { FuzzTarget } from "./targets.js";
import { repoRoot } from "../support/corpus.js";

/** An input that takes more processor time than this is a finding: every parser's work is bounded by its input. */
export const SLOW_INPUT_MS = 2000;

export const FINDINGS_DIR = join(repoRoot, "test", "fuzz", "findings");

export interface Finding {
  target: string;
  seed: number;
  iteration: number;
  kind: "crash" | "slow" | "hang" | "memory";
  message: string;
  input: Buffer;
}

export interface FuzzRunOptions {
  seed: number;
  /** Most inputs to run. */
  count?: number;
  /** Stop after this many milliseconds. */
  milliseconds?: number;
  /** Called before each input with its iteration number (the hang watchdog reads it). */
  onIteration?: (iteration: number) => void;
}

export interface FuzzRunResult {
  target: string;
  executions: number;
  milliseconds: number;
  finding: Finding | null;
}

/** Seeds of each target, read once per process. */
const seedCache = new Map<string, Buffer[]>();

function seedsOf(target: FuzzTarget): Buffer[] {
  let seeds = seedCache.get(target.name);
  if (seeds === undefined) {
    seeds = target.seeds();
    seedCache.set(target.name, seeds);
  }
  return seeds;
}

/** Input `iteration` of the run seeded `seed`. */
export function makeInput(target: FuzzTarget, seed: number, iteration: number): Buffer {
  const rng = new Prng(iterationSeed(seed, iteration));
  const seeds = seedsOf(target);
  const roll = rng.below(100);
  let base: Buffer;
  if (target.structured !== null && (seeds.length === 0 || roll < 50)) {
    const [value] = fc.sample(target.structured, { seed: rng.nextU32() | 0, numRuns: 1 });
    base = value;
    // Some generated inputs go in as they are: they reach the deepest code.
    if (rng.chance(0.4)) return base;
  } else {
    base = rng.pick(seeds);
    if (rng.chance(0.02)) return base;
  }
  const other = seeds.length > 0 ? rng.pick(seeds) : base;
  return mutate(base, rng, (input) => target.lengthFields(input), other);
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return String(error);
}

/** Runs one input; resolves to the finding it makes, or null. */
export async function runInput(
  target: FuzzTarget,
  input: Buffer,
  seed = 0,
  iteration = 0,
): Promise<Finding | null> {
  let elapsed = 0;
  let cpu = 0;
  // Processor time, not the clock's: a fuzz run at nice 19 on a busy machine waits a lot. A slow input
  // runs once more, and only slow twice is a finding.
  for (let attempt = 0; attempt < 2; attempt++) {
    const started = performance.now();
    const startedCpu = process.cpuUsage();
    try {
      await target.execute(input);
    } catch (error) {
      return { target: target.name, seed, iteration, kind: "crash", message: describe(error), input };
    }
    elapsed = performance.now() - started;
    const used = process.cpuUsage(startedCpu);
    cpu = (used.user + used.system) / 1000;
    if (cpu <= SLOW_INPUT_MS) return null;
  }
  return {
    target: target.name,
    seed,
    iteration,
    kind: "slow",
    message:
      `one input of ${input.length} bytes took ${Math.round(cpu)} ms of processor time (${Math.round(elapsed)} ms) ` +
      `twice (limit ${SLOW_INPUT_MS} ms)`,
    input,
  };
}

/** Runs inputs until the count or the time is reached, or the first finding. */
export async function fuzzTarget(target: FuzzTarget, options: FuzzRunOptions): Promise<FuzzRunResult> {
  const started = performance.now();
  const count = options.count ?? Infinity;
  const deadline = options.milliseconds === undefined ? Infinity : started + options.milliseconds;
  let executions = 0;
  let finding: Finding | null = null;
  for (let i = 0; i < count; i++) {
    if (performance.now() >= deadline) break;
    options.onIteration?.(i);
    const input = makeInput(target, options.seed, i);
    finding = await runInput(target, input, options.seed, i);
    executions++;
    if (finding !== null) break;
  }
  return { target: target.name, executions, milliseconds: performance.now() - started, finding };
}

/** Stores a finding's input (and what it did) under test/fuzz/findings/; returns the input's path. */
export function saveFinding(finding: Finding, directory = FINDINGS_DIR): string {
  mkdirSync(directory, { recursive: true });
  const digest = createHash("sha1").update(finding.input).digest("hex").slice(0, 12);
  const base = join(directory, `${finding.target}-${finding.kind}-${digest}`);
  writeFileSync(`${base}.bin`, finding.input);
  writeFileSync(
    `${base}.txt`,
    `target: ${finding.target}\nkind: ${finding.kind}\nseed: ${finding.seed}\niteration: ${finding.iteration}\n` +
      `replay: npm run fuzz -- --target ${finding.target} --replay ${base}.bin\n\n${finding.message}\n`,
  );
  return `${base}.bin`;
}
