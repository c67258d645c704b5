/** IPv4 header (RFC 791), checked as Linux's ip_rcv_core checks it before netfilter sees the packet. */
import { ipv4HeaderChecksumValid } from "./checksum.js";
import type { DecoderStats } from "./decoder.js";
import { CONTINUE, malformed, shortOf, truncated } from "./link.js";
import type { DecodedPacket } from "./packet.js";

const IP_DF = 0x4000;
const IP_MF = 0x2000;
const IP_OFFSET_MASK = 0x1fff;

/**
 * Decodes the IPv4 header at `offset`. Fills the network fields of `packet` (including
 * fragmentOffset/moreFragments and capturedEnd) and returns CONTINUE, or the packet's class.
 *
 * A total length of zero is taken as "the rest of the frame": captures of TSO/GSO sends show it,
 * and the kernel saw the real length. It is counted in stats.ipv4ZeroTotalLength.
 */
export function decodeIpv4Header(
  packet: DecodedPacket,
  buf: Buffer,
  offset: number,
  capturedEnd: number,
  wireEnd: number,
  stats: DecoderStats,
): number {
  if (offset + 20 > capturedEnd) {
    return shortOf(packet, offset + 20, wireEnd, "ipv4 header truncated", "ipv4 header beyond the frame");
  }
  const versionAndLength = buf[offset];
  if (versionAndLength >> 4 !== 4) return malformed(packet, "ipv4 version is not 4");
  const headerLength = (versionAndLength & 0x0f) << 2;
  if (headerLength < 20) return malformed(packet, "ipv4 header length below 20");
  let totalLength = (buf[offset + 2] << 8) | buf[offset + 3];
  if (totalLength === 0) {
    totalLength = Math.min(wireEnd - offset, 0xffff);
    stats.ipv4ZeroTotalLength++;
  }
  if (totalLength < headerLength) return malformed(packet, "ipv4 total length below header length");
  if (offset + totalLength > wireEnd) return malformed(packet, "ipv4 total length exceeds the frame");
  if (offset + headerLength > capturedEnd) return truncated(packet, "ipv4 options truncated");

  packet.ipVersion = 4;
  packet.l3Offset = offset;
  packet.ipLength = totalLength;
  packet.ipHeaderLength = headerLength;
  packet.tos = buf[offset + 1];
  packet.ipId = (buf[offset + 4] << 8) | buf[offset + 5];
  const fragmentField = (buf[offset + 6] << 8) | buf[offset + 7];
  packet.dontFragment = (fragmentField & IP_DF) !== 0;
  packet.moreFragments = (fragmentField & IP_MF) !== 0;
  packet.fragmentOffset = (fragmentField & IP_OFFSET_MASK) << 3;
  packet.ttl = buf[offset + 8];
  packet.protocol = buf[offset + 9];
  packet.ipChecksum = (buf[offset + 10] << 8) | buf[offset + 11];
  packet.ipChecksumValid = ipv4HeaderChecksumValid(buf, offset, headerLength);
  if (!packet.ipChecksumValid) stats.ipv4ChecksumErrors++;
  const src = packet.src;
  const dst = packet.dst;
  src[0] = buf[offset + 12];
  src[1] = buf[offset + 13];
  src[2] = buf[offset + 14];
  src[3] = buf[offset + 15];
  dst[0] = buf[offset + 16];
  dst[1] = buf[offset + 17];
  dst[2] = buf[offset + 18];
  dst[3] = buf[offset + 19];
  packet.srcV4 = ((src[0] << 24) | (src[1] << 16) | (src[2] << 8) | src[3]) >>> 0;
  packet.dstV4 = ((dst[0] << 24) | (dst[1] << 16) | (dst[2] << 8) | dst[3]) >>> 0;
  const end = offset + totalLength;
  packet.capturedEnd = capturedEnd < end ? capturedEnd : end;
  return CONTINUE;
}
