/**
 * pcapng reader: any number of sections (each with its own byte order and interfaces), enhanced,
 * simple and obsolete packet blocks, interface statistics; other blocks are skipped.
 */
import { BufferedCaptureReader, MAX_RECORD_BYTES, type ByteInput } from "./bytes.js";
import type { CaptureInterface, InterfaceStatistics } from "./source.js";
import { TimestampConverter, unitsPerSecondFromTsresol } from "./timestamp.js";

export const SECTION_HEADER_BLOCK = 0x0a0d0d0a;
const INTERFACE_DESCRIPTION_BLOCK = 1;
const OBSOLETE_PACKET_BLOCK = 2;
const SIMPLE_PACKET_BLOCK = 3;
const INTERFACE_STATISTICS_BLOCK = 5;
const ENHANCED_PACKET_BLOCK = 6;
export const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
/** A section header block with no options. */
export const MIN_SECTION_HEADER_BYTES = 28;
const MIN_BLOCK_BYTES = 12;
/** Enhanced and obsolete packet blocks: 28 bytes of header fields and the trailing length. */
const MIN_PACKET_BLOCK_BYTES = 32;
/** Type, length, original length and the trailing length. */
const MIN_SIMPLE_PACKET_BLOCK_BYTES = 16;
/**
 * Interfaces kept per input, over all sections: each costs a few hundred bytes, and a hostile file
 * of nothing but 20-byte interface blocks must not grow memory with its size. Real captures have a
 * handful; merges of many files, a few per file.
 */
export const MAX_INTERFACES = 65536;
/** 9999-12-31T23:59:59Z: the last second an ISO 8601 date of four-digit years can name. */
export const MAX_TIMESTAMP_SEC = 253402300799;

const OPT_END = 0;
const IF_NAME = 2;
const IF_DESCRIPTION = 3;
const IF_TSRESOL = 9;
const IF_TSOFFSET = 14;
const ISB_STARTTIME = 2;
const ISB_ENDTIME = 3;
const ISB_IFRECV = 4;
const ISB_IFDROP = 5;
const ISB_FILTERACCEPT = 6;
const ISB_OSDROP = 7;
const ISB_USRDELIV = 8;

const TWO_POW_32 = 4294967296;

const BLOCK_NAMES: Record<number, string> = {
  [SECTION_HEADER_BLOCK]: "section header",
  [INTERFACE_DESCRIPTION_BLOCK]: "interface description",
  [OBSOLETE_PACKET_BLOCK]: "packet",
  [SIMPLE_PACKET_BLOCK]: "simple packet",
  [INTERFACE_STATISTICS_BLOCK]: "interface statistics",
  [ENHANCED_PACKET_BLOCK]: "enhanced packet",
};

function readU32(buf: Buffer, pos: number, littleEndian: boolean): number {
  return littleEndian
    ? (buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16) | (buf[pos + 3] << 24)) >>> 0
    : ((buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]) >>> 0;
}

function readU16(buf: Buffer, pos: number, littleEndian: boolean): number {
  return littleEndian ? buf[pos] | (buf[pos + 1] << 8) : (buf[pos] << 8) | buf[pos + 1];
}

/** Byte order of a section from the byte-order magic that follows the SHB's length, or null. */
export function sectionByteOrder(buf: Buffer, pos: number): boolean | null {
  const magic = buf.readUInt32LE(pos + 8);
  if (magic === BYTE_ORDER_MAGIC) return true;
  if (magic === 0x4d3c2b1a) return false;
  return null;
}

function isPacketBlock(type: number): boolean {
  return type === ENHANCED_PACKET_BLOCK || type === SIMPLE_PACKET_BLOCK || type === OBSOLETE_PACKET_BLOCK;
}

function trimText(bytes: Buffer): string {
  return bytes.toString("utf8").replace(/\0+$/, "");
}

export class PcapngReader extends BufferedCaptureReader {
  /** Sections met so far. */
  sections = 0;
  /** Interface description blocks past MAX_INTERFACES: numbered, not kept. */
  interfacesNotKept = 0;
  /** Sum of the drops_count fields of obsolete packet blocks (packets lost before each, per the writer). */
  packetBlockDrops = 0;
  private littleEndian = true;
  /** Global index of the current section's interface 0, and how many it has defined. */
  private sectionInterfaceBase = 0;
  private sectionInterfaceCount = 0;
  /** One per entry of `interfaces`. */
  private readonly converters: TimestampConverter[] = [];
  private readonly linkTypes: number[] = [];
  /** Simple packet blocks carry no timestamp: they take the previous packet's of the section. */
  private sectionLastSec = 0;
  private sectionLastNsec = 0;

  constructor(name: string, input: ByteInput, compressed: boolean) {
    super(name, input, "pcapng", compressed, MIN_SECTION_HEADER_BYTES);
  }

  next(): boolean {
    if (this.finished) return false;
    const input = this.input;
    for (;;) {
      const buf = input.buffer;
      const pos = input.start;
      const available = input.end - pos;
      if (available < MIN_BLOCK_BYTES) {
        this.wantedBytes = MIN_BLOCK_BYTES;
        return false;
      }
      const blockOffset = input.bufferInputOffset + pos;
      let littleEndian = this.littleEndian;
      const isSectionHeader =
        buf[pos] === 0x0a && buf[pos + 1] === 0x0d && buf[pos + 2] === 0x0d && buf[pos + 3] === 0x0a;
      if (isSectionHeader) {
        const order = sectionByteOrder(buf, pos);
        if (order === null) {
          return this.stop(
            blockOffset,
            this.packetsSeen + 1,
            `section header block with an unknown byte-order magic 0x${buf.toString("hex", pos + 8, pos + 12)}: ` +
              `the file is damaged from here on`,
          );
        }
        littleEndian = order;
      }
      const type = readU32(buf, pos, littleEndian);
      const length = readU32(buf, pos + 4, littleEndian);
      if (length < MIN_BLOCK_BYTES || length % 4 !== 0 || length > MAX_RECORD_BYTES) {
        const why =
          length > MAX_RECORD_BYTES
            ? `more than the ${MAX_RECORD_BYTES} accepted`
            : length < MIN_BLOCK_BYTES
              ? `less than the minimum ${MIN_BLOCK_BYTES}`
              : "not a multiple of 4";
        return this.stop(
          blockOffset,
          this.packetsSeen + 1,
          `${this.blockName(type)} block claims a total length of ${length} bytes (${why}): ` +
            `the file is damaged from here on`,
        );
      }
      if (available < length) {
        this.wantedBytes = length;
        return false;
      }
      const trailingLength = readU32(buf, pos + length - 4, littleEndian);
      if (trailingLength !== length) {
        return this.stop(
          blockOffset,
          this.packetsSeen + 1,
          `${this.blockName(type)} block's trailing length ${trailingLength} differs from its leading ` +
            `length ${length}: the file is damaged from here on`,
        );
      }
      // Consumed before parsing: the record still points into `buf`, valid until the next refill.
      input.start = pos + length;
      this.wantedBytes = MIN_BLOCK_BYTES;
      switch (type) {
        case ENHANCED_PACKET_BLOCK:
          if (this.readPacket(buf, pos, length, blockOffset, type)) return true;
          break;
        case SIMPLE_PACKET_BLOCK:
          if (this.readSimplePacket(buf, pos, length, blockOffset)) return true;
          break;
        case OBSOLETE_PACKET_BLOCK:
          if (this.readPacket(buf, pos, length, blockOffset, type)) return true;
          break;
        case INTERFACE_DESCRIPTION_BLOCK:
          this.readInterfaceDescription(buf, pos, length, blockOffset);
          break;
        case INTERFACE_STATISTICS_BLOCK:
          this.readInterfaceStatistics(buf, pos, length, blockOffset);
          break;
        case SECTION_HEADER_BLOCK:
          if (!this.readSectionHeader(buf, pos, length, blockOffset, littleEndian)) return false;
          break;
        default:
          // Name resolution, decryption secrets, custom and unknown blocks carry no packets.
          break;
      }
    }
  }

  /** Enhanced (EPB) and obsolete (PB) packet blocks: they differ only in the interface id's width. */
  private readPacket(buf: Buffer, pos: number, length: number, blockOffset: number, type: number): boolean {
    const littleEndian = this.littleEndian;
    const packetNumber = ++this.packetsSeen;
    if (length < MIN_PACKET_BLOCK_BYTES) {
      this.warn(
        blockOffset,
        packetNumber,
        `packet ${packetNumber}: ${this.blockName(type)} block of ${length} bytes is shorter than the minimum ${MIN_PACKET_BLOCK_BYTES}: skipped`,
      );
      return false;
    }
    const localId =
      type === ENHANCED_PACKET_BLOCK
        ? readU32(buf, pos + 8, littleEndian)
        : readU16(buf, pos + 8, littleEndian);
    const caplen = readU32(buf, pos + 20, littleEndian);
    if (type === OBSOLETE_PACKET_BLOCK) this.packetBlockDrops += readU16(buf, pos + 10, littleEndian);
    if (28 + caplen + 4 > length) {
      this.warn(
        blockOffset,
        packetNumber,
        `packet ${packetNumber} claims ${caplen} captured bytes but its block holds only ${length - 32}: skipped`,
      );
      return false;
    }
    if (localId >= this.sectionInterfaceCount) {
      this.warnUndefinedInterface(blockOffset, packetNumber, localId);
      return false;
    }
    const interfaceId = this.sectionInterfaceBase + localId;
    if (interfaceId >= this.interfaces.length) {
      this.warnInterfaceNotKept(blockOffset, packetNumber, localId);
      return false;
    }
    const converter = this.converters[interfaceId];
    converter.convert(readU32(buf, pos + 12, littleEndian), readU32(buf, pos + 16, littleEndian));
    if (!(converter.sec >= 0 && converter.sec <= MAX_TIMESTAMP_SEC)) {
      // A coarse if_tsresol or a wild if_tsoffset: no date anything downstream could print.
      this.warn(
        blockOffset,
        packetNumber,
        `packet ${packetNumber} has a timestamp of ${converter.sec} s since 1970, outside the years 1970 to 9999: skipped`,
      );
      return false;
    }
    this.deliver(buf, pos + 28, caplen, readU32(buf, pos + 24, littleEndian), converter.sec, converter.nsec);
    const record = this.record;
    record.interfaceId = interfaceId;
    record.linkType = this.linkTypes[interfaceId];
    record.recordNumber = packetNumber;
    record.fileOffset = blockOffset;
    return true;
  }

  private readSimplePacket(buf: Buffer, pos: number, length: number, blockOffset: number): boolean {
    const packetNumber = ++this.packetsSeen;
    if (length < MIN_SIMPLE_PACKET_BLOCK_BYTES) {
      // Its captured length would come out negative.
      this.warn(
        blockOffset,
        packetNumber,
        `packet ${packetNumber}: simple packet block of ${length} bytes is shorter than the minimum ${MIN_SIMPLE_PACKET_BLOCK_BYTES}: skipped`,
      );
      return false;
    }
    if (this.sectionInterfaceCount === 0) {
      this.warnUndefinedInterface(blockOffset, packetNumber, 0);
      return false;
    }
    const interfaceId = this.sectionInterfaceBase;
    if (interfaceId >= this.interfaces.length) {
      this.warnInterfaceNotKept(blockOffset, packetNumber, 0);
      return false;
    }
    const origlen = readU32(buf, pos + 8, this.littleEndian);
    const snaplen = this.interfaces[interfaceId].snaplen;
    let caplen = Math.min(origlen, length - 16);
    if (snaplen > 0 && snaplen < caplen) caplen = snaplen;
    this.deliver(buf, pos + 12, caplen, origlen, this.sectionLastSec, this.sectionLastNsec);
    const record = this.record;
    record.interfaceId = interfaceId;
    record.linkType = this.linkTypes[interfaceId];
    record.recordNumber = packetNumber;
    record.fileOffset = blockOffset;
    return true;
  }

  private deliver(
    buf: Buffer,
    dataOffset: number,
    caplen: number,
    origlen: number,
    sec: number,
    nsec: number,
  ) {
    const record = this.record;
    record.data = buf;
    record.offset = dataOffset;
    record.caplen = caplen;
    record.origlen = origlen;
    record.tsSec = sec;
    record.tsNsec = nsec;
    this.sectionLastSec = sec;
    this.sectionLastNsec = nsec;
    this.noteTimestamp(sec, nsec);
  }

  private warnUndefinedInterface(blockOffset: number, packetNumber: number, localId: number): void {
    this.warn(
      blockOffset,
      packetNumber,
      `packet ${packetNumber} refers to interface ${localId}, which section ${this.sections - 1} ` +
        `does not define (it has ${this.sectionInterfaceCount}): skipped`,
    );
  }

  private warnInterfaceNotKept(blockOffset: number, packetNumber: number, localId: number): void {
    this.warn(
      blockOffset,
      packetNumber,
      `packet ${packetNumber} refers to interface ${localId} of section ${this.sections - 1}, one past the ` +
        `${MAX_INTERFACES} interfaces this reader keeps: skipped`,
    );
  }

  private readSectionHeader(
    buf: Buffer,
    pos: number,
    length: number,
    blockOffset: number,
    littleEndian: boolean,
  ): boolean {
    if (length < MIN_SECTION_HEADER_BYTES) {
      return this.stop(
        blockOffset,
        this.packetsSeen + 1,
        `section header block of ${length} bytes is shorter than the minimum ${MIN_SECTION_HEADER_BYTES}`,
      );
    }
    const major = readU16(buf, pos + 12, littleEndian);
    if (major !== 1) {
      return this.stop(
        blockOffset,
        this.packetsSeen + 1,
        `section header block has pcapng version ${major}.${readU16(buf, pos + 14, littleEndian)}, ` +
          `which this reader does not understand`,
      );
    }
    this.littleEndian = littleEndian;
    this.sections++;
    this.sectionInterfaceBase = this.interfaces.length;
    this.sectionInterfaceCount = 0;
    this.sectionLastSec = 0;
    this.sectionLastNsec = 0;
    return true;
  }

  private readInterfaceDescription(buf: Buffer, pos: number, length: number, blockOffset: number): void {
    const littleEndian = this.littleEndian;
    if (length < 20) {
      this.warn(
        blockOffset,
        this.packetsSeen + 1,
        `interface description block of ${length} bytes is too short`,
      );
      return;
    }
    if (this.interfaces.length >= MAX_INTERFACES) {
      // The id is taken (later ones keep their numbers); the interface and its packets are not kept.
      if (this.interfacesNotKept++ === 0) {
        this.warn(
          blockOffset,
          this.packetsSeen + 1,
          `interface ${this.sectionInterfaceCount} of section ${this.sections - 1} is one more than the ` +
            `${MAX_INTERFACES} interfaces this reader keeps: it, any further one and their packets are skipped`,
        );
      }
      this.sectionInterfaceCount++;
      return;
    }
    const described: CaptureInterface = {
      sectionIndex: this.sections - 1,
      localId: this.sectionInterfaceCount,
      linkType: readU16(buf, pos + 8, littleEndian),
      snaplen: readU32(buf, pos + 12, littleEndian),
      unitsPerSecond: 1_000_000,
      tsOffsetSec: 0,
    };
    let exactUnits: bigint | undefined;
    this.forEachOption(buf, pos + 16, pos + length - 4, blockOffset, (code, at, size) => {
      if (code === IF_NAME) described.name = trimText(buf.subarray(at, at + size));
      else if (code === IF_DESCRIPTION) described.description = trimText(buf.subarray(at, at + size));
      else if (code === IF_TSRESOL && size >= 1) {
        const resolution = unitsPerSecondFromTsresol(buf[at]);
        described.unitsPerSecond = resolution.unitsPerSecond;
        exactUnits = resolution.exact;
      } else if (code === IF_TSOFFSET && size >= 8) {
        described.tsOffsetSec = this.readI64(buf, at);
      }
    });
    this.interfaces.push(described);
    this.linkTypes.push(described.linkType);
    this.converters.push(new TimestampConverter(described.unitsPerSecond, described.tsOffsetSec, exactUnits));
    this.sectionInterfaceCount++;
  }

  private readInterfaceStatistics(buf: Buffer, pos: number, length: number, blockOffset: number): void {
    const littleEndian = this.littleEndian;
    if (length < 24) {
      this.warn(
        blockOffset,
        this.packetsSeen + 1,
        `interface statistics block of ${length} bytes is too short`,
      );
      return;
    }
    const localId = readU32(buf, pos + 8, littleEndian);
    if (localId >= this.sectionInterfaceCount) {
      this.warn(
        blockOffset,
        this.packetsSeen + 1,
        `interface statistics for interface ${localId}, which section ${this.sections - 1} does not define: skipped`,
      );
      return;
    }
    const interfaceId = this.sectionInterfaceBase + localId;
    if (interfaceId >= this.interfaces.length) return;
    const converter = this.converters[interfaceId];
    converter.convert(readU32(buf, pos + 12, littleEndian), readU32(buf, pos + 16, littleEndian));
    const statistics: InterfaceStatistics = { tsSec: converter.sec, tsNsec: converter.nsec };
    this.forEachOption(buf, pos + 20, pos + length - 4, blockOffset, (code, at, size) => {
      if (size < 8) return;
      const value = this.readU64(buf, at);
      if (code === ISB_IFRECV) statistics.received = value;
      else if (code === ISB_IFDROP) statistics.interfaceDropped = value;
      else if (code === ISB_FILTERACCEPT) statistics.filterAccepted = value;
      else if (code === ISB_OSDROP) statistics.osDropped = value;
      else if (code === ISB_USRDELIV) statistics.delivered = value;
      else if (code === ISB_STARTTIME || code === ISB_ENDTIME) {
        // Kept out of InterfaceStatistics: the block's own timestamp says when the counts were taken.
      }
    });
    this.interfaces[interfaceId].statistics = statistics;
  }

  /** Walks a block's options; a malformed option ends the walk with a warning. */
  private forEachOption(
    buf: Buffer,
    from: number,
    to: number,
    blockOffset: number,
    onOption: (code: number, at: number, size: number) => void,
  ): void {
    const littleEndian = this.littleEndian;
    let at = from;
    while (at + 4 <= to) {
      const code = readU16(buf, at, littleEndian);
      const size = readU16(buf, at + 2, littleEndian);
      if (code === OPT_END) return;
      if (at + 4 + size > to) {
        this.warn(
          blockOffset,
          this.packetsSeen + 1,
          `option ${code} at offset ${this.input.bufferInputOffset + at} runs past the end of its block: ` +
            `remaining options ignored`,
        );
        return;
      }
      onOption(code, at + 4, size);
      at += 4 + ((size + 3) & ~3);
    }
  }

  private readU64(buf: Buffer, at: number): number {
    const first = readU32(buf, at, this.littleEndian);
    const second = readU32(buf, at + 4, this.littleEndian);
    return this.littleEndian ? second * TWO_POW_32 + first : first * TWO_POW_32 + second;
  }

  private readI64(buf: Buffer, at: number): number {
    const first = readU32(buf, at, this.littleEndian);
    const second = readU32(buf, at + 4, this.littleEndian);
    return this.littleEndian ? (second | 0) * TWO_POW_32 + first : (first | 0) * TWO_POW_32 + second;
  }

  private blockName(type: number): string {
    const name = BLOCK_NAMES[type];
    return name === undefined ? `block of type 0x${type.toString(16)}` : `${name}`;
  }

  protected describeCut(available: number): string {
    const buf = this.input.buffer;
    const pos = this.input.start;
    if (available < 8) return `file ends in the middle of a block header (${available} of 8 bytes)`;
    const type = readU32(buf, pos, this.littleEndian);
    const length = readU32(buf, pos + 4, this.littleEndian);
    if (isPacketBlock(type)) {
      return `file ends in the middle of packet ${this.packetsSeen + 1} (${available} of ${length} bytes)`;
    }
    return `file ends in the middle of a ${this.blockName(type)} block (${available} of ${length} bytes)`;
  }
}
