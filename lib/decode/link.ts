/**
 * Link layers: find where the IP header starts and which network protocol it is.
 *
 * Offsets are absolute indexes into the record's buffer. Two ends bound every read: `capturedEnd`
 * (bytes the capture holds) and `wireEnd` (bytes the frame had on the wire, from origlen). A header
 * that crosses the captured end but not the wire end was cut by the capture (Truncated); one that
 * crosses the wire end was never there (Malformed).
 */
import { PacketClass, type DecodedPacket } from "./packet.js";

/** Returned by the layer decoders when the packet goes on to the next layer (not a PacketClass). */
export const CONTINUE = -1;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;
export const ETHERTYPE_QINQ_OLD1 = 0x9100;
export const ETHERTYPE_QINQ_OLD2 = 0x9200;

export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
/** DLT_RAW on OpenBSD and on BSD/OS: values some writers put in pcap files for raw IP. */
export const LINKTYPE_RAW_DLT12 = 12;
export const LINKTYPE_RAW_DLT14 = 14;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LOOP = 108;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276;

/** BSD address families that mean IPv6: Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30. */
const AF_INET = 2;
function isAfInet6(family: number): boolean {
  return family === 10 || family === 24 || family === 28 || family === 30;
}

/** Default bound on the VLAN tags walked in one frame. */
export const DEFAULT_MAX_VLAN_TAGS = 8;

export function malformed(packet: DecodedPacket, reason: string): PacketClass {
  packet.reason = reason;
  return PacketClass.Malformed;
}

export function truncated(packet: DecodedPacket, reason: string): PacketClass {
  packet.reason = reason;
  return PacketClass.Truncated;
}

/** Classifies a header that needs bytes up to `needEnd` but the capture holds fewer. */
export function shortOf(
  packet: DecodedPacket,
  needEnd: number,
  wireEnd: number,
  truncatedReason: string,
  malformedReason: string,
): PacketClass {
  if (needEnd > wireEnd) return malformed(packet, malformedReason);
  return truncated(packet, truncatedReason);
}

/**
 * Decodes the link header of a frame starting at `start`. On CONTINUE, packet.etherType and
 * packet.l3Offset name the IP layer (0x0800 or 0x86dd); otherwise returns the frame's class.
 */
export function decodeLink(
  packet: DecodedPacket,
  buf: Buffer,
  linkType: number,
  start: number,
  capturedEnd: number,
  wireEnd: number,
  maxVlanTags: number,
): number {
  switch (linkType) {
    case LINKTYPE_ETHERNET:
      if (start + 14 > capturedEnd) {
        return shortOf(
          packet,
          start + 14,
          wireEnd,
          "ethernet header truncated",
          "frame shorter than an ethernet header",
        );
      }
      return decodeEtherType(
        packet,
        buf,
        (buf[start + 12] << 8) | buf[start + 13],
        start + 14,
        capturedEnd,
        wireEnd,
        maxVlanTags,
      );
    case LINKTYPE_LINUX_SLL:
      if (start + 16 > capturedEnd) {
        return shortOf(
          packet,
          start + 16,
          wireEnd,
          "linux sll header truncated",
          "frame shorter than a linux sll header",
        );
      }
      packet.sllPacketType = (buf[start] << 8) | buf[start + 1];
      return decodeEtherType(
        packet,
        buf,
        (buf[start + 14] << 8) | buf[start + 15],
        start + 16,
        capturedEnd,
        wireEnd,
        maxVlanTags,
      );
    case LINKTYPE_LINUX_SLL2:
      if (start + 20 > capturedEnd) {
        return shortOf(
          packet,
          start + 20,
          wireEnd,
          "linux sll2 header truncated",
          "frame shorter than a linux sll2 header",
        );
      }
      packet.sllIfIndex =
        ((buf[start + 4] << 24) | (buf[start + 5] << 16) | (buf[start + 6] << 8) | buf[start + 7]) >>> 0;
      packet.sllPacketType = buf[start + 10];
      return decodeEtherType(
        packet,
        buf,
        (buf[start] << 8) | buf[start + 1],
        start + 20,
        capturedEnd,
        wireEnd,
        maxVlanTags,
      );
    case LINKTYPE_RAW:
    case LINKTYPE_RAW_DLT12:
    case LINKTYPE_RAW_DLT14: {
      if (start >= capturedEnd)
        return shortOf(packet, start + 1, wireEnd, "raw ip header truncated", "empty frame");
      const version = buf[start] >> 4;
      if (version === 4) packet.etherType = ETHERTYPE_IPV4;
      else if (version === 6) packet.etherType = ETHERTYPE_IPV6;
      else return malformed(packet, "raw ip version is neither 4 nor 6");
      packet.l3Offset = start;
      return CONTINUE;
    }
    case LINKTYPE_IPV4:
      packet.etherType = ETHERTYPE_IPV4;
      packet.l3Offset = start;
      return CONTINUE;
    case LINKTYPE_IPV6:
      packet.etherType = ETHERTYPE_IPV6;
      packet.l3Offset = start;
      return CONTINUE;
    case LINKTYPE_NULL:
    case LINKTYPE_LOOP: {
      if (start + 4 > capturedEnd) {
        return shortOf(
          packet,
          start + 4,
          wireEnd,
          "loopback header truncated",
          "frame shorter than a loopback header",
        );
      }
      const bigEndian =
        ((buf[start] << 24) | (buf[start + 1] << 16) | (buf[start + 2] << 8) | buf[start + 3]) >>> 0;
      let family = bigEndian;
      // NULL stores the family in the writer's byte order: a value with its high half set was written
      // little-endian (families are small numbers), so it is read the other way.
      if (linkType === LINKTYPE_NULL && bigEndian > 0xffff) {
        family = ((buf[start + 3] << 24) | (buf[start + 2] << 16) | (buf[start + 1] << 8) | buf[start]) >>> 0;
      }
      packet.l3Offset = start + 4;
      if (family === AF_INET) packet.etherType = ETHERTYPE_IPV4;
      else if (isAfInet6(family)) packet.etherType = ETHERTYPE_IPV6;
      else return PacketClass.NonIp;
      return CONTINUE;
    }
    default:
      return PacketClass.UnsupportedLink;
  }
}

/** Walks VLAN tags after an EtherType field and classifies what follows. */
function decodeEtherType(
  packet: DecodedPacket,
  buf: Buffer,
  etherType: number,
  offset: number,
  capturedEnd: number,
  wireEnd: number,
  maxVlanTags: number,
): number {
  let tags = 0;
  while (
    etherType === ETHERTYPE_VLAN ||
    etherType === ETHERTYPE_QINQ ||
    etherType === ETHERTYPE_QINQ_OLD1 ||
    etherType === ETHERTYPE_QINQ_OLD2
  ) {
    if (tags === maxVlanTags) return malformed(packet, "vlan tag stack too deep");
    if (offset + 4 > capturedEnd) {
      return shortOf(packet, offset + 4, wireEnd, "vlan tag truncated", "vlan tag beyond the frame");
    }
    if (tags < packet.vlanIds.length) packet.vlanIds[tags] = ((buf[offset] << 8) | buf[offset + 1]) & 0x0fff;
    tags++;
    etherType = (buf[offset + 2] << 8) | buf[offset + 3];
    offset += 4;
  }
  packet.vlanCount = tags;
  packet.etherType = etherType;
  packet.l3Offset = offset;
  if (etherType === ETHERTYPE_IPV4 || etherType === ETHERTYPE_IPV6) return CONTINUE;
  // ARP, LLDP, STP, IPX …, and 802.3 frames (a length below 0x0600, LLC follows) that Linux
  // never hands to IP even when SNAP carries an IP EtherType.
  return PacketClass.NonIp;
}
