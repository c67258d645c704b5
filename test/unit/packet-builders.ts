/** Small builders of packet bytes and CaptureRecords for the decoder tests. */
import type { CaptureRecord } from "../../lib/capture/source.js";
import { computeIpv4HeaderChecksum } from "../../lib/decode/checksum.js";

export function ipv4Address(text: string): number[] {
  return text.split(".").map(Number);
}

export function ipv6Address(text: string): number[] {
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  const groups = [
    ...headGroups,
    ...Array(8 - headGroups.length - tailGroups.length).fill("0"),
    ...tailGroups,
  ];
  return groups.flatMap((g) => {
    const v = parseInt(g, 16);
    return [v >> 8, v & 0xff];
  });
}

function u16(v: number): number[] {
  return [(v >> 8) & 0xff, v & 0xff];
}

function u32(v: number): number[] {
  return [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}

export interface Ipv4Fields {
  src?: string;
  dst?: string;
  protocol?: number;
  id?: number;
  ttl?: number;
  tos?: number;
  dontFragment?: boolean;
  moreFragments?: boolean;
  /** In bytes (multiple of 8). */
  fragmentOffset?: number;
  options?: number[];
  /** Overrides the computed total length. */
  totalLength?: number;
  /** Overrides the IHL nibble. */
  ihl?: number;
  version?: number;
  badChecksum?: boolean;
}

export function ipv4(fields: Ipv4Fields, payload: number[] | Buffer = []): Buffer {
  const options = fields.options ?? [];
  const headerLength = 20 + options.length;
  const ihl = fields.ihl ?? headerLength / 4;
  const total = fields.totalLength ?? headerLength + payload.length;
  const flags = (fields.dontFragment ? 0x4000 : 0) | (fields.moreFragments ? 0x2000 : 0);
  const header = Buffer.from([
    ((fields.version ?? 4) << 4) | (ihl & 0x0f),
    fields.tos ?? 0,
    ...u16(total),
    ...u16(fields.id ?? 0x1234),
    ...u16(flags | ((fields.fragmentOffset ?? 0) >> 3)),
    fields.ttl ?? 64,
    fields.protocol ?? 6,
    0,
    0,
    ...ipv4Address(fields.src ?? "10.0.0.1"),
    ...ipv4Address(fields.dst ?? "10.0.0.2"),
    ...options,
  ]);
  if (headerLength >= 20 && (ihl & 0x0f) * 4 === headerLength) {
    const checksum = computeIpv4HeaderChecksum(header, 0, headerLength) ^ (fields.badChecksum ? 0xffff : 0);
    header[10] = checksum >> 8;
    header[11] = checksum & 0xff;
  }
  return Buffer.concat([header, Buffer.from(payload)]);
}

export interface Ipv6Fields {
  src?: string;
  dst?: string;
  nextHeader?: number;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  payloadLength?: number;
  version?: number;
}

export function ipv6(fields: Ipv6Fields, payload: number[] | Buffer = []): Buffer {
  const tc = fields.trafficClass ?? 0;
  const flow = fields.flowLabel ?? 0;
  return Buffer.concat([
    Buffer.from([
      ((fields.version ?? 6) << 4) | (tc >> 4),
      ((tc & 0x0f) << 4) | ((flow >> 16) & 0x0f),
      ...u16(flow & 0xffff),
      ...u16(fields.payloadLength ?? payload.length),
      fields.nextHeader ?? 6,
      fields.hopLimit ?? 64,
      ...ipv6Address(fields.src ?? "2001:db8::1"),
      ...ipv6Address(fields.dst ?? "2001:db8::2"),
    ]),
    Buffer.from(payload),
  ]);
}

/** An IPv6 extension header with `length8` 8-byte units after the first 8 (AH: pass its own length byte). */
export function extensionHeader(nextHeader: number, lengthByte: number, totalBytes: number): number[] {
  const bytes = Array(totalBytes).fill(0);
  bytes[0] = nextHeader;
  bytes[1] = lengthByte;
  return bytes;
}

export function fragmentHeader(nextHeader: number, offset: number, more: boolean, id: number): number[] {
  return [nextHeader, 0, ...u16(offset | (more ? 1 : 0)), ...u32(id)];
}

export interface TcpFields {
  srcPort?: number;
  dstPort?: number;
  seq?: number;
  ack?: number;
  flags?: number;
  window?: number;
  urgent?: number;
  checksum?: number;
  options?: number[];
  /** Overrides the data offset nibble. */
  dataOffset?: number;
}

export function tcp(fields: TcpFields, payload: number[] = []): number[] {
  const options = fields.options ?? [];
  const padded = [...options, ...Array((4 - (options.length % 4)) % 4).fill(0)];
  const dataOffset = fields.dataOffset ?? (20 + padded.length) / 4;
  return [
    ...u16(fields.srcPort ?? 1234),
    ...u16(fields.dstPort ?? 80),
    ...u32(fields.seq ?? 1000),
    ...u32(fields.ack ?? 0),
    dataOffset << 4,
    fields.flags ?? 0x02,
    ...u16(fields.window ?? 65535),
    ...u16(fields.checksum ?? 0),
    ...u16(fields.urgent ?? 0),
    ...padded,
    ...payload,
  ];
}

export function udp(srcPort: number, dstPort: number, payload: number[] = [], length?: number): number[] {
  return [...u16(srcPort), ...u16(dstPort), ...u16(length ?? 8 + payload.length), 0, 0, ...payload];
}

export function icmp(
  type: number,
  code: number,
  rest: number[] = [0, 0, 0, 0],
  payload: number[] | Buffer = [],
): number[] {
  return [type, code, 0, 0, ...rest, ...payload];
}

export function echoRest(id: number, seq: number): number[] {
  return [...u16(id), ...u16(seq)];
}

export function ethernet(
  etherType: number,
  payload: number[] | Buffer,
  vlans: [number, number][] = [],
): Buffer {
  const tags = vlans.flatMap(([tpid, vid]) => [...u16(tpid), ...u16(vid)]);
  // After the tags, the type of what follows (the first tag's TPID goes in the MAC header's type field).
  const header = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  if (vlans.length === 0)
    return Buffer.concat([Buffer.from([...header, ...u16(etherType)]), Buffer.from(payload)]);
  const out: number[] = [...header, ...tags.slice(0, 2)];
  for (let i = 0; i < vlans.length; i++) {
    out.push(...u16(vlans[i][1]));
    out.push(...u16(i + 1 < vlans.length ? vlans[i + 1][0] : etherType));
  }
  return Buffer.concat([Buffer.from(out), Buffer.from(payload)]);
}

export function sll(packetType: number, protocol: number, payload: number[] | Buffer): Buffer {
  return Buffer.concat([
    Buffer.from([...u16(packetType), ...u16(1), ...u16(6), 0, 1, 2, 3, 4, 5, 0, 0, ...u16(protocol)]),
    Buffer.from(payload),
  ]);
}

export function sll2(
  packetType: number,
  protocol: number,
  ifIndex: number,
  payload: number[] | Buffer,
): Buffer {
  return Buffer.concat([
    Buffer.from([...u16(protocol), 0, 0, ...u32(ifIndex), ...u16(1), packetType, 6, 0, 1, 2, 3, 4, 5, 0, 0]),
    Buffer.from(payload),
  ]);
}

export function loopback(family: number, littleEndian: boolean, payload: number[] | Buffer): Buffer {
  const header = Buffer.alloc(4);
  if (littleEndian) header.writeUInt32LE(family);
  else header.writeUInt32BE(family);
  return Buffer.concat([header, Buffer.from(payload)]);
}

export interface RecordOptions {
  caplen?: number;
  origlen?: number;
  tsSec?: number;
  tsNsec?: number;
  /** Bytes placed before the frame in the buffer, to check offsets are honoured. */
  lead?: number;
  recordNumber?: number;
}

export function record(linkType: number, frame: Buffer, options: RecordOptions = {}): CaptureRecord {
  const lead = options.lead ?? 3;
  const data = Buffer.concat([Buffer.alloc(lead, 0xee), frame, Buffer.alloc(5, 0xee)]);
  const caplen = options.caplen ?? frame.length;
  return {
    data,
    offset: lead,
    caplen,
    origlen: options.origlen ?? Math.max(caplen, frame.length),
    tsSec: options.tsSec ?? 1_700_000_000,
    tsNsec: options.tsNsec ?? 0,
    linkType,
    interfaceId: 0,
    inputIndex: 0,
    recordNumber: options.recordNumber ?? 1,
    fileOffset: 0,
  };
}
