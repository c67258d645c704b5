/** Hand-built DecodedPacket objects for the conntrack tests (no decoder involved). */
import {
  DecodedPacket,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
} from "../../lib/decode/packet.js";
import { ConntrackEngine, ConntrackEvent } from "../../lib/conntrack/engine.js";
import { formatConntrackEvent } from "../../lib/report/conntrack-text.js";

export function parseAddress(text: string, out: Uint8Array): number {
  out.fill(0);
  if (!text.includes(":")) {
    const parts = text.split(".").map(Number);
    for (let i = 0; i < 4; i++) out[i] = parts[i];
    return 4;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, ""];
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === "" ? [] : tail.split(":");
  const groups = [
    ...headGroups,
    ...new Array(8 - headGroups.length - tailGroups.length).fill("0"),
    ...tailGroups,
  ];
  for (let i = 0; i < 8; i++) {
    const value = parseInt(groups[i], 16);
    out[2 * i] = value >> 8;
    out[2 * i + 1] = value & 0xff;
  }
  return 6;
}

interface Common {
  src: string;
  dst: string;
  /** Seconds (fractional allowed). */
  ts: number;
}

function base(o: Common, protocol: number, l4Length: number): DecodedPacket {
  const p = new DecodedPacket();
  p.ipVersion = parseAddress(o.src, p.src);
  parseAddress(o.dst, p.dst);
  if (p.ipVersion === 4) {
    p.srcV4 = ((p.src[0] << 24) | (p.src[1] << 16) | (p.src[2] << 8) | p.src[3]) >>> 0;
    p.dstV4 = ((p.dst[0] << 24) | (p.dst[1] << 16) | (p.dst[2] << 8) | p.dst[3]) >>> 0;
  }
  p.protocol = protocol;
  p.tsSec = Math.floor(o.ts);
  p.tsNsec = Math.round((o.ts - p.tsSec) * 1e9);
  p.ipHeaderLength = p.ipVersion === 4 ? 20 : 40;
  p.l4Length = l4Length;
  p.ipLength = p.ipHeaderLength + l4Length;
  p.ttl = 64;
  return p;
}

export interface TcpSpec extends Common {
  sport: number;
  dport: number;
  /** Flag letters: S A F R P U, e.g. "SA". */
  flags: string;
  seq?: number;
  ack?: number;
  win?: number;
  len?: number;
  /** Window-scale option value (adds options). */
  wscale?: number;
  sackPerm?: boolean;
  sack?: [number, number][];
}

export function makeTcp(o: TcpSpec): DecodedPacket {
  const hasOptions = o.wscale !== undefined || o.sackPerm === true || (o.sack?.length ?? 0) > 0;
  const headerWords = hasOptions ? 8 : 5;
  const len = o.len ?? 0;
  const p = base(o, IPPROTO_TCP, headerWords * 4 + len);
  p.hasPorts = true;
  p.srcPort = o.sport;
  p.dstPort = o.dport;
  let flags = 0;
  for (const letter of o.flags) flags |= { F: 1, S: 2, R: 4, P: 8, A: 16, U: 32 }[letter] ?? 0;
  p.tcpFlags = flags;
  p.tcpSeq = (o.seq ?? 0) >>> 0;
  p.tcpAck = (o.ack ?? 0) >>> 0;
  p.tcpWindow = o.win ?? 64240;
  p.tcpDataOffset = headerWords * 4;
  p.payloadLength = len;
  p.payloadCaptured = len;
  p.tcpWindowScale = o.wscale ?? -1;
  p.tcpSackPermitted = o.sackPerm ?? false;
  p.tcpSackCount = o.sack?.length ?? 0;
  (o.sack ?? []).forEach(([left, right], i) => {
    p.tcpSackBlocks[2 * i] = left >>> 0;
    p.tcpSackBlocks[2 * i + 1] = right >>> 0;
  });
  return p;
}

export interface UdpSpec extends Common {
  sport: number;
  dport: number;
  len?: number;
}

export function makeUdp(o: UdpSpec): DecodedPacket {
  const len = o.len ?? 10;
  const p = base(o, IPPROTO_UDP, 8 + len);
  p.hasPorts = true;
  p.srcPort = o.sport;
  p.dstPort = o.dport;
  p.udpLength = 8 + len;
  p.payloadLength = len;
  return p;
}

export interface IcmpSpec extends Common {
  type: number;
  code?: number;
  id?: number;
  seq?: number;
  len?: number;
  /** Quoted packet of an error: protocol and the quoted header's addresses/ports. */
  inner?: {
    src: string;
    dst: string;
    protocol: number;
    sport?: number;
    dport?: number;
    type?: number;
    id?: number;
  };
  hopLimit?: number;
}

export function makeIcmp(o: IcmpSpec): DecodedPacket {
  const v6 = o.src.includes(":");
  const len = o.len ?? 56;
  const p = base(o, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, 8 + len);
  p.hasPorts = true;
  p.icmpType = o.type;
  p.icmpCode = o.code ?? 0;
  p.icmpId = o.id ?? 0;
  p.icmpSeq = o.seq ?? 0;
  if (o.hopLimit !== undefined) p.ttl = o.hopLimit;
  if (o.inner) {
    const e = p.embedded;
    e.present = true;
    e.ipVersion = parseAddress(o.inner.src, e.src);
    parseAddress(o.inner.dst, e.dst);
    if (e.ipVersion === 4) {
      e.srcV4 = ((e.src[0] << 24) | (e.src[1] << 16) | (e.src[2] << 8) | e.src[3]) >>> 0;
      e.dstV4 = ((e.dst[0] << 24) | (e.dst[1] << 16) | (e.dst[2] << 8) | e.dst[3]) >>> 0;
    }
    e.protocol = o.inner.protocol;
    e.hasPorts = true;
    e.srcPort = o.inner.sport ?? 0;
    e.dstPort = o.inner.dport ?? 0;
    e.icmpType = o.inner.type ?? 0;
    e.icmpId = o.inner.id ?? 0;
  }
  return p;
}

export function makeGeneric(o: Common & { protocol: number; len?: number }): DecodedPacket {
  return base(o, o.protocol, o.len ?? 20);
}

/** An engine whose events are formatted as `conntrack -E -o timestamp` lines into `lines`. */
export function recordingEngine(
  settings: Record<string, number> = {},
  timestamp = false,
): { engine: ConntrackEngine; lines: string[]; events: ConntrackEvent[] } {
  const lines: string[] = [];
  const events: ConntrackEvent[] = [];
  const engine = new ConntrackEngine({
    settings,
    onEvent: (event) => {
      lines.push(formatConntrackEvent(event, { timestamp }));
      events.push(Object.assign(new ConntrackEvent(), event));
    },
  });
  return { engine, lines, events };
}

/**
 * A random packet between a few IPv4 or IPv6 hosts on a few ports: TCP of any common flags, UDP, ICMP
 * echo (and IPv4 timestamp) requests and replies, GRE, SCTP and an unknown protocol. `random(n)` gives
 * 0 … n-1; the packet's time is left to the caller.
 */
export function randomPacket(random: (n: number) => number): DecodedPacket {
  const hosts = ["10.0.0.1", "10.0.0.2", "192.0.2.9", "2001:db8::1", "2001:db8::2", "fe80::9"];
  const v6 = random(3) === 0;
  const a = hosts[(v6 ? 3 : 0) + random(3)];
  const b = hosts[(v6 ? 3 : 0) + random(3)];
  const [src, dst] = random(2) === 0 ? [a, b] : [b, a];
  const sport = 1000 + random(4);
  const dport = [80, 53, 1000][random(3)];
  const kind = random(10);
  return kind < 5
    ? makeTcp({ src, dst, sport, dport, ts: 1, flags: ["S", "SA", "A", "FA", "R", "PA"][random(6)] })
    : kind < 7
      ? makeUdp({ src, dst, sport, dport, ts: 1 })
      : kind < 9
        ? makeIcmp({
            src,
            dst,
            type: v6 ? [128, 129][random(2)] : [8, 0, 13][random(3)],
            id: random(3),
            ts: 1,
          })
        : makeGeneric({ src, dst, protocol: [47, 132, 99][random(3)], ts: 1 });
}
