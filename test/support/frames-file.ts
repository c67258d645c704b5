/** A classic pcap of hand-built frames, written with the project's own writer, for a test. */
import { createWriteStream } from "node:fs";
import { PcapWriter } from "../../lib/capture/writer.js";

export interface Frame {
  bytes: Buffer;
  /** Seconds since the epoch (fractions allowed). */
  ts: number;
}

/** Writes `frames` (link type `linkType`, nanosecond stamps) to `path`; returns the path once complete. */
export async function framesPcapFile(path: string, frames: readonly Frame[], linkType = 1): Promise<string> {
  const out = createWriteStream(path);
  const writer = new PcapWriter(out, { linkType, nanosecond: true });
  for (const { bytes, ts } of frames) {
    const sec = Math.floor(ts);
    const wait = writer.writeRecord(sec, Math.round((ts - sec) * 1e9), bytes, 0, bytes.length);
    if (wait) await wait;
  }
  // Ends the stream: the file is complete when this resolves.
  await writer.close();
  return path;
}
