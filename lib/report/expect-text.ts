/**
 * Expectation text as the real tools print it: event lines as `conntrack -E expect -o timestamp`
 * (conntrack-tools 1.4.7 over libnetfilter_conntrack 1.0.9) and table lines as
 * /proc/net/nf_conntrack_expect (checked against recordings from a 6.18 kernel).
 */
import { IPPROTO_DCCP, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from "../decode/packet.js";
import { formatIpv4, formatIpv6, formatIpv6Full } from "../conntrack/address.js";
import type { Tuple } from "../conntrack/connection.js";
import {
  EXPECT_INACTIVE,
  EXPECT_PERMANENT,
  EXPECT_USERSPACE,
  expectationRemainingSeconds,
  type Expectation,
  type ExpectEvent,
} from "../conntrack/expectations.js";

const HEADERS = { NEW: "    [NEW]", DESTROY: "[DESTROY]" } as const;
const IPV4_ALL_ONES = "255.255.255.255";
const IPV4_ZERO = "0.0.0.0";
const IPV6_ALL_ONES = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
const IPV6_ZERO = "::";

function hasPorts(protocol: number): boolean {
  return (
    protocol === IPPROTO_TCP ||
    protocol === IPPROTO_UDP ||
    protocol === IPPROTO_UDPLITE ||
    protocol === IPPROTO_SCTP ||
    protocol === IPPROTO_DCCP
  );
}

function source(tuple: Tuple, full: boolean): string {
  if (tuple.family === 4) return formatIpv4(tuple.src0);
  return (full ? formatIpv6Full : formatIpv6)(tuple.src0, tuple.src1, tuple.src2, tuple.src3);
}

function destination(tuple: Tuple, full: boolean): string {
  if (tuple.family === 4) return formatIpv4(tuple.dst0);
  return (full ? formatIpv6Full : formatIpv6)(tuple.dst0, tuple.dst1, tuple.dst2, tuple.dst3);
}

/** `src=… dst=… [sport=… dport=…] ` with the given prefix on the address names. */
function tupleText(tuple: Tuple, prefix: string): string {
  let text = `${prefix}src=${source(tuple, false)} ${prefix}dst=${destination(tuple, false)} `;
  if (hasPorts(tuple.protocol)) text += `sport=${tuple.srcPort} dport=${tuple.dstPort} `;
  return text;
}

/**
 * The mask as the kernel sends it: wildcard parts are 0, everything else all ones (the destination
 * is always exact; ctnetlink fills the parts a helper leaves unset with ones).
 */
function maskText(expectation: Expectation): string {
  const v4 = expectation.tuple.family === 4;
  const ones = v4 ? IPV4_ALL_ONES : IPV6_ALL_ONES;
  const zero = v4 ? IPV4_ZERO : IPV6_ZERO;
  let text = `mask-src=${expectation.srcAddressExact ? ones : zero} mask-dst=${ones} `;
  if (hasPorts(expectation.tuple.protocol))
    text += `sport=${expectation.srcPortExact ? 65535 : 0} dport=65535 `;
  return text;
}

function flagsText(flags: number): string {
  const names: string[] = [];
  if (flags & EXPECT_PERMANENT) names.push("PERMANENT");
  if (flags & EXPECT_INACTIVE) names.push("INACTIVE");
  if (flags & EXPECT_USERSPACE) names.push("USERSPACE");
  return names.length > 0 ? `${names.join(",")} ` : "";
}

export interface ExpectEventTextOptions {
  /** Prefix `[sec.usec]\t` as `-o timestamp` does (default true). */
  timestamp?: boolean;
}

/**
 * conntrack 1.4.7's expectation timestamp: `[%-8ld.%-6ld]`, i.e. the microseconds left-aligned and
 * space-padded with their leading zeros lost (`[1795616309.87756 ]` is .087756 s).
 */
export function expectTimestampPrefix(tsSec: number, tsNsec: number): string {
  const usec = Math.floor(tsNsec / 1000);
  return `[${String(tsSec).padEnd(8, " ")}.${String(usec).padEnd(6, " ")}]\t`;
}

/** One `conntrack -E expect` line, without the newline. */
export function formatExpectEvent(event: ExpectEvent, options: ExpectEventTextOptions = {}): string {
  const expectation = event.expectation;
  let line = options.timestamp === false ? "" : expectTimestampPrefix(event.tsSec, event.tsNsec);
  line += `${HEADERS[event.type]} ${event.timeout} proto=${expectation.tuple.protocol} `;
  line += tupleText(expectation.tuple, "");
  line += maskText(expectation);
  line += tupleText(expectation.master.original, "master-");
  line += flagsText(expectation.flags);
  line += `class=${expectation.expectClass} `;
  if (expectation.helper !== "") line += `helper=${expectation.helper}`;
  return line.trimEnd();
}

export interface ExpectProcLineOptions {
  /** Engine-relative now (ns) the remaining time is computed at. */
  now: number;
  /** Kernel tick rate the remaining time is counted in (default 250). */
  hz?: number;
}

/** One /proc/net/nf_conntrack_expect line (`exp_seq_show`), without the newline. */
export function formatExpectProcLine(expectation: Expectation, options: ExpectProcLineOptions): string {
  const tuple = expectation.tuple;
  const remaining = expectationRemainingSeconds(expectation, options.now, options.hz ?? 250);
  let line = `${remaining} l3proto = ${tuple.family === 4 ? 2 : 10} proto=${tuple.protocol} `;
  line += `src=${source(tuple, true)} dst=${destination(tuple, true)} `;
  if (hasPorts(tuple.protocol)) line += `sport=${tuple.srcPort} dport=${tuple.dstPort} `;
  const flags = expectation.flags;
  if (flags & EXPECT_PERMANENT) line += "PERMANENT";
  if (flags & EXPECT_INACTIVE) line += `${flags & EXPECT_PERMANENT ? "," : ""}INACTIVE`;
  if (flags & EXPECT_USERSPACE) line += `${flags & (EXPECT_PERMANENT | EXPECT_INACTIVE) ? "," : ""}USERSPACE`;
  if (expectation.helper !== "") line += `${flags !== 0 ? " " : ""}${expectation.helper}`;
  return line;
}
