/**
 * Conntrack text as the real tools print it: event lines as `conntrack -E -o timestamp`
 * (conntrack-tools 1.4.7 over libnetfilter_conntrack 1.0.9) and table lines as
 * /proc/net/nf_conntrack (checked against a 6.18 kernel).
 */
import {
  IPPROTO_GRE,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
} from "../decode/packet.js";
import { formatIpv4, formatIpv6, formatIpv6Full } from "../conntrack/address.js";
import { Connection, TCP_STATE_NAMES, Tuple } from "../conntrack/connection.js";
import { remainingSeconds, type ConntrackEvent } from "../conntrack/engine.js";

/** libnetfilter_conntrack's protocol names; anything else prints as "unknown". */
const USERSPACE_PROTOCOL_NAMES: Record<number, string> = {
  [IPPROTO_TCP]: "tcp",
  [IPPROTO_UDP]: "udp",
  [IPPROTO_UDPLITE]: "udplite",
  [IPPROTO_ICMP]: "icmp",
  [IPPROTO_ICMPV6]: "icmpv6",
  [IPPROTO_SCTP]: "sctp",
  [IPPROTO_GRE]: "gre",
  33: "dccp",
};

/** The kernel's names for protocols it tracks specifically (6.18: no DCCP); the rest use the generic tracker. */
const KERNEL_PROTOCOL_NAMES: Record<number, string> = {
  [IPPROTO_TCP]: "tcp",
  [IPPROTO_UDP]: "udp",
  [IPPROTO_UDPLITE]: "udplite",
  [IPPROTO_ICMP]: "icmp",
  [IPPROTO_ICMPV6]: "icmpv6",
  [IPPROTO_SCTP]: "sctp",
  [IPPROTO_GRE]: "gre",
};

const HEADERS = { NEW: "    [NEW]", UPDATE: " [UPDATE]", DESTROY: "[DESTROY]" } as const;

function padRight(text: string, width: number): string {
  return text.length >= width ? text : text + " ".repeat(width - text.length);
}

function tupleText(tuple: Tuple, fullIpv6: boolean): string {
  let text: string;
  if (tuple.family === 4) {
    text = `src=${formatIpv4(tuple.src0)} dst=${formatIpv4(tuple.dst0)} `;
  } else {
    const format = fullIpv6 ? formatIpv6Full : formatIpv6;
    text =
      `src=${format(tuple.src0, tuple.src1, tuple.src2, tuple.src3)} ` +
      `dst=${format(tuple.dst0, tuple.dst1, tuple.dst2, tuple.dst3)} `;
  }
  switch (tuple.protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_SCTP:
      return `${text}sport=${tuple.srcPort} dport=${tuple.dstPort} `;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      return `${text}type=${tuple.icmpType} code=${tuple.icmpCode} id=${tuple.icmpId} `;
    case IPPROTO_GRE:
      return `${text}srckey=0x${tuple.srcPort.toString(16)} dstkey=0x${tuple.dstPort.toString(16)} `;
    default:
      return text;
  }
}

export interface EventTextOptions {
  /** Prefix `[sec.usec]\t` as `-o timestamp` does (default true). */
  timestamp?: boolean;
}

/** One `conntrack -E` line, without the newline. */
export function formatConntrackEvent(event: ConntrackEvent, options: EventTextOptions = {}): string {
  const connection = event.connection;
  let line = "";
  if (options.timestamp !== false) {
    const usec = Math.floor(event.tsNsec / 1000);
    line += `[${String(event.tsSec).padStart(8, "0")}.${String(usec).padStart(6, "0")}]\t`;
  }
  const protocol = connection.protocol;
  line += `${HEADERS[event.type]} ${padRight(USERSPACE_PROTOCOL_NAMES[protocol] ?? "unknown", 8)} ${protocol} `;
  if (event.timeout >= 0) line += `${event.timeout} `;
  if (event.state >= 0) line += `${TCP_STATE_NAMES[event.state]} `;
  line += tupleText(connection.original, false);
  if (event.hasCounters) line += `packets=${event.originalPackets} bytes=${event.originalBytes} `;
  if (!event.seenReply) line += "[UNREPLIED] ";
  line += tupleText(connection.reply, false);
  if (event.hasCounters) line += `packets=${event.replyPackets} bytes=${event.replyBytes} `;
  if (event.assured) line += "[ASSURED] ";
  if (event.deltaTime >= 0) line += `delta-time=${event.deltaTime} `;
  if (event.helper !== null) line += `helper=${event.helper} `;
  return line.trimEnd();
}

export interface ProcLineOptions {
  /** Engine-relative now (ns) the remaining time and delta-time are computed at. */
  now: number;
  /** nf_conntrack_acct was on: print counters. */
  accounting: boolean;
  /** nf_conntrack_timestamp was on: print delta-time. */
  timestamps: boolean;
  /** Reference count the reader sees (2 on a live table: the table's and the reader's). */
  use?: number;
  /** Kernel tick rate the remaining time is counted in (default 250). */
  hz?: number;
  /** GRE entries print the timeouts copied at creation (defaults 30 and 180). */
  greTimeout?: number;
  greTimeoutStream?: number;
}

/** One /proc/net/nf_conntrack line, without the newline. */
export function formatProcLine(connection: Connection, options: ProcLineOptions): string {
  const original = connection.original;
  const protocol = original.protocol;
  const family = original.family === 4 ? "ipv4     2 " : "ipv6     10 ";
  const remaining = Math.max(0, remainingSeconds(connection.expiresAt, options.now, options.hz ?? 250));
  let line = `${family}${padRight(KERNEL_PROTOCOL_NAMES[protocol] ?? "unknown", 8)} ${protocol} ${remaining} `;
  if (connection.tcp !== null) line += `${TCP_STATE_NAMES[connection.tcp.state]} `;
  if (protocol === IPPROTO_GRE) {
    line += `timeout=${options.greTimeout ?? 30}, stream_timeout=${options.greTimeoutStream ?? 180} `;
  }
  line += tupleText(original, true);
  if (options.accounting) line += `packets=${connection.originalPackets} bytes=${connection.originalBytes} `;
  if (!connection.seenReply) line += "[UNREPLIED] ";
  line += tupleText(connection.reply, true);
  if (options.accounting) line += `packets=${connection.replyPackets} bytes=${connection.replyBytes} `;
  if (connection.assured) line += "[ASSURED] ";
  line += "mark=0 zone=0 ";
  if (options.timestamps) {
    const delta = Math.floor((options.now - connection.startedAt) / 1e9);
    line += `delta-time=${delta > 0 ? delta : 0} `;
  }
  return `${line}use=${options.use ?? 2}`;
}
