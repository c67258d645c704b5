/**
 * An ascending list of record indices kept in a file rather than in memory (`table --jobs`: every
 * connection a worker creates is one, far more than are live at the end), and the counts of it at given
 * points read back in one pass.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";

/** Indices buffered between writes (64 KiB). */
const BUFFERED = 8192;

/** Appends ascending numbers (record indices) to a file of float64s, written in 64 KiB pieces. */
export class RecordLogWriter {
  private readonly buffer = new Float64Array(BUFFERED);
  private buffered = 0;
  private readonly fd: number;
  /** Indices written. */
  count = 0;

  constructor(readonly path: string) {
    this.fd = openSync(path, "w");
  }

  append(record: number): void {
    this.buffer[this.buffered++] = record;
    this.count++;
    if (this.buffered === BUFFERED) this.flush();
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }

  private flush(): void {
    const bytes = new Uint8Array(this.buffer.buffer, 0, this.buffered * 8);
    for (let at = 0; at < bytes.length;) at += writeSync(this.fd, bytes, at);
    this.buffered = 0;
  }
}

/**
 * For each of `points` (ascending), how many of the log's indices are at most it: one pass over the
 * file, memory for the points and one piece of it.
 */
export async function countsUpTo(path: string, points: Float64Array): Promise<Float64Array> {
  const counts = new Float64Array(points.length);
  const handle = await open(path, "r");
  try {
    const piece = new Float64Array(BUFFERED);
    const bytes = new Uint8Array(piece.buffer);
    let counted = 0;
    let point = 0;
    for (;;) {
      let filled = 0;
      while (filled < bytes.length) {
        const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, null);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      const values = filled >>> 3;
      for (let i = 0; i < values; i++) {
        const record = piece[i];
        while (point < points.length && points[point] < record) counts[point++] = counted;
        counted++;
      }
      if (filled < bytes.length) break;
    }
    while (point < points.length) counts[point++] = counted;
  } finally {
    await handle.close();
  }
  return counts;
}
