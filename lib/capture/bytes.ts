import { emptyCaptureRecord } from "./source.js";
/**
 * The byte layer under the capture readers: one working buffer per input, refilled in place (files
 * read one buffer ahead into a second one, which then takes the working buffer's place).
 *
 * Readers parse straight out of `buffer[start, end)`, and must take `buffer` afresh after every
 * refill. A record is never split across two buffers: a refill keeps the unconsumed tail in front of
 * the new bytes, and when one record is larger than the whole buffer the buffer grows (up to
 * MAX_WORKING_BUFFER_BYTES, which is larger than any record length the readers accept).
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
/**
 * Room a file's read-ahead leaves in front for the previous buffer's cut record: larger than most
 * records, so the buffers swap instead of the data being copied (a quarter of tiny buffers).
 */
export const READ_AHEAD_HEADROOM_BYTES = 1 << 16;

/**
 * Where an input's buffers come from when records must stay valid after the reader moved on (a
 * `--jobs` run hands records to other threads): the input then never writes into a buffer it has read
 * records from, but takes a fresh one and releases the old, which the pool reuses once nobody reads it.
 */
export interface ByteBufferPool {
  /** A buffer of at least `size` bytes that nothing else writes into until released. */
  take(size: number): Buffer;
  /** The input will not touch `buffer` again (records may still point into it). */
  release(buffer: Buffer): void;
}

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
  /**
   * Bytes of the stored input consumed so far, for progress against the file's size: `position`, but
   * behind a decompressor `openCapture` points it at the compressed bytes read instead.
   */
  storedBytesConsumed: () => number = () => this.position;

  constructor(
    bufferBytes: number,
    protected readonly pool: ByteBufferPool | null = null,
  ) {
    const size = Math.max(64, Math.min(bufferBytes, MAX_WORKING_BUFFER_BYTES));
    this.buffer = pool !== null ? pool.take(size) : Buffer.allocUnsafe(size);
  }

  /** After close: the pool may reuse the working buffer once its records are done with. */
  protected releaseBuffers(): void {
    this.pool?.release(this.buffer);
  }

  /** A new buffer: from the pool when there is one. */
  protected newBuffer(size: number): Buffer {
    return this.pool !== null ? this.pool.take(size) : Buffer.allocUnsafe(size);
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
    this.compact(wanted);
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

  /** Moves the unconsumed bytes to the front, growing the buffer first if `wanted` bytes cannot fit. */
  protected compact(wanted: number): void {
    if (wanted > this.buffer.length) this.grow(wanted);
    if (this.start > 0) {
      const kept = this.end - this.start;
      if (this.pool !== null) {
        // Records read from this buffer may still be in use: the tail moves to a fresh one.
        const fresh = this.pool.take(this.buffer.length);
        if (kept > 0) this.buffer.copy(fresh, 0, this.start, this.end);
        this.pool.release(this.buffer);
        this.buffer = fresh;
      } else if (kept > 0) this.buffer.copyWithin(0, this.start, this.end);
      this.bufferInputOffset += this.start;
      this.start = 0;
      this.end = kept;
    }
  }

  private grow(wanted: number): void {
    let size = this.buffer.length;
    while (size < wanted) size *= 2;
    size = Math.min(size, MAX_WORKING_BUFFER_BYTES);
    if (size < wanted) throw new RangeError(`record of ${wanted} bytes exceeds the reader's limit`);
    const grown = this.newBuffer(size);
    this.buffer.copy(grown, 0, this.start, this.end);
    this.pool?.release(this.buffer);
    this.end -= this.start;
    this.bufferInputOffset += this.start;
    this.start = 0;
    this.buffer = grown;
  }

  /** Reads up to `length` bytes into `target` at `offset`; 0 means the end of the input. */
  protected abstract readInto(target: Buffer, offset: number, length: number): Promise<number>;

  abstract close(): Promise<void>;
}

/**
 * A file read with FileHandle.read, one read ahead: while the reader parses the working buffer, the
 * next read is already filling a second buffer (in libuv's thread pool), so the main thread seldom
 * waits for the disk or the page cache. Memory stays at two buffers.
 *
 * The read-ahead lands `headroom` bytes into the spare buffer; at the refill the unconsumed tail (a
 * record cut by the buffer's end) is copied into that headroom and the buffers swap, so the bulk of
 * the data is never copied twice. A tail longer than the headroom (a record larger than it) takes the
 * plain path instead: the read-ahead bytes are copied behind the tail in the working buffer, and what
 * does not fit waits in the spare buffer for the next refill.
 */
export class FileByteInput extends ByteInput {
  private closed = false;
  /** The second buffer, made at the first read-ahead (a file that fits in one buffer never needs it). */
  private spare: Buffer | null = null;
  /** The read in flight into `spare` at `aheadStart`: bytes read, or -1 when it failed (`aheadError`). */
  private ahead: Promise<number> | null = null;
  private aheadError: unknown = null;
  /** Read-ahead bytes in `spare[aheadStart, aheadEnd)` not yet moved to the working buffer. */
  private aheadStart = 0;
  private aheadEnd = 0;
  /**
   * Whether the last read filled all it asked for: the file goes on past the buffer. A short read
   * (the end of a small file, or a FIFO given as a path) turns reading ahead off until a full one.
   */
  private readFull = false;

  constructor(
    private readonly handle: FileHandle,
    bufferBytes = DEFAULT_WORKING_BUFFER_BYTES,
    pool: ByteBufferPool | null = null,
  ) {
    super(bufferBytes, pool);
  }

  override async refill(wanted: number): Promise<boolean> {
    let added = false;
    if (this.ahead !== null) {
      const read = await this.ahead;
      this.ahead = null;
      if (read < 0) {
        const error = this.aheadError;
        this.aheadError = null;
        throw error;
      }
      if (read === 0) this.atEnd = true;
      this.readFull = read === this.spare!.length - this.aheadEnd;
      this.aheadEnd += read;
    }
    if (this.aheadEnd > this.aheadStart) {
      this.adoptReadAhead(wanted);
      added = true;
    }
    // Without read-ahead bytes this is the plain refill; after them, only when they were not enough.
    if (!this.atEnd && this.aheadEnd === this.aheadStart && (!added || this.available < wanted)) {
      if (await super.refill(wanted)) added = true;
    }
    this.startReadAhead();
    return added;
  }

  /** Makes the read-ahead bytes follow the unconsumed tail in the working buffer. */
  private adoptReadAhead(wanted: number): void {
    const spare = this.spare!;
    const kept = this.end - this.start;
    if (kept <= this.aheadStart && wanted <= spare.length) {
      const front = this.aheadStart - kept;
      if (kept > 0) this.buffer.copy(spare, front, this.start, this.end);
      const previous = this.buffer;
      // spare[aheadStart] holds the input byte just after the working buffer's last one.
      this.bufferInputOffset += this.end - this.aheadStart;
      this.buffer = spare;
      this.start = front;
      this.end = this.aheadEnd;
      if (this.pool !== null) {
        this.pool.release(previous);
        this.spare = null;
      } else this.spare = previous;
      this.aheadStart = this.aheadEnd = 0;
      return;
    }
    this.compact(wanted);
    const moved = spare.copy(this.buffer, this.end, this.aheadStart, this.aheadEnd);
    this.end += moved;
    this.aheadStart += moved;
    if (this.aheadStart === this.aheadEnd) this.aheadStart = this.aheadEnd = 0;
  }

  /** Starts the next read into the spare buffer, unless the input ended or the spare still holds bytes. */
  private startReadAhead(): void {
    if (!this.readFull || this.atEnd || this.closed || this.ahead !== null) return;
    if (this.aheadEnd > this.aheadStart) return;
    // Made as large as the working buffer, also after that grew for a big record, so the two can swap.
    if (this.spare === null || this.spare.length < this.buffer.length) {
      if (this.spare !== null) this.pool?.release(this.spare);
      this.spare = this.newBuffer(this.buffer.length);
    }
    const at = Math.min(READ_AHEAD_HEADROOM_BYTES, this.spare.length >>> 2);
    this.aheadStart = this.aheadEnd = at;
    this.ahead = this.handle.read(this.spare, at, this.spare.length - at, null).then(
      (result) => result.bytesRead,
      (error: unknown) => {
        this.aheadError = error;
        return -1;
      },
    );
  }

  protected async readInto(target: Buffer, offset: number, length: number): Promise<number> {
    const { bytesRead } = await this.handle.read(target, offset, length, null);
    this.readFull = bytesRead === length;
    return bytesRead;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The read in flight must finish before its file descriptor goes away; its outcome no longer matters.
    if (this.ahead !== null) await this.ahead;
    this.ahead = null;
    await this.handle.close();
    this.releaseBuffers();
  }

  protected override releaseBuffers(): void {
    super.releaseBuffers();
    if (this.spare !== null) this.pool?.release(this.spare);
  }
}

/**
 * A stream (stdin, gunzip output) consumed chunk by chunk with `read()`, so a slow consumer holds the
 * producer back. Chunks are copied into the working buffer; a chunk that does not fit waits, partly
 * consumed, for the next refill.
 *
 * Not the stream's async iterator: that stops reading the moment the stream fails, and a failing
 * gunzip (damaged data) has already decompressed everything before the damage into its buffer. Here
 * those bytes are read first, so a damaged file yields every record before the damage.
 */
export class StreamByteInput extends ByteInput {
  private pendingChunk: Buffer | null = null;
  private pendingOffset = 0;
  private closed = false;
  private streamEnded = false;
  private streamError: unknown = null;
  private wake: (() => void) | null = null;

  constructor(
    private readonly stream: Readable,
    bufferBytes = DEFAULT_WORKING_BUFFER_BYTES,
    pool: ByteBufferPool | null = null,
  ) {
    super(bufferBytes, pool);
    const wake = (): void => {
      const resolve = this.wake;
      this.wake = null;
      resolve?.();
    };
    stream.on("readable", wake);
    stream.on("end", () => {
      this.streamEnded = true;
      wake();
    });
    // A stream destroyed without an error ends where it is.
    stream.on("close", () => {
      this.streamEnded = true;
      wake();
    });
    stream.on("error", (error: unknown) => {
      this.streamError = error;
      wake();
    });
  }

  /** The next chunk, null at the end; the stream's failure only once what it holds has been read. */
  private async pull(): Promise<Buffer | null> {
    for (;;) {
      const chunk = this.stream.read() as Buffer | string | null;
      if (chunk !== null) return typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      if (this.streamError !== null) throw this.streamError;
      if (this.streamEnded) return null;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  protected async readInto(target: Buffer, offset: number, length: number): Promise<number> {
    if (this.pendingChunk === null) {
      let chunk: Buffer | null;
      try {
        chunk = await this.pull();
      } catch (error) {
        this.failure = error instanceof Error ? error.message : String(error);
        return 0;
      }
      if (chunk === null) return 0;
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
    // `position` goes on counting the bytes handed over: the compressed bytes consumed.
    if (this.pendingChunk !== null) {
      const rest = this.pendingChunk.subarray(this.pendingOffset);
      this.pendingChunk = null;
      this.bufferInputOffset += rest.length;
      yield rest;
    }
    for (;;) {
      const chunk = await this.pull();
      if (chunk === null) return;
      this.bufferInputOffset += chunk.length;
      yield chunk;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Standard input too (as its async iterator's return did): reading stopped, the process may end.
    if (!this.stream.destroyed) this.stream.destroy();
    this.releaseBuffers();
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

  /** Bytes of the stored input (compressed ones, for gzip) consumed so far: progress against its size. */
  get bytesConsumed(): number {
    return this.input.storedBytesConsumed();
  }

  /** Packet records met so far. */
  get packetsRead(): number {
    return this.packetsSeen;
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
