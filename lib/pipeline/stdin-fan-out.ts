/**
 * Standard input for the one-shot workers of `report --jobs` and `table --jobs`, which each read every
 * input: one stream copied to every worker's `process.stdin`.
 *
 * Not `source.pipe(worker.stdin)`: a worker's stdin takes a write only when the worker asks for more,
 * one round trip between the threads per write, and a pipe writes 64 KiB at a time (twice the time of
 * a file on the bench capture). Here the stream goes in batches of a mebibyte, two in flight per worker,
 * at the pace of the slowest worker; memory stays at the batches.
 */
import type { Readable, Writable } from "node:stream";

const BATCH_BYTES = 1 << 20;
const BATCHES_IN_FLIGHT = 2;

export class StdinFanOut {
  private readonly targets = new Set<Writable>();
  /** Wakes a write's wait when its worker is gone (it will never ask for more). */
  private readonly abandon = new Map<Writable, (() => void)[]>();

  constructor(private readonly source: Readable) {}

  /** A worker's stdin, fed from the next batch on (add every worker before `run`). */
  add(target: Writable): void {
    this.targets.add(target);
  }

  /** The worker stopped reading (it finished early, or failed): the others go on without it. */
  remove(target: Writable): void {
    if (!this.targets.delete(target)) return;
    // A copy: each wake takes itself off the list.
    for (const wake of [...(this.abandon.get(target) ?? [])]) wake();
    this.abandon.delete(target);
    target.destroy();
  }

  /** Copies the source to every worker until it ends (then ends their stdin) or no worker is left. */
  async run(): Promise<void> {
    const batches = Array.from({ length: BATCHES_IN_FLIGHT }, () => ({
      bytes: Buffer.allocUnsafe(BATCH_BYTES),
      written: Promise.resolve(),
    }));
    let current = 0;
    let used = 0;
    const send = async (): Promise<void> => {
      const batch = batches[current];
      batch.written = this.write(batch.bytes.subarray(0, used));
      current = (current + 1) % BATCHES_IN_FLIGHT;
      used = 0;
      // The next batch's buffer is free once its last writes are through.
      await batches[current].written;
    };
    try {
      for await (const chunk of this.source) {
        if (this.targets.size === 0) break;
        const bytes = chunk as Buffer;
        for (let at = 0; at < bytes.length;) {
          const copied = bytes.copy(batches[current].bytes, used, at);
          used += copied;
          at += copied;
          if (used === BATCH_BYTES) await send();
        }
      }
      if (used > 0) await send();
      await Promise.all(batches.map((batch) => batch.written));
    } finally {
      // Also when the source failed: the workers see the input end there (and say it was cut short).
      for (const target of this.targets) target.end();
    }
  }

  /** Writes `bytes` to every worker; resolves once each has taken it (or is gone). */
  private write(bytes: Buffer): Promise<void> {
    const writes: Promise<void>[] = [];
    for (const target of this.targets)
      writes.push(
        new Promise<void>((resolve) => {
          const wakes = this.abandon.get(target) ?? [];
          this.abandon.set(target, wakes);
          const done = (): void => {
            const at = wakes.indexOf(done);
            if (at >= 0) wakes.splice(at, 1);
            resolve();
          };
          wakes.push(done);
          target.write(bytes, done);
        }),
      );
    return Promise.all(writes).then(() => undefined);
  }
}

/**
 * Starts a run's workers (`start` gets the fan-out to hand each, or null) and, when one of `files` is
 * "-", feeds them standard input; resolves with their results once all have ended. One failing, the
 * first failure is thrown, but only after the others have ended too: they write in a scratch directory
 * that the caller removes then (removing it under a worker still writing failed, and hid the failure).
 */
export async function allFedStdin<T>(
  files: readonly string[],
  start: (stdin: StdinFanOut | null) => Promise<T>[],
): Promise<T[]> {
  const stdin = files.includes("-") ? new StdinFanOut(process.stdin) : null;
  const workers = start(stdin);
  const [feeding, ...settled] = await Promise.allSettled([stdin?.run(), ...workers]);
  const failed = settled.find((result) => result.status === "rejected") ?? feeding;
  if (failed.status === "rejected") throw failed.reason;
  return settled.map((result) => (result as PromiseFulfilledResult<T>).value);
}
