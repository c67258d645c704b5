/** IPv6 header (RFC 8200) and its extension-header chain. */
import type { DecoderStats } from "./decoder.js";
import { CONTINUE, malformed, shortOf } from "./link.js";
import { PacketClass, type DecodedPacket } from "./packet.js";

export const NEXTHDR_HOP = 0;
export const NEXTHDR_ROUTING = 43;
export const NEXTHDR_FRAGMENT = 44;
export const NEXTHDR_ESP = 50;
export const NEXTHDR_AUTH = 51;
export const NEXTHDR_NONE = 59;
export const NEXTHDR_DEST = 60;
export const NEXTHDR_MOBILITY = 135;
export const NEXTHDR_HIP = 139;
export const NEXTHDR_SHIM6 = 140;

/** Most extension headers walked in one packet; a longer chain is treated as hostile. */
export const MAX_IPV6_EXTENSION_HEADERS = 16;

/**
 * Which next-header values are walked as extension headers. "kernel" is Linux's ipv6_ext_hdr() set
 * (hop-by-hop, routing, fragment, AH, destination options), which is what conntrack's
 * ipv6_skip_exthdr() walks: mobility, HIP and shim6 are then the packet's protocol. "iana" also
 * walks mobility (135), HIP (139) and shim6 (140), as RFC 7045 lists them.
 */
export type Ipv6ExtensionHeaderSet = "kernel" | "iana";

/** Where the walk met a fragment header: what the defragmenter needs beyond the packet's fields. */
export class Ipv6FragmentHeader {
  /** Offset in the buffer of the fragment header, -1 when the packet has none. */
  offset = -1;
  /** Offset of the next-header byte that names the fragment header (in the IPv6 header or an extension header). */
  nextHeaderFieldOffset = 0;
  /** Next header named by the fragment header. */
  nextHeader = 0;
}

function isExtensionHeader(nextHeader: number, walkIana: boolean): boolean {
  switch (nextHeader) {
    case NEXTHDR_HOP:
    case NEXTHDR_ROUTING:
    case NEXTHDR_FRAGMENT:
    case NEXTHDR_AUTH:
    case NEXTHDR_DEST:
      return true;
    case NEXTHDR_MOBILITY:
    case NEXTHDR_HIP:
    case NEXTHDR_SHIM6:
      return walkIana;
    default:
      return false;
  }
}

/**
 * Walks extension headers from `offset` (the byte after the fixed header or the previous extension
 * header) while they stay inside [.., payloadEnd). Returns the offset of the upper-layer header and
 * leaves the protocol in walk.protocol, or returns -1 with packet.reason set (the caller decides the
 * class: walk.truncatedOnly says every failure was the capture's doing).
 */
export class Ipv6HeaderWalk {
  protocol = 0;
  /** True when the walk stopped at a non-first fragment: what follows is not a header. */
  stoppedAtFragment = false;
  readonly fragment = new Ipv6FragmentHeader();
  fragmentOffset = 0;
  moreFragments = false;
  identification = 0;
  /** Set with a failure: true when the bytes were on the wire but not captured. */
  truncatedOnly = false;

  walk(
    packet: DecodedPacket,
    buf: Uint8Array,
    nextHeader: number,
    nextHeaderFieldOffset: number,
    offset: number,
    capturedEnd: number,
    payloadEnd: number,
    walkIana: boolean,
  ): number {
    this.fragment.offset = -1;
    this.stoppedAtFragment = false;
    this.fragmentOffset = 0;
    this.moreFragments = false;
    this.identification = 0;
    this.truncatedOnly = false;
    let count = 0;
    while (isExtensionHeader(nextHeader, walkIana)) {
      if (count === MAX_IPV6_EXTENSION_HEADERS) {
        packet.reason = "ipv6 extension header chain too long";
        return -1;
      }
      count++;
      const fixedPart = nextHeader === NEXTHDR_FRAGMENT ? 8 : 2;
      if (offset + fixedPart > payloadEnd) {
        packet.reason = "ipv6 extension header beyond the payload";
        return -1;
      }
      if (offset + fixedPart > capturedEnd) {
        packet.reason = "ipv6 extension header truncated";
        this.truncatedOnly = true;
        return -1;
      }
      let headerLength: number;
      if (nextHeader === NEXTHDR_FRAGMENT) {
        if (this.fragment.offset >= 0) {
          packet.reason = "ipv6 repeated fragment header";
          return -1;
        }
        const field = (buf[offset + 2] << 8) | buf[offset + 3];
        this.fragment.offset = offset;
        this.fragment.nextHeaderFieldOffset = nextHeaderFieldOffset;
        this.fragment.nextHeader = buf[offset];
        this.fragmentOffset = field & 0xfff8;
        this.moreFragments = (field & 1) !== 0;
        this.identification =
          ((buf[offset + 4] << 24) | (buf[offset + 5] << 16) | (buf[offset + 6] << 8) | buf[offset + 7]) >>>
          0;
        if (this.fragmentOffset !== 0) {
          // Like ipv6_skip_exthdr(): past a non-first fragment's header there is only data.
          this.stoppedAtFragment = true;
          this.protocol = buf[offset];
          return offset + 8;
        }
        headerLength = 8;
      } else if (nextHeader === NEXTHDR_AUTH) {
        headerLength = (buf[offset + 1] + 2) << 2;
      } else {
        headerLength = (buf[offset + 1] + 1) << 3;
      }
      if (offset + headerLength > payloadEnd) {
        packet.reason = "ipv6 extension header beyond the payload";
        return -1;
      }
      nextHeader = buf[offset];
      nextHeaderFieldOffset = offset;
      offset += headerLength;
    }
    this.protocol = nextHeader;
    return offset;
  }
}

/**
 * Decodes the IPv6 header at `offset` and walks its extension headers. Returns CONTINUE with
 * packet.protocol/ipHeaderLength set (and the fragment header, if any, in `walk`), or the class.
 *
 * A payload length of zero with bytes following is taken as "the rest of the frame" (captures of
 * BIG TCP / jumbograms), counted in stats.ipv6ZeroPayloadLength.
 */
export function decodeIpv6Header(
  packet: DecodedPacket,
  buf: Buffer,
  offset: number,
  capturedEnd: number,
  wireEnd: number,
  walk: Ipv6HeaderWalk,
  walkIana: boolean,
  stats: DecoderStats,
): number {
  if (offset + 40 > capturedEnd) {
    return shortOf(packet, offset + 40, wireEnd, "ipv6 header truncated", "ipv6 header beyond the frame");
  }
  const first = buf[offset];
  if (first >> 4 !== 6) return malformed(packet, "ipv6 version is not 6");
  let payloadLength = (buf[offset + 4] << 8) | buf[offset + 5];
  if (payloadLength === 0 && wireEnd - offset > 40) {
    payloadLength = wireEnd - offset - 40;
    stats.ipv6ZeroPayloadLength++;
  }
  const end = offset + 40 + payloadLength;
  if (end > wireEnd) return malformed(packet, "ipv6 payload length exceeds the frame");

  packet.ipVersion = 6;
  packet.l3Offset = offset;
  packet.ipLength = 40 + payloadLength;
  packet.tos = ((first & 0x0f) << 4) | (buf[offset + 1] >> 4);
  packet.flowLabel = ((buf[offset + 1] & 0x0f) << 16) | (buf[offset + 2] << 8) | buf[offset + 3];
  packet.ttl = buf[offset + 7];
  const src = packet.src;
  const dst = packet.dst;
  for (let i = 0; i < 16; i++) {
    src[i] = buf[offset + 8 + i];
    dst[i] = buf[offset + 24 + i];
  }
  packet.srcV4 = 0;
  packet.dstV4 = 0;
  packet.capturedEnd = capturedEnd < end ? capturedEnd : end;

  const transportOffset = walk.walk(
    packet,
    buf,
    buf[offset + 6],
    offset + 6,
    offset + 40,
    capturedEnd,
    end,
    walkIana,
  );
  if (transportOffset < 0) return walk.truncatedOnly ? PacketClass.Truncated : PacketClass.Malformed;
  packet.protocol = walk.protocol;
  packet.ipHeaderLength = transportOffset - offset;
  if (walk.fragment.offset >= 0) {
    packet.ipId = walk.identification;
    packet.fragmentOffset = walk.fragmentOffset;
    packet.moreFragments = walk.moreFragments;
  }
  return CONTINUE;
}
