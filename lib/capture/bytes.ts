import { emptyCaptureRecord } from "./source.js";
/**
 * The byte layer under the capture readers: one working buffer per input, refilled in place.
 *
 * Readers parse straight out of `buffer[start, end)`. A record is never split across two buffers:
 * before a refill the unconsumed tail moves to the front, and when one record is larger than the
 * whole buffer the buffer grows (up to MAX_WORKING_BUFFER_BYTES, which is larger than any record
 * length the readers accept).
 */
import type { FileHandle } from "node:fs/promises";
import type { Readable } from "node:stream";
import type {
  CaptureFormat,
  CaptureInterface,
  CaptureRecord,
  CaptureSource,
  CaptureWarning,
} from "./source.js";

export const DEFAULT_WORKING_BUFFER_BYTES = 1 << 20;
/** Largest record (block) the readers accept; anything claiming more is damage, never an allocation. */
export const MAX_RECORD_BYTES = 16 << 20;
/** A buffer that holds the largest acceptable record plus a header, with room to spare. */
export const MAX_WORKING_BUFFER_BYTES = MAX_RECORD_BYTES + (1 << 16);

export abstract class ByteInput {
  buffer: Buffer;
  /** Index of the first unconsumed byte. */
  start = 0;
  /** Index one past the last valid byte. */
  end = 0;
  /** Offset within the (decompressed) input of `buffer[0]`. */
  bufferInputOffset = 0;
  /** True once the underlying file or stream has no more bytes. */
  atEnd = false;
  /** Set when the stream failed (for instance damaged gzip data); the input then ends there. */
  failure: string | null = null;

  constructor(bufferBytes: number) {
    this.buffer = Buffer.allocUnsafe(Math.max(64, Math.min(bufferBytes, MAX_WORKING_BUFFER_BYTES)));
  }

  /** Bytes buffered but not yet consumed. */
  get available(): number {
    return this.end - this.start;
  }

  /** Input offset of the first unconsumed byte. */
  get position(): number {
    return this.bufferInputOffset + this.start;
  }

  /**
   * Moves the unconsumed bytes to the front and reads until at least `wanted` bytes are buffered
   * (or the input ends). Resolves true when any byte was added.
   */
  async refill(wanted: number): Promise<boolean> {
    if (this.atEnd) return false;
    const kept = this.end - this.start;
    if (wanted > this.buffer.length) this.grow(wanted);
    if (this.start > 0) {
      if (kept > 0) this.buffer.copyWithin(0, this.start, this.end);
      this.bufferInputOffset += this.start;
      this.start = 0;
      this.end = kept;
    }
    let added = false;
    while (this.end < this.buffer.length) {
      const read = await this.readInto(this.buffer, this.end, this.buffer.length - this.end);
      if (read === 0) {
        this.atEnd = true;
        break;
      }
      this.end += read;
      added = true;
      if (this.end - this.start >= wanted) break;
    }
    return added;
  }

  private grow(wanted: number): void {
    let size = this.buffer.length;
    while (size < wanted) size *= 2;
    size = Math.min(size, MAX_WORKING_BUFFER_BYTES);
    if (size < wanted) throw new RangeError(`record of ${wanted} bytes exceeds the reader's limit`);
    const grown = Buffer.allocUnsafe(size);
    this.buffer.copy(grown, 0, this.start, this.end);
    this.end -= this.start;
    this.bufferInputOffset += this.start;
    this.start = 0;
    this.buffer = grown;
  }

  /** Reads up to `length` bytes into `target` at `offset`; 0 means the end of the input. */
  protected abstract readInto(target: Buffer, offset: number, length: number): Promise<number>;

  abstract close(): Promise<void>;
}

/** A file read with FileHandle.read straight into the working buffer. */
export class FileByteInput extends ByteInput {
  private closed = false;

  constructor(
    private readonly handle: FileHandle,
    bufferBytes = DEFAULT_WORKING_BUFFER_BYTES,
  ) {
    super(bufferBytes);
  }

  protected async readInto(target: Buffer, offset: number, length: number): Promise<number> {
    const { bytesRead } = await this.handle.read(target, offset, length, null);
    return bytesRead;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

/**
 * A stream (stdin, gunzip output) consumed chunk by chunk through its async iterator, so a slow
 * consumer holds the producer back. Chunks are copied into the working buffer; a chunk that does not
 * fit waits, partly consumed, for the next refill.
 */
export class StreamByteInput extends ByteInput {
  private readonly chunks: AsyncIterator<Buffer>;
  private pendingChunk: Buffer | null = null;
  private pendingOffset = 0;
  private closed = false;

  constructor(
    private readonly stream: Readable,
    bufferBytes = DEFAULT_WORKING_BUFFER_BYTES,
  ) {
    super(bufferBytes);
    this.chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  protected async readInto(target: Buffer, offset: number, length: number): Promise<number> {
    if (this.pendingChunk === null) {
      let step: IteratorResult<Buffer>;
      try {
        step = await this.chunks.next();
      } catch (error) {
        this.failure = error instanceof Error ? error.message : String(error);
        return 0;
      }
      if (step.done) return 0;
      const chunk = typeof step.value === "string" ? Buffer.from(step.value) : step.value;
      if (chunk.length === 0) return this.readInto(target, offset, length);
      this.pendingChunk = chunk;
      this.pendingOffset = 0;
    }
    const chunk = this.pendingChunk;
    const copied = chunk.copy(
      target,
      offset,
      this.pendingOffset,
      Math.min(chunk.length, this.pendingOffset + length),
    );
    this.pendingOffset += copied;
    if (this.pendingOffset >= chunk.length) this.pendingChunk = null;
    return copied;
  }

  /**
   * Hands over everything not yet consumed (buffered bytes first, then the rest of the stream), for
   * when the bytes turn out to be gzip and must go through a decompressor. This input is then spent.
   */
  async *remaining(): AsyncGenerator<Buffer> {
    if (this.end > this.start) yield Buffer.from(this.buffer.subarray(this.start, this.end));
    this.start = this.end;
    if (this.pendingChunk !== null) {
      yield this.pendingChunk.subarray(this.pendingOffset);
      this.pendingChunk = null;
    }
    for (;;) {
      const step = await this.chunks.next();
      if (step.done) return;
      yield step.value;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.stream.destroyed && this.stream !== process.stdin) this.stream.destroy();
    await this.chunks.return?.();
  }
}

/** Most warnings kept per input; past this they are only counted, so damage cannot grow memory. */
export const MAX_WARNINGS_KEPT = 1000;

/**
 * What the pcap and pcapng readers share: the reused record, warnings, the out-of-order count and
 * the refill step that turns "input ended inside a record" into a warning.
 */
export abstract class BufferedCaptureReader implements CaptureSource {
  readonly record: CaptureRecord = emptyCaptureRecord();
  readonly interfaces: CaptureInterface[] = [];
  readonly warnings: CaptureWarning[] = [];
  outOfOrder = 0;
  /** Warnings past MAX_WARNINGS_KEPT, counted only. */
  suppressedWarnings = 0;
  /** Packet records met so far, including any skipped with a warning (so numbers match file order). */
  protected packetsSeen = 0;
  /** Bytes that must be buffered at `input.start` before `next()` can make progress. */
  protected wantedBytes: number;
  /** Set at the end of the input or at damage that stops reading. */
  protected finished = false;
  private previousSec = -Infinity;
  private previousNsec = 0;

  constructor(
    readonly name: string,
    protected readonly input: ByteInput,
    readonly format: CaptureFormat,
    readonly compressed: boolean,
    initialWantedBytes: number,
  ) {
    this.wantedBytes = initialWantedBytes;
    this.record.data = input.buffer;
  }

  abstract next(): boolean;

  /** Says what was cut when the input ends with `available` bytes of an incomplete unit buffered. */
  protected abstract describeCut(available: number): string;

  async fill(): Promise<boolean> {
    if (this.finished) return false;
    await this.input.refill(this.wantedBytes);
    if (this.input.available >= this.wantedBytes) return true;
    this.finished = true;
    if (this.input.failure !== null) {
      this.warn(
        this.input.position + this.input.available,
        this.packetsSeen + 1,
        `compressed data ends early or is damaged (${this.input.failure})`,
      );
    }
    if (this.input.available > 0) {
      this.warn(this.input.position, this.packetsSeen + 1, this.describeCut(this.input.available));
    }
    return false;
  }

  async close(): Promise<void> {
    this.finished = true;
    await this.input.close();
  }

  protected warn(offset: number, recordNumber: number, message: string): void {
    if (this.warnings.length < MAX_WARNINGS_KEPT) {
      this.warnings.push({ file: this.name, offset, recordNumber, message });
    } else {
      if (this.suppressedWarnings === 0) {
        this.warnings.push({
          file: this.name,
          offset,
          recordNumber,
          message: `more than ${MAX_WARNINGS_KEPT} warnings: further ones are counted, not listed`,
        });
      }
      this.suppressedWarnings++;
    }
  }

  /** Damage that ends reading: everything before it has been delivered. */
  protected stop(offset: number, recordNumber: number, message: string): false {
    this.warn(offset, recordNumber, message);
    this.finished = true;
    return false;
  }

  protected noteTimestamp(sec: number, nsec: number): void {
    if (sec < this.previousSec || (sec === this.previousSec && nsec < this.previousNsec)) this.outOfOrder++;
    this.previousSec = sec;
    this.previousNsec = nsec;
  }
}
