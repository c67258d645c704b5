import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { pipeline, Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import {
  DEFAULT_WORKING_BUFFER_BYTES,
  FileByteInput,
  StreamByteInput,
  type ByteBufferPool,
  type ByteInput,
} from "./bytes.js";
import { PCAP_FILE_HEADER_BYTES, PcapReader, pcapMagic } from "./pcap.js";
import { MIN_SECTION_HEADER_BYTES, PcapngReader, SECTION_HEADER_BLOCK, sectionByteOrder } from "./pcapng.js";
import { CaptureError, type CaptureSource } from "./source.js";

export interface OpenOptions {
  /** The stream read when the path is "-" (default: process.stdin). */
  stdin?: Readable;
  /** Name used in messages (default: the path, or "<stdin>" for "-"). */
  name?: string;
  /** Working buffer size in bytes (default 1 MiB); small values exercise refills in tests. */
  bufferBytes?: number;
  /** Buffers that outlive the reader's use of them (lib/capture/bytes.ts ByteBufferPool). */
  pool?: ByteBufferPool | null;
}

/**
 * Opens a capture file, or standard input for "-". Gzip is recognised by its magic bytes, whatever
 * the name, and decompressed on the fly; then the format is recognised by its magic.
 */
export async function openCapture(path: string, options: OpenOptions = {}): Promise<CaptureSource> {
  const name = options.name ?? (path === "-" ? "<stdin>" : path);
  const bufferBytes = options.bufferBytes ?? DEFAULT_WORKING_BUFFER_BYTES;
  const pool = options.pool ?? null;
  let input: ByteInput =
    path === "-"
      ? new StreamByteInput(options.stdin ?? process.stdin, bufferBytes, pool)
      : new FileByteInput(await open(path, "r"), bufferBytes, pool);
  try {
    await input.refill(4);
    if (input.available === 0) throw new CaptureError(name, 0, 0, describeEmpty(input, "empty file"));
    let compressed = false;
    if (
      input.available >= 2 &&
      input.buffer[input.start] === 0x1f &&
      input.buffer[input.start + 1] === 0x8b
    ) {
      compressed = true;
      const raw =
        input instanceof StreamByteInput ? Readable.from(input.remaining(), { objectMode: false }) : null;
      if (raw === null) await input.close();
      // Large chunks: zlib's 16 KiB default makes decompression, not parsing, the bottleneck (2x slower).
      const gunzip = createGunzip({ chunkSize: 256 << 10 });
      const file = raw === null ? createReadStream(path, { highWaterMark: 1 << 20 }) : null;
      // Errors of either stage reach the reader through gunzip's iterator, as a warning.
      pipeline(raw ?? file!, gunzip, () => {});
      const compressedInput = input;
      input = new StreamByteInput(gunzip, bufferBytes, pool);
      input.storedBytesConsumed =
        file !== null ? () => file.bytesRead : () => compressedInput.storedBytesConsumed();
      await input.refill(4);
      if (input.available === 0) {
        throw new CaptureError(name, 0, 0, describeEmpty(input, "empty file (after gzip decompression)"));
      }
    }
    if (input.available < 4) await input.refill(4);
    if (input.available < 4) {
      throw new CaptureError(name, 0, 0, `file too short: ${input.available} bytes, not even a magic number`);
    }
    const firstWord = input.buffer.readUInt32BE(input.start);
    if (pcapMagic(firstWord) !== null) {
      if (input.available < PCAP_FILE_HEADER_BYTES) await input.refill(PCAP_FILE_HEADER_BYTES);
      return new PcapReader(name, input, compressed);
    }
    if (firstWord === SECTION_HEADER_BLOCK) {
      if (input.available < MIN_SECTION_HEADER_BYTES) await input.refill(MIN_SECTION_HEADER_BYTES);
      if (input.available < MIN_SECTION_HEADER_BYTES) {
        throw new CaptureError(
          name,
          0,
          0,
          `file ends inside the pcapng section header block (${input.available} of ${MIN_SECTION_HEADER_BYTES} bytes)`,
        );
      }
      if (sectionByteOrder(input.buffer, input.start) === null) {
        const found = input.buffer.toString("hex", input.start + 8, input.start + 12);
        throw new CaptureError(
          name,
          8,
          0,
          `pcapng section header has an unknown byte-order magic 0x${found}`,
        );
      }
      return new PcapngReader(name, input, compressed);
    }
    const found = input.buffer.toString("hex", input.start, input.start + 4);
    throw new CaptureError(name, 0, 0, `not a pcap or pcapng file: magic 0x${found} at offset 0`);
  } catch (error) {
    await input.close();
    throw error;
  }
}

function describeEmpty(input: ByteInput, plain: string): string {
  return input.failure === null ? plain : `${plain}: ${input.failure}`;
}
