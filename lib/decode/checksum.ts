/**
 * Internet checksums (RFC 1071) and the transport checksums conntrack can be asked to verify.
 *
 * The decoder only records transport checksums: captures taken on a host with checksum offload
 * show wrong ones on every outgoing packet, so verifying them belongs to whoever wants it.
 */
import {
  IPPROTO_DCCP,
  IPPROTO_GRE,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
  type DecodedPacket,
} from "./packet.js";

/** Adds the bytes of buf[start, end) as big-endian 16-bit words to `sum` (no folding: safe up to 64 KiB). */
export function onesComplementSum(buf: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  return sum;
}

/** Folds a 32-bit-or-wider sum into 16 bits, with end-around carry. */
export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** True when the IPv4 header at `offset` (of `headerLength` bytes) sums to 0xffff, i.e. its checksum holds. */
export function ipv4HeaderChecksumValid(buf: Uint8Array, offset: number, headerLength: number): boolean {
  return foldSum(onesComplementSum(buf, offset, offset + headerLength)) === 0xffff;
}

/** The checksum field value that makes the IPv4 header at `offset` valid (computed with the field zeroed). */
export function computeIpv4HeaderChecksum(buf: Uint8Array, offset: number, headerLength: number): number {
  const recorded = (buf[offset + 10] << 8) | buf[offset + 11];
  const sum = foldSum(onesComplementSum(buf, offset, offset + headerLength) - recorded);
  return ~sum & 0xffff;
}

function pseudoHeaderSum(packet: DecodedPacket, protocol: number, length: number): number {
  const src = packet.src;
  const dst = packet.dst;
  let sum = 0;
  const addressBytes = packet.ipVersion === 4 ? 4 : 16;
  for (let i = 0; i < addressBytes; i += 2)
    sum += ((src[i] << 8) | src[i + 1]) + ((dst[i] << 8) | dst[i + 1]);
  // IPv4 has a 16-bit length, IPv6 a 32-bit one: both sum the same way for lengths below 2^16.
  return sum + protocol + (length & 0xffff) + Math.floor(length / 0x10000);
}

let crc32cTable: Uint32Array | undefined;

/** CRC-32C (Castagnoli), the SCTP checksum (RFC 4960 appendix B), over buf[start, end) with the checksum field read as zero. */
function sctpCrc32c(buf: Uint8Array, start: number, end: number, checksumOffset: number): number {
  if (crc32cTable === undefined) {
    crc32cTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      crc32cTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) {
    const byte = i >= checksumOffset && i < checksumOffset + 4 ? 0 : buf[i];
    crc = crc32cTable[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  }
  return ~crc >>> 0;
}

/**
 * Verifies the transport checksum of the packet the decoder last filled.
 * Returns null when it cannot be checked: bytes it covers were not captured, or the protocol carries
 * no checksum the decoder knows. A UDP-over-IPv4 checksum of zero means "none" and counts as valid.
 */
export function verifyTransportChecksum(packet: DecodedPacket): boolean | null {
  if (packet.ipVersion !== 4 && packet.ipVersion !== 6) return null;
  const buf = packet.buf;
  const start = packet.l4Offset;
  const length = packet.l4Length;
  const end = start + length;
  if (end > packet.capturedEnd) return null;
  switch (packet.protocol) {
    case IPPROTO_TCP:
      if (length < 20) return null;
      return (
        foldSum(onesComplementSum(buf, start, end, pseudoHeaderSum(packet, IPPROTO_TCP, length))) === 0xffff
      );
    case IPPROTO_UDP: {
      if (length < 8) return null;
      const udpLength = packet.udpLength;
      if (packet.l4Checksum === 0) return packet.ipVersion === 4;
      const covered = start + udpLength;
      const sum = onesComplementSum(buf, start, covered, pseudoHeaderSum(packet, IPPROTO_UDP, udpLength));
      return foldSum(sum) === 0xffff;
    }
    case IPPROTO_UDPLITE: {
      if (length < 8) return null;
      const coverage = packet.udpLength === 0 ? length : packet.udpLength;
      if (coverage < 8 || coverage > length) return false;
      const sum = onesComplementSum(
        buf,
        start,
        start + coverage,
        pseudoHeaderSum(packet, IPPROTO_UDPLITE, length),
      );
      return foldSum(sum) === 0xffff;
    }
    case IPPROTO_ICMP:
      if (packet.ipVersion !== 4 || length < 8) return null;
      return foldSum(onesComplementSum(buf, start, end)) === 0xffff;
    case IPPROTO_ICMPV6:
      if (packet.ipVersion !== 6 || length < 8) return null;
      return (
        foldSum(onesComplementSum(buf, start, end, pseudoHeaderSum(packet, IPPROTO_ICMPV6, length))) ===
        0xffff
      );
    case IPPROTO_DCCP: {
      if (length < 12) return null;
      const dataOffset = buf[start + 4] * 4;
      const checksumCoverage = buf[start + 5] & 0x0f;
      let covered = length;
      if (checksumCoverage !== 0) covered = Math.min(length, dataOffset + (checksumCoverage - 1) * 4);
      const sum = onesComplementSum(
        buf,
        start,
        start + covered,
        pseudoHeaderSum(packet, IPPROTO_DCCP, length),
      );
      return foldSum(sum) === 0xffff;
    }
    case IPPROTO_SCTP: {
      if (length < 12) return null;
      const recorded =
        (buf[start + 8] | (buf[start + 9] << 8) | (buf[start + 10] << 16) | (buf[start + 11] << 24)) >>> 0;
      return sctpCrc32c(buf, start, end, start + 8) === recorded;
    }
    case IPPROTO_GRE:
      if (length < 4 || (buf[start] & 0x80) === 0) return null;
      return foldSum(onesComplementSum(buf, start, end)) === 0xffff;
    default:
      return null;
  }
}
