/**
 * Sharding a replay: shard I of N tracks only the packets whose address pair hashes to I, so N runs
 * (processes, machines) over the same captures share the connections between them. The hash is
 * symmetric in the two addresses, so both directions of a connection meet in one shard; an FTP control
 * connection and its data connections (the same two hosts) do too, and an ICMP error goes where the
 * connection it quotes goes (routed by the quoted packet's addresses).
 *
 * What it cannot give: a table limit (`nf_conntrack_max`) is per shard, not global; and packets must
 * carry the connection's own address pair, so neither observed NAT nor the arrival vantage (outside
 * packets address the NAT device) can be sharded this way.
 */
import { IPPROTO_ICMP, IPPROTO_ICMPV6, type DecodedPacket } from "../decode/packet.js";

export interface ShardSelection {
  /** This run's shard, 0 ≤ index < count. */
  index: number;
  count: number;
}

/** Reads `I/N` (shard I of N, counted from 0). Throws with the reason when it is not one. */
export function parseShard(text: string): ShardSelection {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (match === null) throw new Error(`"${text}" is not I/N (shard I of N, counted from 0)`);
  const index = Number(match[1]);
  const count = Number(match[2]);
  if (!Number.isSafeInteger(count) || count < 1) throw new Error(`"${text}": N must be at least 1`);
  if (index >= count) throw new Error(`"${text}": I must be below N (shards 0 to ${count - 1})`);
  return { index, count };
}

/** `onPacket`'s reason for a packet another shard tracks. */
export const OTHER_SHARD = "tracked by another shard";

/** The shard (0 … count-1) of a decoded IP packet. */
export function shardOf(packet: DecodedPacket, count: number): number {
  if (count <= 1) return 0;
  const inner = packet.embedded;
  const error = isIcmpError(packet) && inner.present;
  const version = error ? inner.ipVersion : packet.ipVersion;
  let a: number;
  let b: number;
  if (version === 4) {
    a = error ? inner.srcV4 : packet.srcV4;
    b = error ? inner.dstV4 : packet.dstV4;
  } else {
    a = addressHash(error ? inner.src : packet.src);
    b = addressHash(error ? inner.dst : packet.dst);
  }
  // Order-free: the same for (a, b) and (b, a).
  const low = Math.min(a >>> 0, b >>> 0);
  const high = Math.max(a >>> 0, b >>> 0);
  let h = Math.imul(low ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15) ^ high, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % count;
}

/** ICMP and ICMPv6 errors (and redirects), which conntrack files under the connection they quote. */
function isIcmpError(packet: DecodedPacket): boolean {
  const type = packet.icmpType;
  if (packet.protocol === IPPROTO_ICMP)
    return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
  if (packet.protocol === IPPROTO_ICMPV6) return type < 128 || type === 137;
  return false;
}

function addressHash(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 16; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}
