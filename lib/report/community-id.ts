/**
 * Community ID v1 flow hashes (github.com/corelight/community-id-spec), the flow key Zeek, Suricata,
 * Arkime and Elastic log, so a flow row here joins with their records by one string comparison.
 */
import * as crypto from "node:crypto";
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from "../decode/packet.js";
import type { Tuple } from "../conntrack/connection.js";

/** Request/reply type pairs (Zeek's mapping): a pair hashes the same from both ends. */
const ICMP_COUNTERPART: Readonly<Record<number, number>> = {
  8: 0,
  0: 8,
  13: 14,
  14: 13,
  15: 16,
  16: 15,
  10: 9,
  9: 10,
  17: 18,
  18: 17,
};

const ICMPV6_COUNTERPART: Readonly<Record<number, number>> = {
  128: 129,
  129: 128,
  130: 131,
  131: 130,
  133: 134,
  134: 133,
  135: 136,
  136: 135,
  139: 140,
  140: 139,
  144: 145,
  145: 144,
};

/** Protocols whose hash includes ports (for ICMP: type and counterpart type or code). */
function hasPorts(protocol: number): boolean {
  return (
    protocol === IPPROTO_TCP ||
    protocol === IPPROTO_UDP ||
    protocol === IPPROTO_SCTP ||
    protocol === IPPROTO_ICMP ||
    protocol === IPPROTO_ICMPV6
  );
}

export interface CommunityIdOptions {
  /** 16-bit seed (default 0, as every monitor uses unless configured otherwise). */
  seed?: number;
  /** false: hex digest instead of base64 (the spec's troubleshooting form). */
  base64?: boolean;
}

/**
 * The Community ID of a flow seen from `src` to `dst`. Addresses are 4 or 16 network-order bytes.
 * For TCP, UDP and SCTP the ports are ports; for ICMP and ICMPv6 `srcPort` is the message type and
 * `dstPort` its code; other protocols ignore them.
 */
export function communityId(
  protocol: number,
  src: Uint8Array,
  dst: Uint8Array,
  srcPort: number,
  dstPort: number,
  options: CommunityIdOptions = {},
): string {
  const sport = srcPort;
  let dport = dstPort;
  let oneWay = false;
  if (protocol === IPPROTO_ICMP || protocol === IPPROTO_ICMPV6) {
    const counterpart = (protocol === IPPROTO_ICMP ? ICMP_COUNTERPART : ICMPV6_COUNTERPART)[srcPort];
    if (counterpart === undefined) oneWay = true;
    else dport = counterpart;
  }
  const ports = hasPorts(protocol);
  // The numerically smaller endpoint goes first so both directions hash alike; a one-way ICMP
  // message keeps its direction.
  const order = compareBytes(src, dst);
  const flip = !oneWay && (order > 0 || (order === 0 && ports && sport > dport));
  const first = flip ? dst : src;
  const second = flip ? src : dst;
  const input = Buffer.alloc(2 + first.length + second.length + 2 + (ports ? 4 : 0));
  let at = input.writeUInt16BE((options.seed ?? 0) & 0xffff, 0);
  input.set(first, at);
  at += first.length;
  input.set(second, at);
  at += second.length;
  at = input.writeUInt8(protocol & 0xff, at);
  at = input.writeUInt8(0, at);
  if (ports) {
    at = input.writeUInt16BE(flip ? dport : sport, at);
    input.writeUInt16BE(flip ? sport : dport, at);
  }
  return `1:${sha1(input, options.base64 === false ? "hex" : "base64")}`;
}

/** The one-shot `crypto.hash` (Node 20.12+) is several times cheaper than a Hash object per flow. */
const oneShotHash = (crypto as { hash?: typeof crypto.hash }).hash;

function sha1(input: Buffer, encoding: "hex" | "base64"): string {
  return oneShotHash !== undefined
    ? oneShotHash("sha1", input, encoding)
    : crypto.createHash("sha1").update(input).digest(encoding);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Network-order bytes of a tuple address (engine tuples keep addresses as 32-bit words). */
export function tupleAddressBytes(tuple: Tuple, which: "src" | "dst"): Uint8Array {
  const words =
    which === "src"
      ? [tuple.src0, tuple.src1, tuple.src2, tuple.src3]
      : [tuple.dst0, tuple.dst1, tuple.dst2, tuple.dst3];
  const count = tuple.family === 4 ? 1 : 4;
  const bytes = Buffer.alloc(count * 4);
  for (let i = 0; i < count; i++) bytes.writeUInt32BE(words[i] >>> 0, i * 4);
  return bytes;
}

/**
 * Hash inputs by length (IPv4 or IPv6, with or without ports), reused: the digest is taken before the
 * next flow writes its input.
 */
const tupleInputs = new Map<number, Buffer>();

/** The Community ID of a connection, from its original tuple (as the monitors see the first packet). */
export function tupleCommunityId(tuple: Tuple, options: CommunityIdOptions = {}): string {
  const protocol = tuple.protocol;
  const icmp = protocol === IPPROTO_ICMP || protocol === IPPROTO_ICMPV6;
  const sport = icmp ? tuple.icmpType : tuple.srcPort;
  let dport = icmp ? tuple.icmpCode : tuple.dstPort;
  let oneWay = false;
  if (icmp) {
    const counterpart = (protocol === IPPROTO_ICMP ? ICMP_COUNTERPART : ICMPV6_COUNTERPART)[sport];
    if (counterpart === undefined) oneWay = true;
    else dport = counterpart;
  }
  const ports = hasPorts(protocol);
  const words = tuple.family === 4 ? 1 : 4;
  // Network-order bytes compare as the unsigned address words do, word by word.
  let order = tuple.src0 - tuple.dst0;
  if (words === 4) {
    if (order === 0) order = tuple.src1 - tuple.dst1;
    if (order === 0) order = tuple.src2 - tuple.dst2;
    if (order === 0) order = tuple.src3 - tuple.dst3;
  }
  const flip = !oneWay && (order > 0 || (order === 0 && ports && sport > dport));
  const length = 2 + 8 * words + 2 + (ports ? 4 : 0);
  let input = tupleInputs.get(length);
  if (input === undefined) {
    input = Buffer.alloc(length);
    tupleInputs.set(length, input);
  }
  input.writeUInt16BE((options.seed ?? 0) & 0xffff, 0);
  const first = flip ? 2 + 4 * words : 2;
  const second = flip ? 2 : 2 + 4 * words;
  input.writeUInt32BE(tuple.src0, first);
  input.writeUInt32BE(tuple.dst0, second);
  if (words === 4) {
    input.writeUInt32BE(tuple.src1, first + 4);
    input.writeUInt32BE(tuple.src2, first + 8);
    input.writeUInt32BE(tuple.src3, first + 12);
    input.writeUInt32BE(tuple.dst1, second + 4);
    input.writeUInt32BE(tuple.dst2, second + 8);
    input.writeUInt32BE(tuple.dst3, second + 12);
  }
  let at = 2 + 8 * words;
  input[at++] = protocol & 0xff;
  input[at++] = 0;
  if (ports) {
    input.writeUInt16BE(flip ? dport : sport, at);
    input.writeUInt16BE(flip ? sport : dport, at + 2);
  }
  return `1:${sha1(input, options.base64 === false ? "hex" : "base64")}`;
}
