/**
 * A decoded packet's conntrack tuple, filled into a reused Tuple without allocating, so a report can
 * find the live connection a packet belonged to. It follows the engine's own tuple rules (ports for
 * TCP/UDP/UDP-Lite/SCTP, echo id and type/code for ICMP, the call id for PPTP's GRE, nothing else for
 * other protocols), which the engine keeps private.
 */
import {
  IPPROTO_GRE,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
  type DecodedPacket,
} from "../decode/packet.js";
import { Tuple } from "../conntrack/connection.js";
import { formatIpv4, formatIpv6 } from "../conntrack/address.js";

const GRE_PROTOCOL_PPP = 0x880b;

/** What a decoded packet and the packet an ICMP error quotes both have. */
interface AddressedPacket {
  ipVersion: number;
  srcV4: number;
  dstV4: number;
  src: Uint8Array;
  dst: Uint8Array;
}

/** The packet's family and addresses into `tuple`; false when the packet is not IP. */
export function fillPacketAddresses(packet: AddressedPacket, tuple: Tuple): boolean {
  if (packet.ipVersion !== 4 && packet.ipVersion !== 6) return false;
  tuple.setAddresses(packet.ipVersion, packet.srcV4, packet.dstV4, packet.src, packet.dst);
  return true;
}

/** Fills `tuple` from the packet; false when the packet has no tuple (ports missing, not IP). */
export function fillPacketTuple(packet: DecodedPacket, tuple: Tuple): boolean {
  if (!fillPacketAddresses(packet, tuple)) return false;
  tuple.protocol = packet.protocol;
  switch (packet.protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_SCTP:
      if (!packet.hasPorts) return false;
      tuple.srcPort = packet.srcPort;
      tuple.dstPort = packet.dstPort;
      return true;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      if (!packet.hasPorts) return false;
      tuple.srcPort = packet.icmpId;
      tuple.dstPort = (packet.icmpType << 8) | packet.icmpCode;
      return true;
    case IPPROTO_GRE:
      if (packet.greVersion === 1) {
        if (packet.greProtocol !== GRE_PROTOCOL_PPP || !packet.greHasKey) return false;
        tuple.srcPort = 0;
        tuple.dstPort = packet.greKey & 0xffff;
        return true;
      }
      tuple.srcPort = tuple.dstPort = 0;
      return true;
    default:
      tuple.srcPort = tuple.dstPort = 0;
      return true;
  }
}

/** A tuple's source or destination address as text. */
export function tupleAddress(tuple: Tuple, which: "src" | "dst"): string {
  if (which === "src")
    return tuple.family === 4
      ? formatIpv4(tuple.src0)
      : formatIpv6(tuple.src0, tuple.src1, tuple.src2, tuple.src3);
  return tuple.family === 4
    ? formatIpv4(tuple.dst0)
    : formatIpv6(tuple.dst0, tuple.dst1, tuple.dst2, tuple.dst3);
}

/** "10.1.2.3:40000 > 203.0.113.47:80" (ports only for port protocols, ICMP type/code/id otherwise). */
export function describeTuple(tuple: Tuple): string {
  const src = tupleAddress(tuple, "src");
  const dst = tupleAddress(tuple, "dst");
  switch (tuple.protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_SCTP:
      return tuple.family === 4
        ? `${src}:${tuple.srcPort} > ${dst}:${tuple.dstPort}`
        : `[${src}]:${tuple.srcPort} > [${dst}]:${tuple.dstPort}`;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      return `${src} > ${dst} type=${tuple.icmpType} code=${tuple.icmpCode} id=${tuple.icmpId}`;
    default:
      return `${src} > ${dst}`;
  }
}
