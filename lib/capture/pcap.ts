/**
 * Classic pcap (libpcap) reader: microsecond and nanosecond magics in both byte orders, and the
 * modified (Kuznetsov) format whose record headers carry 8 more bytes.
 */
import { BufferedCaptureReader, MAX_RECORD_BYTES, type ByteInput } from "./bytes.js";
import { CaptureError, type CaptureFormat } from "./source.js";

export const PCAP_FILE_HEADER_BYTES = 24;
const RECORD_HEADER_BYTES = 16;
const MODIFIED_RECORD_HEADER_BYTES = 24;
/** libpcap's largest snapshot length; a record may exceed the file's snaplen, but not wildly. */
const LIBPCAP_MAX_SNAPLEN = 262144;

interface PcapMagic {
  littleEndian: boolean;
  format: CaptureFormat;
}

/** Recognises the first four bytes (read big-endian) of a classic pcap file, or returns null. */
export function pcapMagic(firstWord: number): PcapMagic | null {
  switch (firstWord) {
    case 0xa1b2c3d4:
      return { littleEndian: false, format: "pcap" };
    case 0xd4c3b2a1:
      return { littleEndian: true, format: "pcap" };
    case 0xa1b23c4d:
      return { littleEndian: false, format: "pcap-nsec" };
    case 0x4d3cb2a1:
      return { littleEndian: true, format: "pcap-nsec" };
    case 0xa1b2cd34:
      return { littleEndian: false, format: "pcap-modified" };
    case 0x34cdb2a1:
      return { littleEndian: true, format: "pcap-modified" };
    default:
      return null;
  }
}

function readU32(buf: Buffer, pos: number, littleEndian: boolean): number {
  return littleEndian
    ? (buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16) | (buf[pos + 3] << 24)) >>> 0
    : ((buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]) >>> 0;
}

export class PcapReader extends BufferedCaptureReader {
  readonly versionMajor: number;
  readonly versionMinor: number;
  /** FCS information from the upper bits of the header's link type field (0 when absent). */
  readonly fcsBits: number;
  private readonly littleEndian: boolean;
  private readonly recordHeaderBytes: number;
  /** Nanoseconds per unit of the header's sub-second field. */
  private readonly nanosPerFraction: number;
  private readonly fractionsPerSecond: number;
  private readonly caplenLimit: number;
  private readonly linkType: number;

  /** Reads the file header, which the caller has buffered (at least 24 bytes at `input.start`). */
  constructor(name: string, input: ByteInput, compressed: boolean) {
    const buf = input.buffer;
    const at = input.start;
    const magic = pcapMagic(buf.readUInt32BE(at));
    if (magic === null) throw new CaptureError(name, at, 0, "not a classic pcap file");
    if (input.available < PCAP_FILE_HEADER_BYTES) {
      throw new CaptureError(
        name,
        input.position,
        0,
        `file ends inside the pcap file header (${input.available} of ${PCAP_FILE_HEADER_BYTES} bytes)`,
      );
    }
    const headerBytes = magic.format === "pcap-modified" ? MODIFIED_RECORD_HEADER_BYTES : RECORD_HEADER_BYTES;
    super(name, input, magic.format, compressed, headerBytes);
    const littleEndian = magic.littleEndian;
    this.littleEndian = littleEndian;
    this.recordHeaderBytes = headerBytes;
    this.versionMajor = littleEndian ? buf.readUInt16LE(at + 4) : buf.readUInt16BE(at + 4);
    this.versionMinor = littleEndian ? buf.readUInt16LE(at + 6) : buf.readUInt16BE(at + 6);
    const snaplen = readU32(buf, at + 16, littleEndian);
    const linkField = readU32(buf, at + 20, littleEndian);
    // The link type is the low 16 bits; the bits above carry the FCS length and flags.
    this.linkType = linkField & 0xffff;
    this.fcsBits = linkField >>> 16;
    const nanos = magic.format === "pcap-nsec";
    this.fractionsPerSecond = nanos ? 1_000_000_000 : 1_000_000;
    this.nanosPerFraction = nanos ? 1 : 1000;
    this.caplenLimit = Math.min(Math.max(snaplen, LIBPCAP_MAX_SNAPLEN) * 2, MAX_RECORD_BYTES);
    this.interfaces.push({
      sectionIndex: 0,
      localId: 0,
      linkType: this.linkType,
      snaplen,
      unitsPerSecond: this.fractionsPerSecond,
      tsOffsetSec: 0,
    });
    input.start += PCAP_FILE_HEADER_BYTES;
  }

  next(): boolean {
    if (this.finished) return false;
    const input = this.input;
    const buf = input.buffer;
    const pos = input.start;
    const available = input.end - pos;
    const headerBytes = this.recordHeaderBytes;
    if (available < headerBytes) {
      this.wantedBytes = headerBytes;
      return false;
    }
    const littleEndian = this.littleEndian;
    const caplen = readU32(buf, pos + 8, littleEndian);
    if (caplen > this.caplenLimit) {
      return this.stop(
        input.bufferInputOffset + pos,
        this.packetsSeen + 1,
        `packet ${this.packetsSeen + 1} claims ${caplen} captured bytes, more than the ${this.caplenLimit} ` +
          `this file allows: the file is damaged from here on`,
      );
    }
    const total = headerBytes + caplen;
    if (available < total) {
      this.wantedBytes = total;
      return false;
    }
    let sec = readU32(buf, pos, littleEndian);
    let fraction = readU32(buf, pos + 4, littleEndian);
    if (fraction >= this.fractionsPerSecond) {
      // Some writers let the sub-second field overflow; carry it into the seconds, and say so.
      this.warn(
        input.bufferInputOffset + pos,
        this.packetsSeen + 1,
        `packet ${this.packetsSeen + 1} has a sub-second field of ${fraction}, not below ` +
          `${this.fractionsPerSecond}: carried into the seconds`,
      );
      const carry = Math.floor(fraction / this.fractionsPerSecond);
      sec += carry;
      fraction -= carry * this.fractionsPerSecond;
    }
    const nsec = fraction * this.nanosPerFraction;
    const record = this.record;
    record.data = buf;
    record.offset = pos + headerBytes;
    record.caplen = caplen;
    record.origlen = readU32(buf, pos + 12, littleEndian);
    record.tsSec = sec;
    record.tsNsec = nsec;
    record.linkType = this.linkType;
    record.recordNumber = ++this.packetsSeen;
    record.fileOffset = input.bufferInputOffset + pos;
    input.start = pos + total;
    this.wantedBytes = headerBytes;
    this.noteTimestamp(sec, nsec);
    return true;
  }

  protected describeCut(available: number): string {
    const packet = this.packetsSeen + 1;
    if (available < this.recordHeaderBytes) {
      return `file ends in the middle of the header of packet ${packet} (${available} of ${this.recordHeaderBytes} bytes)`;
    }
    const total =
      this.recordHeaderBytes + readU32(this.input.buffer, this.input.start + 8, this.littleEndian);
    return `file ends in the middle of packet ${packet} (${available} of ${total} bytes)`;
  }
}
