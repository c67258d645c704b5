/**
 * Input formats of the fuzz targets that take more than one packet, and the known length fields of
 * each (for the mutator's length edits). A finding is stored in these formats as plain bytes.
 *
 * Frame sequence (target `decode`): records of [u16 link type][u16 frame bytes][u16 bytes the wire
 * had beyond them][frame], big-endian, one after the other; a cut record ends the sequence.
 *
 * Segment sequence (targets `ftp`, `tftp`): one configuration byte, then [u8 direction][u16 bytes]
 * [payload] per segment.
 */
import type { LengthField } from "./mutate.js";

export const FRAME_HEADER_BYTES = 6;

export interface FrameRecord {
  linkType: number;
  frame: Buffer;
  /** Bytes the packet had on the wire beyond those captured. */
  cut: number;
}

export function encodeFrames(records: readonly FrameRecord[]): Buffer {
  const parts: Buffer[] = [];
  for (const { linkType, frame, cut } of records) {
    const header = Buffer.alloc(FRAME_HEADER_BYTES);
    header.writeUInt16BE(linkType & 0xffff, 0);
    header.writeUInt16BE(Math.min(frame.length, 0xffff), 2);
    header.writeUInt16BE(cut & 0xffff, 4);
    parts.push(header, frame.subarray(0, 0xffff));
  }
  return Buffer.concat(parts);
}

/** Walks a frame sequence: for each record its link type, where its frame starts, its length and cut. */
export function forEachFrame(
  input: Buffer,
  onFrame: (linkType: number, start: number, length: number, cut: number) => void,
): void {
  let at = 0;
  while (at + FRAME_HEADER_BYTES <= input.length) {
    const linkType = input.readUInt16BE(at);
    const length = input.readUInt16BE(at + 2);
    const cut = input.readUInt16BE(at + 4);
    const start = at + FRAME_HEADER_BYTES;
    if (start + length > input.length) return;
    onFrame(linkType, start, length, cut);
    at = start + length;
  }
}

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;

/** Where the network layer of a frame starts, for the link types the generators use (-1: unknown). */
function networkOffset(input: Buffer, linkType: number, start: number, length: number): number {
  switch (linkType) {
    case 1: {
      let at = start + 12;
      // Skip VLAN tags to the EtherType that names IP.
      for (let k = 0; k < 8 && at + 2 <= start + length; k++) {
        const type = input.readUInt16BE(at);
        if (type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6) return at + 2;
        at += 4;
      }
      return -1;
    }
    case 0:
    case 108:
      return start + 4;
    case 113:
      return start + 16;
    case 276:
      return start + 20;
    case 12:
    case 14:
    case 101:
    case 228:
    case 229:
      return start;
    default:
      return -1;
  }
}

/** The record headers' fields, and in each frame the IP and transport length fields. */
export function frameLengthFields(input: Buffer): LengthField[] {
  const fields: LengthField[] = [];
  forEachFrame(input, (linkType, start, length) => {
    fields.push({ offset: start - 4, width: 2, littleEndian: false });
    fields.push({ offset: start - 2, width: 2, littleEndian: false });
    const l3 = networkOffset(input, linkType, start, length);
    const end = start + length;
    if (l3 < 0 || l3 >= end) return;
    const version = input[l3] >> 4;
    if (version === 4) {
      fields.push({ offset: l3, width: 1, littleEndian: false });
      fields.push({ offset: l3 + 2, width: 2, littleEndian: false });
      fields.push({ offset: l3 + 6, width: 2, littleEndian: false });
      const l4 = l3 + (input[l3] & 0x0f) * 4;
      addTransportFields(fields, input[l3 + 9], l4, end);
    } else if (version === 6) {
      fields.push({ offset: l3 + 4, width: 2, littleEndian: false });
      // Extension headers' length bytes along the chain.
      let next = input[l3 + 6];
      let ext = l3 + 40;
      for (let k = 0; k < 24 && ext + 2 <= end; k++) {
        if (![0, 43, 44, 51, 60, 135, 139, 140].includes(next)) break;
        fields.push({ offset: ext + 1, width: 1, littleEndian: false });
        const size = next === 44 ? 8 : next === 51 ? (input[ext + 1] + 2) * 4 : (input[ext + 1] + 1) * 8;
        if (next === 44) fields.push({ offset: ext + 2, width: 2, littleEndian: false });
        next = input[ext];
        ext += size;
      }
      addTransportFields(fields, next, ext, end);
    }
  });
  return fields.filter((field) => field.offset >= 0 && field.offset + field.width <= input.length);
}

function addTransportFields(fields: LengthField[], protocol: number, l4: number, end: number): void {
  if (l4 >= end) return;
  if (protocol === 6) fields.push({ offset: l4 + 12, width: 1, littleEndian: false });
  else if (protocol === 17) fields.push({ offset: l4 + 4, width: 2, littleEndian: false });
  else if (protocol === 1 || protocol === 58) {
    // The quoted header of an ICMP error: its own length fields.
    const inner = l4 + 8;
    if (inner < end) {
      fields.push({ offset: inner, width: 1, littleEndian: false });
      fields.push({ offset: inner + 2, width: 2, littleEndian: false });
      fields.push({ offset: inner + 4, width: 2, littleEndian: false });
    }
  }
}

export interface Segment {
  /** 0: client to server, 1: server to client. */
  direction: number;
  payload: Buffer;
}

export function encodeSegments(config: number, segments: readonly Segment[]): Buffer {
  const parts: Buffer[] = [Buffer.from([config & 0xff])];
  for (const { direction, payload } of segments) {
    const header = Buffer.alloc(3);
    header[0] = direction & 0xff;
    header.writeUInt16BE(Math.min(payload.length, 0xffff), 1);
    parts.push(header, payload.subarray(0, 0xffff));
  }
  return Buffer.concat(parts);
}

export function decodeSegments(input: Buffer): { config: number; segments: Segment[] } {
  const config = input.length > 0 ? input[0] : 0;
  const segments: Segment[] = [];
  let at = 1;
  while (at + 3 <= input.length) {
    const length = input.readUInt16BE(at + 1);
    const end = Math.min(input.length, at + 3 + length);
    segments.push({ direction: input[at] & 1, payload: input.subarray(at + 3, end) });
    at = end;
  }
  return { config, segments };
}

export function segmentLengthFields(input: Buffer): LengthField[] {
  const fields: LengthField[] = [];
  let at = 1;
  while (at + 3 <= input.length) {
    fields.push({ offset: at + 1, width: 2, littleEndian: false });
    at += 3 + input.readUInt16BE(at + 1);
  }
  return fields;
}

/**
 * Length fields of a classic pcap or pcapng file: the file header's snaplen, every record header's
 * captured and original lengths, every block's leading and trailing length and a packet block's
 * captured length. Walks at most `limit` records.
 */
export function captureLengthFields(input: Buffer, limit = 256): LengthField[] {
  const fields: LengthField[] = [];
  if (input.length < 8) return fields;
  const magic = input.readUInt32BE(0);
  const pcapLittle = [0xd4c3b2a1, 0x4d3cb2a1, 0x34cdb2a1].includes(magic);
  const pcapBig = [0xa1b2c3d4, 0xa1b23c4d, 0xa1b2cd34].includes(magic);
  if (pcapLittle || pcapBig) {
    const le = pcapLittle;
    const headerBytes = magic === 0x34cdb2a1 || magic === 0xa1b2cd34 ? 24 : 16;
    fields.push({ offset: 16, width: 4, littleEndian: le });
    let at = 24;
    for (let k = 0; k < limit && at + headerBytes <= input.length; k++) {
      fields.push(
        { offset: at + 8, width: 4, littleEndian: le },
        { offset: at + 12, width: 4, littleEndian: le },
      );
      const caplen = le ? input.readUInt32LE(at + 8) : input.readUInt32BE(at + 8);
      at += headerBytes + caplen;
    }
    return fields;
  }
  if (magic !== 0x0a0d0d0a || input.length < 12) return fields;
  let le = input.readUInt32LE(8) === 0x1a2b3c4d;
  let at = 0;
  for (let k = 0; k < limit && at + 12 <= input.length; k++) {
    if (input.readUInt32BE(at) === 0x0a0d0d0a) le = input.readUInt32LE(at + 8) === 0x1a2b3c4d;
    const type = le ? input.readUInt32LE(at) : input.readUInt32BE(at);
    const length = le ? input.readUInt32LE(at + 4) : input.readUInt32BE(at + 4);
    fields.push({ offset: at + 4, width: 4, littleEndian: le });
    if (length >= 12 && at + length <= input.length)
      fields.push({ offset: at + length - 4, width: 4, littleEndian: le });
    if (type === 6 || type === 2) fields.push({ offset: at + 20, width: 4, littleEndian: le });
    if (type === 3) fields.push({ offset: at + 8, width: 4, littleEndian: le });
    if (type === 1)
      fields.push(
        { offset: at + 12, width: 4, littleEndian: le },
        { offset: at + 18, width: 2, littleEndian: le },
      );
    if (length < 12 || length % 4 !== 0) break;
    at += length;
  }
  return fields.filter((field) => field.offset + field.width <= input.length);
}
