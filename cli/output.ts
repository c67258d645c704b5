import { createWriteStream, lstatSync } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { noteOutputPath, UsageError } from "./errors.js";
import { OUTPUT_HIGH_WATER_MARK } from "../lib/pipeline/replay.js";

/** `--force`: whether an existing output file may be replaced (set while the arguments are read). */
let replaceExisting = false;

export function allowReplacingOutputs(allow: boolean): void {
  replaceExisting = allow;
}

/**
 * Refuses, without `--force`, output paths that are existing regular files: called with all of a
 * command's outputs before any is opened, so that none is left half made when another is refused.
 */
export function refuseExistingOutputs(paths: readonly (string | undefined)[]): void {
  if (replaceExisting) return;
  for (const path of paths) {
    if (path === undefined || path === "-") continue;
    if (lstatSync(path, { throwIfNoEntry: false })?.isFile())
      throw new UsageError(`${path}: exists; pass --force to replace it`);
  }
}

/** Refuses, without `--force`, to replace `names` in `directory` (a report directory) that exist. */
export function refuseExistingReport(directory: string, names: readonly string[]): void {
  if (replaceExisting) return;
  const found = names.filter(
    (name) => lstatSync(join(directory, name), { throwIfNoEntry: false }) !== undefined,
  );
  if (found.length > 0)
    throw new UsageError(
      `${directory}: holds a report already (${found.join(", ")}); pass --force to replace it`,
    );
}

/**
 * Where a command's streamed output goes: standard output; a regular file (or a new one), written
 * under a temporary name and renamed once complete so an interrupted run leaves no half file; or
 * anything else (a device such as /dev/null, a FIFO, a symbolic link), written in place, since
 * renaming over it would replace the device or the link with a plain file.
 */
export class OutputTarget {
  readonly stream: Writable;
  private readonly temporary: string | null;
  /** Whether the stream is ours to end (not standard output). */
  private readonly ownsStream: boolean;

  constructor(private readonly path: string | undefined) {
    if (path === undefined || path === "-") {
      this.stream = process.stdout;
      this.temporary = null;
      this.ownsStream = false;
      // A reader that stops early (`| head`) is not an error: stop quietly.
      process.stdout.on("error", (error: NodeJS.ErrnoException) => {
        if (error.code === "EPIPE") process.exit(0);
      });
      return;
    }
    this.ownsStream = true;
    refuseExistingOutputs([path]);
    const existing = lstatSync(path, { throwIfNoEntry: false });
    if (existing === undefined || existing.isFile()) {
      const temporary = `${path}.partial-${process.pid}`;
      this.temporary = temporary;
      this.stream = createWriteStream(temporary, { highWaterMark: OUTPUT_HIGH_WATER_MARK });
    } else {
      this.temporary = null;
      this.stream = createWriteStream(path, { highWaterMark: OUTPUT_HIGH_WATER_MARK });
    }
    // Errors name the file asked for, not the temporary one; a failed write (ENOSPC) names none.
    noteOutputPath(path);
    this.stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.path === this.temporary) error.path = path;
    });
  }

  async commit(): Promise<void> {
    if (!this.ownsStream) return;
    await new Promise<void>((resolve, reject) => {
      this.stream.once("error", reject);
      this.stream.end(resolve);
    });
    if (this.temporary !== null) await rename(this.temporary, this.path!);
  }

  async abandon(): Promise<void> {
    if (!this.ownsStream) return;
    this.stream.destroy();
    if (this.temporary !== null) await unlink(this.temporary).catch(() => undefined);
  }
}

/** Writes a whole report to `path` ("-" or undefined: standard output), through an OutputTarget. */
export async function writeOutput(path: string | undefined, text: string): Promise<void> {
  const target = new OutputTarget(path);
  try {
    await new Promise<void>((resolve, reject) =>
      target.stream.write(text, (error) => (error ? reject(error) : resolve())),
    );
    await target.commit();
  } catch (error) {
    await target.abandon();
    throw error;
  }
}
