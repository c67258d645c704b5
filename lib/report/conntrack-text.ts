/**
 * Conntrack text as the real tools print it: event lines as `conntrack -E -o timestamp`
 * (conntrack-tools 1.4.7 over libnetfilter_conntrack 1.0.9) and table lines as
 * /proc/net/nf_conntrack (checked against a 6.18 kernel).
 */
import { writeDecimal, writePadded } from "./ascii-bytes.js";
import { Buffer } from "node:buffer";
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

/** The longest line `ConntrackEventTextEncoder.encode` can write (two IPv6 tuples with counters). */
export const MAX_EVENT_LINE_BYTES = 1024;

const SPACE = 0x20;
const HEX = "0123456789abcdef";

function asciiBytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/** Bytes of the constant pieces, made once (the encoder copies them instead of building strings). */
const HEADER_BYTES = {
  NEW: asciiBytes(`${HEADERS.NEW} `),
  UPDATE: asciiBytes(`${HEADERS.UPDATE} `),
  DESTROY: asciiBytes(`${HEADERS.DESTROY} `),
};
/** "tcp      6 " … by protocol number: the padded name and the number, each with its space. */
const PROTOCOL_BYTES: Uint8Array[] = [];
for (let protocol = 0; protocol < 256; protocol++)
  PROTOCOL_BYTES.push(
    asciiBytes(`${padRight(USERSPACE_PROTOCOL_NAMES[protocol] ?? "unknown", 8)} ${protocol} `),
  );
const STATE_BYTES = TCP_STATE_NAMES.map((name) => asciiBytes(`${name} `));
const SRC = asciiBytes("src=");
const DST = asciiBytes(" dst=");
const SPORT = asciiBytes(" sport=");
const DPORT = asciiBytes(" dport=");
const TYPE = asciiBytes(" type=");
const CODE = asciiBytes(" code=");
const ID = asciiBytes(" id=");
const SRCKEY = asciiBytes(" srckey=0x");
const DSTKEY = asciiBytes(" dstkey=0x");
const PACKETS = asciiBytes("packets=");
const BYTES = asciiBytes(" bytes=");
const UNREPLIED = asciiBytes("[UNREPLIED] ");
const ASSURED = asciiBytes("[ASSURED] ");
const DELTA_TIME = asciiBytes("delta-time=");
const HELPER = asciiBytes("helper=");

/**
 * Writes `conntrack -E` lines as bytes into a caller's buffer: the same text as
 * `formatConntrackEvent` plus a newline, without building strings (an events run writes hundreds of
 * thousands of lines; composing each from template strings cost more than tracking the packets).
 */
export class ConntrackEventTextEncoder {
  /** Where a connection's tuple is read into (the getters `original` and `reply` make a new one). */
  private readonly tuple = new Tuple();

  private readonly timestamp: boolean;
  /** Helper names seen so far, as bytes (helpers are few and their names constant). */
  private readonly helperBytes = new Map<string, Uint8Array>();

  constructor(options: EventTextOptions = {}) {
    this.timestamp = options.timestamp !== false;
  }

  /**
   * Writes the event's line and its newline at `offset`; returns the offset after them. The buffer
   * must have `MAX_EVENT_LINE_BYTES` free from `offset`.
   */
  encode(event: ConntrackEvent, out: Uint8Array, offset: number): number {
    const connection = event.connection;
    let at = offset;
    if (this.timestamp) {
      out[at++] = 0x5b; // [
      at = writePadded(out, at, event.tsSec, 8);
      out[at++] = 0x2e; // .
      at = writePadded(out, at, Math.floor(event.tsNsec / 1000), 6);
      out[at++] = 0x5d; // ]
      out[at++] = 0x09; // tab
    }
    at = copy(out, at, HEADER_BYTES[event.type]);
    at = copy(out, at, PROTOCOL_BYTES[connection.protocol & 0xff]);
    if (event.timeout >= 0) {
      at = writeDecimal(out, at, event.timeout);
      out[at++] = SPACE;
    }
    if (event.state >= 0) at = copy(out, at, STATE_BYTES[event.state]);
    at = writeTuple(out, at, connection.tupleInto(0, this.tuple));
    if (event.hasCounters) at = writeCounters(out, at, event.originalPackets, event.originalBytes);
    if (!event.seenReply) at = copy(out, at, UNREPLIED);
    at = writeTuple(out, at, connection.tupleInto(1, this.tuple));
    if (event.hasCounters) at = writeCounters(out, at, event.replyPackets, event.replyBytes);
    if (event.assured) at = copy(out, at, ASSURED);
    if (event.deltaTime >= 0) {
      at = copy(out, at, DELTA_TIME);
      at = writeDecimal(out, at, event.deltaTime);
      out[at++] = SPACE;
    }
    if (event.helper !== null) {
      let name = this.helperBytes.get(event.helper);
      if (name === undefined) {
        name = asciiBytes(event.helper);
        this.helperBytes.set(event.helper, name);
      }
      at = copy(out, at, HELPER);
      at = copy(out, at, name);
      out[at++] = SPACE;
    }
    // As trimEnd: the pieces each end in a space.
    while (at > offset && (out[at - 1] === SPACE || out[at - 1] === 0x09)) at--;
    out[at++] = 0x0a;
    return at;
  }
}

function copy(out: Uint8Array, at: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) out[at + i] = bytes[i];
  return at + bytes.length;
}

function writeHex(out: Uint8Array, at: number, value: number): number {
  let digits = 1;
  while (digits < 8 && value >>> (4 * digits) !== 0) digits++;
  for (let i = digits - 1; i >= 0; i--) out[at++] = HEX.charCodeAt((value >>> (4 * i)) & 0xf);
  return at;
}

/** Decimal text of 0..255: up to three digit bytes per octet, then its length, four bytes a value. */
const OCTET_TEXT = new Uint8Array(256 * 4);
for (let octet = 0; octet < 256; octet++) {
  const text = String(octet);
  for (let i = 0; i < text.length; i++) OCTET_TEXT[octet * 4 + i] = text.charCodeAt(i);
  OCTET_TEXT[octet * 4 + 3] = text.length;
}

function writeOctet(out: Uint8Array, at: number, octet: number): number {
  const from = octet * 4;
  const length = OCTET_TEXT[from + 3];
  out[at] = OCTET_TEXT[from];
  if (length > 1) out[at + 1] = OCTET_TEXT[from + 1];
  if (length > 2) out[at + 2] = OCTET_TEXT[from + 2];
  return at + length;
}

/** A tuple's source (`source`) or destination address as text at `at`, as `tupleRecord` formats it. */
export function writeTupleAddress(out: Uint8Array, at: number, tuple: Tuple, source: boolean): number {
  if (tuple.family === 4) return writeIpv4(out, at, source ? tuple.src0 : tuple.dst0);
  return source
    ? writeIpv6(out, at, tuple.srcWord0, tuple.srcWord1, tuple.srcWord2, tuple.srcWord3)
    : writeIpv6(out, at, tuple.dstWord0, tuple.dstWord1, tuple.dstWord2, tuple.dstWord3);
}

/** An IPv4 address (a 32-bit word) as dotted decimal at `at`; returns the offset after it. */
export function writeIpv4(out: Uint8Array, at: number, word: number): number {
  at = writeOctet(out, at, word >>> 24);
  out[at++] = 0x2e;
  at = writeOctet(out, at, (word >>> 16) & 0xff);
  out[at++] = 0x2e;
  at = writeOctet(out, at, (word >>> 8) & 0xff);
  out[at++] = 0x2e;
  return writeOctet(out, at, word & 0xff);
}

/** Group `i` (0..7) of the address words. */
function group(w0: number, w1: number, w2: number, w3: number, i: number): number {
  const word = i < 2 ? w0 : i < 4 ? w1 : i < 6 ? w2 : w3;
  return (i & 1) === 0 ? word >>> 16 : word & 0xffff;
}

/** Compressed IPv6 exactly as `formatIpv6Words` writes it (glibc's inet_ntop). */
function writeIpv6(out: Uint8Array, at: number, w0: number, w1: number, w2: number, w3: number): number {
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8;) {
    if (group(w0, w1, w2, w3, i) !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && group(w0, w1, w2, w3, j) === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestLength < 2) bestStart = -1;
  for (let i = 0; i < 8; i++) {
    if (bestStart >= 0 && i >= bestStart && i < bestStart + bestLength) {
      if (i === bestStart) out[at++] = 0x3a;
      continue;
    }
    if (i !== 0) out[at++] = 0x3a;
    if (
      i === 6 &&
      bestStart === 0 &&
      (bestLength === 6 || (bestLength === 5 && group(w0, w1, w2, w3, 5) === 0xffff))
    ) {
      return writeIpv4(out, at, w3 >>> 0);
    }
    at = writeHex(out, at, group(w0, w1, w2, w3, i));
  }
  if (bestStart >= 0 && bestStart + bestLength === 8) out[at++] = 0x3a;
  return at;
}

/** As `tupleText(tuple, false)`, ending in a space. */
function writeTuple(out: Uint8Array, at: number, tuple: Tuple): number {
  at = copy(out, at, SRC);
  if (tuple.family === 4) {
    at = writeIpv4(out, at, tuple.srcWord0 >>> 0);
    at = copy(out, at, DST);
    at = writeIpv4(out, at, tuple.dstWord0 >>> 0);
  } else {
    at = writeIpv6(out, at, tuple.srcWord0, tuple.srcWord1, tuple.srcWord2, tuple.srcWord3);
    at = copy(out, at, DST);
    at = writeIpv6(out, at, tuple.dstWord0, tuple.dstWord1, tuple.dstWord2, tuple.dstWord3);
  }
  switch (tuple.protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_SCTP:
      at = copy(out, at, SPORT);
      at = writeDecimal(out, at, tuple.srcPort);
      at = copy(out, at, DPORT);
      at = writeDecimal(out, at, tuple.dstPort);
      break;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      at = copy(out, at, TYPE);
      at = writeDecimal(out, at, tuple.dstPort >>> 8);
      at = copy(out, at, CODE);
      at = writeDecimal(out, at, tuple.dstPort & 0xff);
      at = copy(out, at, ID);
      at = writeDecimal(out, at, tuple.srcPort);
      break;
    case IPPROTO_GRE:
      at = copy(out, at, SRCKEY);
      at = writeHex(out, at, tuple.srcPort);
      at = copy(out, at, DSTKEY);
      at = writeHex(out, at, tuple.dstPort);
      break;
  }
  out[at++] = SPACE;
  return at;
}

function writeCounters(out: Uint8Array, at: number, packets: number, bytes: number): number {
  at = copy(out, at, PACKETS);
  at = writeDecimal(out, at, packets);
  at = copy(out, at, BYTES);
  at = writeDecimal(out, at, bytes);
  out[at++] = SPACE;
  return at;
}

const eventScratch = Buffer.allocUnsafe(MAX_EVENT_LINE_BYTES);
const stampedEncoder = new ConntrackEventTextEncoder();
const unstampedEncoder = new ConntrackEventTextEncoder({ timestamp: false });

/** One `conntrack -E` line, without the newline. */
export function formatConntrackEvent(event: ConntrackEvent, options: EventTextOptions = {}): string {
  const encoder = options.timestamp === false ? unstampedEncoder : stampedEncoder;
  const end = encoder.encode(event, eventScratch, 0);
  return eventScratch.toString("latin1", 0, end - 1);
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
  if (connection.tcpState >= 0) line += `${TCP_STATE_NAMES[connection.tcpState]} `;
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
