import { createWriteStream, lstatSync } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import type { Writable } from "node:stream";

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
    const existing = lstatSync(path, { throwIfNoEntry: false });
    if (existing === undefined || existing.isFile()) {
      this.temporary = `${path}.partial-${process.pid}`;
      this.stream = createWriteStream(this.temporary);
    } else {
      this.temporary = null;
      this.stream = createWriteStream(path);
    }
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
