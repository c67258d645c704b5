/**
 * Capture writers: classic pcap and pcapng.
 *
 * Records are packed into a large reused chunk buffer which is handed to the output stream only when
 * full, so writing a record allocates nothing. `writeRecord` returns `undefined` normally and a
 * promise only when the stream is behind: awaiting it (`const wait = w.writeRecord(…); if (wait)
 * await wait;`) keeps memory bounded without costing a promise per packet.
 */
import type { Writable } from "node:stream";

export type ByteOrder = "little" | "big";

/** Chunks are this size unless a record needs more. */
const DEFAULT_CHUNK_BYTES = 1 << 20;
/** Chunks handed to the stream and not yet written; beyond this the writer asks the caller to wait. */
const MAX_CHUNKS_IN_FLIGHT = 2;
const MAX_UINT32 = 0xffffffff;
const TWO_POW_32 = 4294967296;

export interface ChunkedWriterOptions {
  /** Size of the reused chunk buffer (default 1 MiB). */
  chunkBytes?: number;
  /** Whether `close()` ends the stream (default true; pass false for process.stdout). */
  endStream?: boolean;
}

const copyBytes = Buffer.prototype.copy as (
  this: Uint8Array,
  target: Uint8Array,
  targetStart: number,
  sourceStart: number,
  sourceEnd: number,
) => number;

function checkRecordArguments(
  tsSec: number,
  tsNsec: number,
  bytes: Uint8Array,
  offset: number,
  length: number,
  origlen: number,
): void {
  if (!Number.isInteger(tsSec) || tsSec < 0)
    throw new RangeError(`timestamp seconds ${tsSec} is not a whole number >= 0`);
  if (!Number.isInteger(tsNsec) || tsNsec < 0 || tsNsec > 999_999_999)
    throw new RangeError(`timestamp nanoseconds ${tsNsec} is not within 0..999999999`);
  if (
    !Number.isInteger(offset) ||
    !Number.isInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > bytes.length
  )
    throw new RangeError(`record bytes ${offset}+${length} fall outside a buffer of ${bytes.length}`);
  if (!Number.isInteger(origlen) || origlen < 0 || origlen > MAX_UINT32)
    throw new RangeError(`original length ${origlen} does not fit 32 bits`);
}

/** The chunk buffer, the hand-off to the stream and the backpressure shared by both formats. */
abstract class ChunkedCaptureWriter {
  protected chunk: Buffer;
  protected used = 0;
  protected littleEndian = true;
  private readonly chunkBytes: number;
  private readonly endStream: boolean;
  private readonly spareChunks: Buffer[] = [];
  private chunksInFlight = 0;
  private waitLimit = 0;
  private wakeWaiter: (() => void) | null = null;
  private failure: Error | null = null;
  private closed = false;
  /** Bytes handed to the stream so far plus those still in the chunk. */
  get bytesWritten(): number {
    return this.handedOff + this.used;
  }
  private handedOff = 0;

  protected constructor(
    protected readonly out: Writable,
    options: ChunkedWriterOptions,
  ) {
    this.chunkBytes = Math.max(4096, options.chunkBytes ?? DEFAULT_CHUNK_BYTES);
    this.endStream = options.endStream ?? true;
    this.chunk = Buffer.allocUnsafe(this.chunkBytes);
    out.on("error", (error: Error) => this.fail(error));
  }

  /** Makes room for `bytes` more in the chunk; returns a promise when the caller should wait. */
  protected reserve(bytes: number): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error("capture writer already closed");
    if (this.used + bytes <= this.chunk.length) return undefined;
    const wait = this.handOffChunk();
    if (bytes > this.chunk.length) this.chunk = Buffer.allocUnsafe(bytes);
    return wait;
  }

  protected put16(value: number, at: number): void {
    if (this.littleEndian) this.chunk.writeUInt16LE(value, at);
    else this.chunk.writeUInt16BE(value, at);
  }

  protected put32(value: number, at: number): void {
    if (this.littleEndian) this.chunk.writeUInt32LE(value, at);
    else this.chunk.writeUInt32BE(value, at);
  }

  /** Writes a number below 2^53 as an unsigned 64-bit field in the current byte order. */
  protected put64(value: number, at: number): void {
    const high = Math.floor(value / TWO_POW_32);
    const low = value - high * TWO_POW_32;
    this.put32(this.littleEndian ? low : high, at);
    this.put32(this.littleEndian ? high : low, at + 4);
  }

  protected copyIn(bytes: Uint8Array, offset: number, length: number, at: number): void {
    copyBytes.call(bytes, this.chunk, at, offset, offset + length);
  }

  private handOffChunk(): Promise<void> | undefined {
    if (this.used > 0) {
      const full = this.chunk;
      this.chunksInFlight++;
      this.handedOff += this.used;
      this.out.write(full.subarray(0, this.used), (error?: Error | null) => {
        this.chunksInFlight--;
        if (error) this.fail(error);
        if (full.length === this.chunkBytes) this.spareChunks.push(full);
        this.wakeIfRoom();
      });
      this.chunk = this.spareChunks.pop() ?? Buffer.allocUnsafe(this.chunkBytes);
      this.used = 0;
    }
    return this.chunksInFlight >= MAX_CHUNKS_IN_FLIGHT
      ? this.waitUntilInFlightAtMost(MAX_CHUNKS_IN_FLIGHT - 1)
      : undefined;
  }

  private waitUntilInFlightAtMost(limit: number): Promise<void> {
    if (this.chunksInFlight <= limit || this.failure) return Promise.resolve();
    this.waitLimit = limit;
    return new Promise((resolve) => {
      this.wakeWaiter = resolve;
    });
  }

  private wakeIfRoom(): void {
    if (this.wakeWaiter && (this.chunksInFlight <= this.waitLimit || this.failure)) {
      const wake = this.wakeWaiter;
      this.wakeWaiter = null;
      wake();
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.wakeIfRoom();
  }

  /** Hands everything buffered to the stream and waits until the stream has taken it. */
  async flush(): Promise<void> {
    if (this.failure) throw this.failure;
    this.handOffChunk();
    await this.waitUntilInFlightAtMost(0);
    if (this.failure) throw this.failure;
  }

  /** Flushes, then ends the stream unless `endStream: false` was given. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    if (this.endStream) {
      await new Promise<void>((resolve) => this.out.end(() => resolve()));
      if (this.failure) throw this.failure;
    }
  }
}

export interface PcapWriterOptions extends ChunkedWriterOptions {
  /** Nanosecond magic (0xa1b23c4d) instead of microsecond (0xa1b2c3d4). Default false. */
  nanosecond?: boolean;
  /** LINKTYPE_* of every record (default 1, Ethernet). */
  linkType?: number;
  /** Snapshot length in the header; longer records are cut to it (default 262144). */
  snaplen?: number;
  /** Byte order of the file (default little). */
  byteOrder?: ByteOrder;
}

/** Classic libpcap format. */
export class PcapWriter extends ChunkedCaptureWriter {
  readonly nanosecond: boolean;
  readonly linkType: number;
  readonly snaplen: number;

  constructor(out: Writable, options: PcapWriterOptions = {}) {
    super(out, options);
    this.nanosecond = options.nanosecond ?? false;
    this.linkType = options.linkType ?? 1;
    this.snaplen = options.snaplen ?? 262144;
    if (!Number.isInteger(this.snaplen) || this.snaplen < 1 || this.snaplen > MAX_UINT32)
      throw new RangeError(`snaplen ${this.snaplen} is not within 1..2^32-1`);
    this.littleEndian = (options.byteOrder ?? "little") === "little";
    this.reserve(24);
    this.put32(this.nanosecond ? 0xa1b23c4d : 0xa1b2c3d4, 0);
    this.put16(2, 4);
    this.put16(4, 6);
    this.put32(0, 8); // thiszone
    this.put32(0, 12); // sigfigs
    this.put32(this.snaplen, 16);
    this.put32(this.linkType, 20);
    this.used = 24;
  }

  /**
   * Appends one record (bytes[offset, offset+length), cut to the snaplen). `interfaceId` is accepted
   * for symmetry with PcapngWriter and must be 0. Returns a promise only when the caller should wait.
   */
  writeRecord(
    tsSec: number,
    tsNsec: number,
    bytes: Uint8Array,
    offset: number,
    length: number,
    origlen: number = length,
    interfaceId = 0,
  ): Promise<void> | undefined {
    checkRecordArguments(tsSec, tsNsec, bytes, offset, length, origlen);
    if (tsSec > MAX_UINT32) throw new RangeError(`timestamp seconds ${tsSec} do not fit classic pcap`);
    if (interfaceId !== 0) throw new RangeError(`classic pcap has one interface, not ${interfaceId}`);
    const caplen = length > this.snaplen ? this.snaplen : length;
    const wait = this.reserve(16 + caplen);
    const at = this.used;
    this.put32(tsSec, at);
    this.put32(this.nanosecond ? tsNsec : Math.floor(tsNsec / 1000), at + 4);
    this.put32(caplen, at + 8);
    this.put32(origlen, at + 12);
    this.copyIn(bytes, offset, caplen, at + 16);
    this.used = at + 16 + caplen;
    return wait;
  }
}

/** if_tsresol: timestamps count 10^-exponent or 2^-exponent seconds. */
export interface TimestampResolution {
  base: 10 | 2;
  exponent: number;
}

export interface PcapngInterfaceOptions {
  linkType: number;
  /** 0 means no limit (default 262144). */
  snaplen?: number;
  name?: string;
  description?: string;
  /** Written as if_tsresol when given; default microseconds (no option written). */
  tsResolution?: TimestampResolution;
  /** if_tsoffset: seconds added to every timestamp by readers (so subtracted here). Default 0. */
  tsOffsetSec?: number;
}

export interface PcapngSectionOptions {
  /** Byte order of the section (default little). */
  byteOrder?: ByteOrder;
  userApplication?: string;
  os?: string;
  hardware?: string;
  comment?: string;
  /** Interfaces described at the start of the section (default one Ethernet interface). */
  interfaces?: PcapngInterfaceOptions[];
}

export interface PcapngWriterOptions extends ChunkedWriterOptions, PcapngSectionOptions {}

/** pcapng statistics written in an ISB; absent fields are left out of the block. */
export interface PcapngInterfaceStatistics {
  received?: number;
  interfaceDropped?: number;
  filterAccepted?: number;
  osDropped?: number;
  delivered?: number;
}

const BLOCK_SHB = 0x0a0d0d0a;
const BLOCK_IDB = 1;
const BLOCK_SPB = 3;
const BLOCK_ISB = 5;
const BLOCK_EPB = 6;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;

function padded(length: number): number {
  return (length + 3) & ~3;
}

function optionBytes(value: string | undefined): number {
  return value === undefined ? 0 : 4 + padded(Buffer.byteLength(value, "utf8"));
}

/** pcapng, with several interfaces per section and as many sections as wanted. */
export class PcapngWriter extends ChunkedCaptureWriter {
  /** Per interface of the current section: units per second, offset, snaplen, and how to scale ns. */
  private interfaceUnits: number[] = [];
  private interfaceOffsetSec: number[] = [];
  private interfaceSnaplen: number[] = [];
  /** Decimal resolutions up to ns divide nanoseconds by this; 0 means another path (see scaleTimestamp). */
  private interfaceNsDivisor: number[] = [];
  private interfaceResolution: TimestampResolution[] = [];
  private tsHigh = 0;
  private tsLow = 0;
  private sectionCount = 0;

  constructor(out: Writable, options: PcapngWriterOptions = {}) {
    super(out, options);
    this.startSection(options);
  }

  /** Interfaces of the current section. */
  get interfaceCount(): number {
    return this.interfaceUnits.length;
  }

  /** Sections started so far (the constructor starts the first). */
  get sections(): number {
    return this.sectionCount;
  }

  /** Writes a Section Header Block: interfaces of earlier sections no longer apply. */
  startSection(options: PcapngSectionOptions = {}): void {
    this.littleEndian = (options.byteOrder ?? "little") === "little";
    this.interfaceUnits = [];
    this.interfaceOffsetSec = [];
    this.interfaceSnaplen = [];
    this.interfaceNsDivisor = [];
    this.interfaceResolution = [];
    const optionsLength =
      optionBytes(options.comment) +
      optionBytes(options.hardware) +
      optionBytes(options.os) +
      optionBytes(options.userApplication);
    const total = 28 + (optionsLength > 0 ? optionsLength + 4 : 0);
    void this.reserve(total);
    let at = this.used;
    this.put32(BLOCK_SHB, at);
    this.put32(total, at + 4);
    this.put32(BYTE_ORDER_MAGIC, at + 8);
    this.put16(1, at + 12);
    this.put16(0, at + 14);
    this.put32(MAX_UINT32, at + 16); // section length unknown (-1)
    this.put32(MAX_UINT32, at + 20);
    at += 24;
    at = this.putStringOption(1, options.comment, at);
    at = this.putStringOption(2, options.hardware, at);
    at = this.putStringOption(3, options.os, at);
    at = this.putStringOption(4, options.userApplication, at);
    if (optionsLength > 0) at = this.putEndOfOptions(at);
    this.put32(total, at);
    this.used = at + 4;
    this.sectionCount++;
    for (const description of options.interfaces ?? [{ linkType: 1 }]) this.addInterface(description);
  }

  /** Writes an Interface Description Block; returns the interface id within the section. */
  addInterface(description: PcapngInterfaceOptions): number {
    const resolution = description.tsResolution;
    const offsetSec = description.tsOffsetSec ?? 0;
    const snaplen = description.snaplen ?? 262144;
    if (!Number.isInteger(offsetSec)) throw new RangeError(`if_tsoffset ${offsetSec} is not whole seconds`);
    if (!Number.isInteger(snaplen) || snaplen < 0 || snaplen > MAX_UINT32)
      throw new RangeError(`snaplen ${snaplen} does not fit 32 bits`);
    let units = 1e6;
    let nsDivisor = 1000;
    if (resolution) {
      const { base, exponent } = resolution;
      const maxExponent = base === 10 ? 18 : 63;
      if (
        (base !== 10 && base !== 2) ||
        !Number.isInteger(exponent) ||
        exponent < 0 ||
        exponent > maxExponent
      )
        throw new RangeError(`unsupported timestamp resolution ${base}^-${exponent}`);
      units = base ** exponent;
      nsDivisor = base === 10 && exponent <= 9 ? 10 ** (9 - exponent) : 0;
    }
    const optionsLength =
      optionBytes(description.name) +
      optionBytes(description.description) +
      (resolution ? 8 : 0) +
      (offsetSec !== 0 ? 12 : 0);
    const total = 20 + (optionsLength > 0 ? optionsLength + 4 : 0);
    void this.reserve(total);
    let at = this.used;
    this.put32(BLOCK_IDB, at);
    this.put32(total, at + 4);
    this.put16(description.linkType, at + 8);
    this.put16(0, at + 10);
    this.put32(snaplen, at + 12);
    at += 16;
    at = this.putStringOption(2, description.name, at);
    at = this.putStringOption(3, description.description, at);
    if (resolution) {
      this.put16(9, at);
      this.put16(1, at + 2);
      this.chunk.writeUInt32BE(0, at + 4);
      this.chunk[at + 4] = (resolution.base === 2 ? 0x80 : 0) | resolution.exponent;
      at += 8;
    }
    if (offsetSec !== 0) {
      this.put16(14, at);
      this.put16(8, at + 2);
      if (this.littleEndian) this.chunk.writeBigInt64LE(BigInt(offsetSec), at + 4);
      else this.chunk.writeBigInt64BE(BigInt(offsetSec), at + 4);
      at += 12;
    }
    if (optionsLength > 0) at = this.putEndOfOptions(at);
    this.put32(total, at);
    this.used = at + 4;
    this.interfaceUnits.push(units);
    this.interfaceOffsetSec.push(offsetSec);
    this.interfaceSnaplen.push(snaplen);
    this.interfaceNsDivisor.push(nsDivisor);
    this.interfaceResolution.push(resolution ?? { base: 10, exponent: 6 });
    return this.interfaceUnits.length - 1;
  }

  /** Appends an Enhanced Packet Block on `interfaceId` (bytes cut to the interface's snaplen). */
  writeRecord(
    tsSec: number,
    tsNsec: number,
    bytes: Uint8Array,
    offset: number,
    length: number,
    origlen: number = length,
    interfaceId = 0,
  ): Promise<void> | undefined {
    checkRecordArguments(tsSec, tsNsec, bytes, offset, length, origlen);
    this.scaleTimestamp(interfaceId, tsSec, tsNsec);
    const snaplen = this.interfaceSnaplen[interfaceId];
    const caplen = snaplen !== 0 && length > snaplen ? snaplen : length;
    const total = 32 + padded(caplen);
    const wait = this.reserve(total);
    const at = this.used;
    this.put32(BLOCK_EPB, at);
    this.put32(total, at + 4);
    this.put32(interfaceId, at + 8);
    this.put32(this.tsHigh, at + 12);
    this.put32(this.tsLow, at + 16);
    this.put32(caplen, at + 20);
    this.put32(origlen, at + 24);
    this.copyIn(bytes, offset, caplen, at + 28);
    this.chunk.fill(0, at + 28 + caplen, at + total - 4);
    this.put32(total, at + total - 4);
    this.used = at + total;
    return wait;
  }

  /** Appends a Simple Packet Block (interface 0 of the section; no timestamp). */
  writeSimplePacket(
    bytes: Uint8Array,
    offset: number,
    length: number,
    origlen: number = length,
  ): Promise<void> | undefined {
    checkRecordArguments(0, 0, bytes, offset, length, origlen);
    if (this.interfaceUnits.length === 0) throw new RangeError("a simple packet block needs interface 0");
    const snaplen = this.interfaceSnaplen[0];
    const caplen = snaplen !== 0 && length > snaplen ? snaplen : length;
    const total = 16 + padded(caplen);
    const wait = this.reserve(total);
    const at = this.used;
    this.put32(BLOCK_SPB, at);
    this.put32(total, at + 4);
    this.put32(origlen, at + 8);
    this.copyIn(bytes, offset, caplen, at + 12);
    this.chunk.fill(0, at + 12 + caplen, at + total - 4);
    this.put32(total, at + total - 4);
    this.used = at + total;
    return wait;
  }

  /** Appends an Interface Statistics Block. */
  writeInterfaceStatistics(
    interfaceId: number,
    tsSec: number,
    tsNsec: number,
    statistics: PcapngInterfaceStatistics,
  ): Promise<void> | undefined {
    checkRecordArguments(tsSec, tsNsec, Buffer.alloc(0), 0, 0, 0);
    this.scaleTimestamp(interfaceId, tsSec, tsNsec);
    const fields: [number, number | undefined][] = [
      [4, statistics.received],
      [5, statistics.interfaceDropped],
      [6, statistics.filterAccepted],
      [7, statistics.osDropped],
      [8, statistics.delivered],
    ];
    const present = fields.filter(([, value]) => value !== undefined) as [number, number][];
    for (const [, value] of present)
      if (!Number.isSafeInteger(value) || value < 0)
        throw new RangeError(`statistic ${value} is not a count`);
    const total = 24 + (present.length > 0 ? present.length * 12 + 4 : 0);
    const wait = this.reserve(total);
    let at = this.used;
    this.put32(BLOCK_ISB, at);
    this.put32(total, at + 4);
    this.put32(interfaceId, at + 8);
    this.put32(this.tsHigh, at + 12);
    this.put32(this.tsLow, at + 16);
    at += 20;
    for (const [code, value] of present) {
      this.put16(code, at);
      this.put16(8, at + 2);
      this.put64(value, at + 4);
      at += 12;
    }
    if (present.length > 0) at = this.putEndOfOptions(at);
    this.put32(total, at);
    this.used = at + 4;
    return wait;
  }

  /** Sets tsHigh/tsLow to the timestamp in the interface's units, less its offset. */
  private scaleTimestamp(interfaceId: number, tsSec: number, tsNsec: number): void {
    if (!Number.isInteger(interfaceId) || interfaceId < 0 || interfaceId >= this.interfaceUnits.length)
      throw new RangeError(`interface ${interfaceId} is not described in this section`);
    const relativeSec = tsSec - this.interfaceOffsetSec[interfaceId];
    if (relativeSec < 0) throw new RangeError(`timestamp ${tsSec} s is before the interface's if_tsoffset`);
    const units = this.interfaceUnits[interfaceId];
    const nsDivisor = this.interfaceNsDivisor[interfaceId];
    const binarySmall = this.interfaceResolution[interfaceId].base === 2 && units <= 1 << 23;
    if ((nsDivisor !== 0 || binarySmall) && relativeSec < TWO_POW_32) {
      // Exact in doubles: every partial product below stays under 2^53.
      const fraction = nsDivisor !== 0 ? Math.floor(tsNsec / nsDivisor) : Math.floor((tsNsec * units) / 1e9);
      const secondsLow16 = relativeSec % 65536;
      const upper = ((relativeSec - secondsLow16) / 65536) * units;
      const lower = secondsLow16 * units + fraction;
      const upperLow16 = upper % 65536;
      const low = upperLow16 * 65536 + lower;
      const carry = Math.floor(low / TWO_POW_32);
      this.tsHigh = (upper - upperLow16) / 65536 + carry;
      this.tsLow = low - carry * TWO_POW_32;
    } else {
      // Finer resolutions are rare: exactness matters more than allocation here.
      const scaled = BigInt(relativeSec) * BigInt(units) + (BigInt(tsNsec) * BigInt(units)) / 1_000_000_000n;
      if (scaled >= 1n << 64n)
        throw new RangeError(`timestamp ${tsSec} s overflows 64 bits at this resolution`);
      this.tsHigh = Number(scaled >> 32n);
      this.tsLow = Number(scaled & 0xffffffffn);
    }
    if (this.tsHigh > MAX_UINT32)
      throw new RangeError(`timestamp ${tsSec} s overflows 64 bits at this resolution`);
  }

  private putStringOption(code: number, value: string | undefined, at: number): number {
    if (value === undefined) return at;
    const length = Buffer.byteLength(value, "utf8");
    this.put16(code, at);
    this.put16(length, at + 2);
    this.chunk.write(value, at + 4, "utf8");
    this.chunk.fill(0, at + 4 + length, at + 4 + padded(length));
    return at + 4 + padded(length);
  }

  private putEndOfOptions(at: number): number {
    this.put16(0, at);
    this.put16(0, at + 2);
    return at + 4;
  }
}

/** Either writer, as the synthetic generator and tests use them. */
export type CaptureWriter = PcapWriter | PcapngWriter;
