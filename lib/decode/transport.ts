/**
 * Transport headers: TCP, UDP, UDP-Lite, DCCP, SCTP, GRE, ICMP and ICMPv6 (with the packet an
 * error quotes). Validity checks follow what conntrack's l4 trackers reject as invalid (tcp_error,
 * udp_error, udplite_error, dccp_error, icmp_error …): such packets are Malformed here.
 */
import type { DecoderStats } from "./decoder.js";
import type { Ipv6HeaderWalk } from "./ipv6.js";
import { CONTINUE, malformed, truncated } from "./link.js";
import {
  IPPROTO_DCCP,
  IPPROTO_GRE,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
  MAX_SACK_BLOCKS,
  type DecodedPacket,
  type EmbeddedPacket,
} from "./packet.js";

const TCPOPT_EOL = 0;
const TCPOPT_NOP = 1;
const TCPOPT_MSS = 2;
const TCPOPT_WINDOW = 3;
const TCPOPT_SACK_PERM = 4;
const TCPOPT_SACK = 5;
const TCPOPT_TIMESTAMP = 8;

const GRE_CHECKSUM = 0x8000;
const GRE_ROUTING = 0x4000;
const GRE_KEY = 0x2000;
const GRE_SEQUENCE = 0x1000;
const GRE_ACK = 0x0080;

/**
 * Bytes [offset, offset + 4), big-endian, as a signed 32-bit word: callers store `>>> 0` of it. A
 * signed word is a small integer to V8, while an unsigned one of 2^31 or more returned from a call it
 * does not inline is a new heap number (per packet: sequence and acknowledgement numbers).
 */
function readWord32(buf: Uint8Array, offset: number): number {
  return (buf[offset] << 24) | (buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3];
}

function setPayload(
  packet: DecodedPacket,
  payloadOffset: number,
  payloadEnd: number,
  capturedEnd: number,
): void {
  packet.payloadOffset = payloadOffset;
  packet.payloadLength = payloadEnd - payloadOffset;
  const captured = (capturedEnd < payloadEnd ? capturedEnd : payloadEnd) - payloadOffset;
  packet.payloadCaptured = captured > 0 ? captured : 0;
}

/** Checks that a transport header of `length` bytes fits in the segment and in the capture. */
function headerMissing(
  packet: DecodedPacket,
  offset: number,
  length: number,
  capturedEnd: number,
  end: number,
  truncatedReason: string,
  malformedReason: string,
): number {
  if (offset + length > end) return malformed(packet, malformedReason);
  if (offset + length > capturedEnd) return truncated(packet, truncatedReason);
  return CONTINUE;
}

/**
 * Decodes the transport header of the segment buf[offset, end) whose captured bytes end at
 * `capturedEnd` (≤ end). packet.protocol and packet.ipVersion are already set.
 */
export function decodeTransport(
  packet: DecodedPacket,
  buf: Uint8Array,
  offset: number,
  capturedEnd: number,
  end: number,
  stats: DecoderStats,
  innerWalk: Ipv6HeaderWalk,
  walkIana: boolean,
): number {
  packet.l4Offset = offset;
  packet.l4Length = end - offset;
  switch (packet.protocol) {
    case IPPROTO_TCP:
      return decodeTcp(packet, buf, offset, capturedEnd, end, stats);
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
      return decodeUdp(packet, buf, offset, capturedEnd, end);
    case IPPROTO_ICMP:
      if (packet.ipVersion !== 4) break;
      return decodeIcmp(packet, buf, offset, capturedEnd, end, stats, innerWalk, walkIana);
    case IPPROTO_ICMPV6:
      if (packet.ipVersion !== 6) break;
      return decodeIcmp(packet, buf, offset, capturedEnd, end, stats, innerWalk, walkIana);
    case IPPROTO_DCCP:
      return decodeDccp(packet, buf, offset, capturedEnd, end);
    case IPPROTO_SCTP:
      return decodeSctp(packet, buf, offset, capturedEnd, end);
    case IPPROTO_GRE:
      return decodeGre(packet, buf, offset, capturedEnd, end);
  }
  setPayload(packet, offset, end, capturedEnd);
  return CONTINUE;
}

function decodeTcp(
  packet: DecodedPacket,
  buf: Uint8Array,
  offset: number,
  capturedEnd: number,
  end: number,
  stats: DecoderStats,
): number {
  const missing = headerMissing(
    packet,
    offset,
    20,
    capturedEnd,
    end,
    "tcp header truncated",
    "tcp header beyond the ip payload",
  );
  if (missing !== CONTINUE) return missing;
  packet.srcPort = (buf[offset] << 8) | buf[offset + 1];
  packet.dstPort = (buf[offset + 2] << 8) | buf[offset + 3];
  packet.hasPorts = true;
  packet.tcpSeq = readWord32(buf, offset + 4) >>> 0;
  packet.tcpAck = readWord32(buf, offset + 8) >>> 0;
  const dataOffset = (buf[offset + 12] >> 4) << 2;
  packet.tcpDataOffset = dataOffset;
  packet.tcpFlags = buf[offset + 13];
  packet.tcpWindow = (buf[offset + 14] << 8) | buf[offset + 15];
  packet.l4Checksum = (buf[offset + 16] << 8) | buf[offset + 17];
  packet.tcpUrgent = (buf[offset + 18] << 8) | buf[offset + 19];
  packet.tcpMss = -1;
  packet.tcpWindowScale = -1;
  packet.tcpSackPermitted = false;
  packet.tcpSackCount = 0;
  packet.tcpHasTimestamp = false;
  packet.tcpTsVal = 0;
  packet.tcpTsEcr = 0;
  packet.tcpOptionsComplete = true;
  if (dataOffset < 20) return malformed(packet, "tcp data offset below 5");
  const headerEnd = offset + dataOffset;
  if (headerEnd > end) return malformed(packet, "tcp data offset beyond segment");
  if (dataOffset > 20) {
    let optionsEnd = headerEnd;
    if (optionsEnd > capturedEnd) {
      // The options that were captured are still worth having; the packet is otherwise whole.
      optionsEnd = capturedEnd;
      packet.tcpOptionsComplete = false;
      stats.tcpOptionsCut++;
    }
    parseTcpOptions(packet, buf, offset + 20, optionsEnd, stats);
  }
  setPayload(packet, headerEnd, end, capturedEnd);
  return CONTINUE;
}

/**
 * Reads TCP options as the kernel's tcp_parse_options / conntrack's tcp_options do: a bad length
 * stops the walk, an option of the wrong size for its kind is skipped.
 */
function parseTcpOptions(
  packet: DecodedPacket,
  buf: Uint8Array,
  offset: number,
  end: number,
  stats: DecoderStats,
): void {
  while (offset < end) {
    const kind = buf[offset];
    if (kind === TCPOPT_EOL) return;
    if (kind === TCPOPT_NOP) {
      offset++;
      continue;
    }
    if (offset + 1 >= end) {
      if (packet.tcpOptionsComplete) stats.tcpOptionErrors++;
      return;
    }
    const size = buf[offset + 1];
    if (size < 2 || offset + size > end) {
      if (packet.tcpOptionsComplete || size < 2) stats.tcpOptionErrors++;
      return;
    }
    switch (kind) {
      case TCPOPT_MSS:
        if (size === 4) packet.tcpMss = (buf[offset + 2] << 8) | buf[offset + 3];
        else stats.tcpOptionErrors++;
        break;
      case TCPOPT_WINDOW:
        if (size === 3) packet.tcpWindowScale = buf[offset + 2];
        else stats.tcpOptionErrors++;
        break;
      case TCPOPT_SACK_PERM:
        if (size === 2) packet.tcpSackPermitted = true;
        else stats.tcpOptionErrors++;
        break;
      case TCPOPT_SACK:
        if (size >= 10 && (size - 2) % 8 === 0) {
          const blocks = packet.tcpSackBlocks;
          let count = 0;
          for (let at = offset + 2; at + 8 <= offset + size && count < MAX_SACK_BLOCKS; at += 8) {
            blocks[count * 2] = readWord32(buf, at);
            blocks[count * 2 + 1] = readWord32(buf, at + 4);
            count++;
          }
          packet.tcpSackCount = count;
        } else {
          stats.tcpOptionErrors++;
        }
        break;
      case TCPOPT_TIMESTAMP:
        if (size === 10) {
          packet.tcpHasTimestamp = true;
          packet.tcpTsVal = readWord32(buf, offset + 2) >>> 0;
          packet.tcpTsEcr = readWord32(buf, offset + 6) >>> 0;
        } else {
          stats.tcpOptionErrors++;
        }
        break;
    }
    offset += size;
  }
}

function decodeUdp(
  packet: DecodedPacket,
  buf: Uint8Array,
  offset: number,
  capturedEnd: number,
  end: number,
): number {
  const lite = packet.protocol === IPPROTO_UDPLITE;
  const missing = headerMissing(
    packet,
    offset,
    8,
    capturedEnd,
    end,
    lite ? "udplite header truncated" : "udp header truncated",
    lite ? "udplite header beyond the ip payload" : "udp header beyond the ip payload",
  );
  if (missing !== CONTINUE) return missing;
  packet.srcPort = (buf[offset] << 8) | buf[offset + 1];
  packet.dstPort = (buf[offset + 2] << 8) | buf[offset + 3];
  packet.hasPorts = true;
  const length = (buf[offset + 4] << 8) | buf[offset + 5];
  packet.udpLength = length;
  packet.l4Checksum = (buf[offset + 6] << 8) | buf[offset + 7];
  const available = end - offset;
  if (lite) {
    // UDP-Lite's length field is the checksum coverage: 0 means all of it (udplite_error).
    if (length !== 0 && (length < 8 || length > available)) {
      return malformed(packet, "udplite checksum coverage invalid");
    }
    setPayload(packet, offset + 8, end, capturedEnd);
    return CONTINUE;
  }
  // RFC 2675: a jumbogram's UDP length is 0 (BIG TCP captures over UDP tunnels show it too).
  if (length === 0 && available > 0xffff) {
    setPayload(packet, offset + 8, end, capturedEnd);
    return CONTINUE;
  }
  if (length < 8) return malformed(packet, "udp length below 8");
  if (length > available) return malformed(packet, "udp length exceeds the ip payload");
  setPayload(packet, offset + 8, offset + length, capturedEnd);
  return CONTINUE;
}

function decodeDccp(
  packet: DecodedPacket,
  buf: Uint8Array,
  offset: number,
  capturedEnd: number,
  end: number,
): number {
  const missing = headerMissing(
    packet,
    offset,
    12,
    capturedEnd,
    end,
    "dccp header truncated",
    "dccp header beyond the ip payload",
  );
  if (missing !== CONTINUE) return missing;
  packet.srcPort = (buf[offset] << 8) | buf[offset + 1];
  packet.dstPort = (buf[offset + 2] << 8) | buf[offset + 3];
  packet.hasPorts = true;
  packet.l4Checksum = (buf[offset + 6] << 8) | buf[offset + 7];
  const dataOffset = buf[offset + 4] << 2;
  if (dataOffset < 12 || offset + dataOffset > end) return malformed(packet, "dccp data offset invalid");
  setPayload(packet, offset + dataOffset, end, capturedEnd);
  return CONTINUE;
}

function decodeSctp(
  packet: DecodedPacket,
  buf: Uint8Array,
  offset: number,
  capturedEnd: number,
  end: number,
): number {
  const missing = headerMissing(
    packet,
    offset,
    12,
    capturedEnd,
    end,
    "sctp header truncated",
    "sctp header beyond the ip payload",
  );
  if (missing !== CONTINUE) return missing;
  packet.srcPort = (buf[offset] << 8) | buf[offset + 1];
  packet.dstPort = (buf[offset + 2] << 8) | buf[offset + 3];
  packet.hasPorts = true;
  packet.l4Checksum = readWord32(buf, offset + 8) >>> 0;
  setPayload(packet, offset + 12, end, capturedEnd);
  return CONTINUE;
}

function decodeGre(
  packet: DecodedPacket,
  buf: Uint8Array,
  offset: number,
  capturedEnd: number,
  end: number,
): number {
  const missing = headerMissing(
    packet,
    offset,
    4,
    capturedEnd,
    end,
    "gre header truncated",
    "gre header beyond the ip payload",
  );
  if (missing !== CONTINUE) return missing;
  const flags = (buf[offset] << 8) | buf[offset + 1];
  const version = flags & 7;
  packet.greVersion = version;
  packet.greProtocol = (buf[offset + 2] << 8) | buf[offset + 3];
  let at = offset + 4;
  if ((flags & (GRE_CHECKSUM | GRE_ROUTING)) !== 0) {
    if (flags & GRE_CHECKSUM && at + 2 <= capturedEnd) packet.l4Checksum = (buf[at] << 8) | buf[at + 1];
    at += 4;
  }
  if ((flags & GRE_KEY) !== 0) {
    const keyMissing = headerMissing(
      packet,
      at,
      4,
      capturedEnd,
      end,
      "gre key truncated",
      "gre key beyond the ip payload",
    );
    if (keyMissing !== CONTINUE) return keyMissing;
    packet.greHasKey = true;
    // Version 1 (PPTP) carries payload length then call ID here; conntrack keys on the call ID.
    packet.greKey = readWord32(buf, at) >>> 0;
    at += 4;
  }
  if ((flags & GRE_SEQUENCE) !== 0) at += 4;
  if (version === 1 && (flags & GRE_ACK) !== 0) at += 4;
  if (at > end) return malformed(packet, "gre header beyond the ip payload");
  setPayload(packet, at, end, capturedEnd);
  return CONTINUE;
}

function isIcmpv4Error(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

function isIcmpv4Query(type: number): boolean {
  return type === 0 || type === 8 || (type >= 13 && type <= 18);
}

function isIcmpv6Error(type: number): boolean {
  return type >= 1 && type <= 4;
}

function isIcmpv6Query(type: number): boolean {
  return type === 128 || type === 129 || type === 139 || type === 140;
}

function decodeIcmp(
  packet: DecodedPacket,
  buf: Uint8Array,
  offset: number,
  capturedEnd: number,
  end: number,
  stats: DecoderStats,
  innerWalk: Ipv6HeaderWalk,
  walkIana: boolean,
): number {
  const v6 = packet.ipVersion === 6;
  const missing = headerMissing(
    packet,
    offset,
    8,
    capturedEnd,
    end,
    v6 ? "icmpv6 header truncated" : "icmp header truncated",
    v6 ? "icmpv6 header beyond the ip payload" : "icmp header beyond the ip payload",
  );
  if (missing !== CONTINUE) return missing;
  const type = buf[offset];
  packet.icmpType = type;
  packet.icmpCode = buf[offset + 1];
  packet.l4Checksum = (buf[offset + 2] << 8) | buf[offset + 3];
  packet.hasPorts = true;
  setPayload(packet, offset + 8, end, capturedEnd);
  if (v6 ? isIcmpv6Query(type) : isIcmpv4Query(type)) {
    packet.icmpId = (buf[offset + 4] << 8) | buf[offset + 5];
    packet.icmpSeq = (buf[offset + 6] << 8) | buf[offset + 7];
  } else if (v6 ? isIcmpv6Error(type) : isIcmpv4Error(type)) {
    const embedded = packet.embedded;
    const usable = v6
      ? decodeQuotedIpv6(embedded, buf, offset + 8, capturedEnd, innerWalk, walkIana, packet)
      : decodeQuotedIpv4(embedded, buf, offset + 8, capturedEnd);
    embedded.present = usable;
    if (!usable) stats.embeddedUnusable++;
  }
  return CONTINUE;
}

/** Reads the ports (or ICMP type/code/id) of a quoted transport header when enough of it was quoted. */
function decodeQuotedTransport(
  embedded: EmbeddedPacket,
  buf: Uint8Array,
  offset: number,
  capturedEnd: number,
  ipVersion: number,
): void {
  const protocol = embedded.protocol;
  switch (protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_DCCP:
    case IPPROTO_SCTP:
      // Conntrack reads only the two ports of a quoted header (nf_ct_get_tuple_ports).
      if (offset + 4 > capturedEnd) return;
      embedded.srcPort = (buf[offset] << 8) | buf[offset + 1];
      embedded.dstPort = (buf[offset + 2] << 8) | buf[offset + 3];
      embedded.hasPorts = true;
      return;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6: {
      if ((protocol === IPPROTO_ICMP) !== (ipVersion === 4)) return;
      if (offset + 8 > capturedEnd) return;
      const type = buf[offset];
      embedded.icmpType = type;
      embedded.icmpCode = buf[offset + 1];
      // An error quoting an error: its type and code are enough, nothing is decoded deeper.
      const innerIsError = ipVersion === 4 ? isIcmpv4Error(type) : isIcmpv6Error(type);
      if (!innerIsError) embedded.icmpId = (buf[offset + 4] << 8) | buf[offset + 5];
      embedded.hasPorts = true;
      return;
    }
  }
}

function resetEmbedded(embedded: EmbeddedPacket): void {
  embedded.present = false;
  embedded.hasPorts = false;
  embedded.srcPort = 0;
  embedded.dstPort = 0;
  embedded.icmpType = 0;
  embedded.icmpCode = 0;
  embedded.icmpId = 0;
  embedded.protocol = 0;
  embedded.totalLength = 0;
  embedded.srcV4 = 0;
  embedded.dstV4 = 0;
}

function decodeQuotedIpv4(
  embedded: EmbeddedPacket,
  buf: Uint8Array,
  offset: number,
  capturedEnd: number,
): boolean {
  resetEmbedded(embedded);
  embedded.ipVersion = 4;
  if (offset + 20 > capturedEnd) return false;
  const versionAndLength = buf[offset];
  if (versionAndLength >> 4 !== 4) return false;
  const headerLength = (versionAndLength & 0x0f) << 2;
  if (headerLength < 20 || offset + headerLength > capturedEnd) return false;
  embedded.totalLength = (buf[offset + 2] << 8) | buf[offset + 3];
  embedded.protocol = buf[offset + 9];
  const src = embedded.src;
  const dst = embedded.dst;
  for (let i = 0; i < 4; i++) {
    src[i] = buf[offset + 12 + i];
    dst[i] = buf[offset + 16 + i];
  }
  for (let i = 4; i < 16; i++) {
    src[i] = 0;
    dst[i] = 0;
  }
  embedded.srcV4 = readWord32(buf, offset + 12) >>> 0;
  embedded.dstV4 = readWord32(buf, offset + 16) >>> 0;
  // A quoted non-first fragment has no transport header (ipv4_get_l4proto refuses it too).
  if ((((buf[offset + 6] << 8) | buf[offset + 7]) & 0x1fff) !== 0) return false;
  decodeQuotedTransport(embedded, buf, offset + headerLength, capturedEnd, 4);
  return true;
}

function decodeQuotedIpv6(
  embedded: EmbeddedPacket,
  buf: Uint8Array,
  offset: number,
  capturedEnd: number,
  walk: Ipv6HeaderWalk,
  walkIana: boolean,
  packet: DecodedPacket,
): boolean {
  resetEmbedded(embedded);
  embedded.ipVersion = 6;
  if (offset + 40 > capturedEnd) return false;
  if (buf[offset] >> 4 !== 6) return false;
  embedded.totalLength = 40 + ((buf[offset + 4] << 8) | buf[offset + 5]);
  const src = embedded.src;
  const dst = embedded.dst;
  for (let i = 0; i < 16; i++) {
    src[i] = buf[offset + 8 + i];
    dst[i] = buf[offset + 24 + i];
  }
  // The quote is cut short by design: walk only the quoted bytes.
  const transportOffset = walk.walk(
    packet,
    buf,
    buf[offset + 6],
    offset + 6,
    offset + 40,
    capturedEnd,
    capturedEnd,
    walkIana,
  );
  packet.reason = "";
  if (transportOffset < 0 || walk.stoppedAtFragment) return false;
  embedded.protocol = walk.protocol;
  decodeQuotedTransport(embedded, buf, transportOffset, capturedEnd, 6);
  return true;
}
