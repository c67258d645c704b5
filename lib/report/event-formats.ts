/**
 * Machine-readable forms of conntrack events and table entries (CSV, JSON array, NDJSON), and the
 * `conntrack -L` line. Field names follow the conntrack tools' own words (src, dst, sport, dport,
 * type, code, id, srckey, dstkey, packets, bytes, delta-time) so the columns explain themselves.
 */
import { stringify } from "csv-stringify/sync";
import {
  IPPROTO_GRE,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
} from "../decode/packet.js";
import { formatIpv4, formatIpv6 } from "../conntrack/address.js";
import { TCP_STATE_NAMES, type Connection, type Tuple } from "../conntrack/connection.js";
import { ConntrackEvent, remainingSeconds, type ConntrackEngine } from "../conntrack/engine.js";
import {
  EXPECT_INACTIVE,
  EXPECT_PERMANENT,
  EXPECT_USERSPACE,
  ExpectEvent,
  expectationRemainingSeconds,
  type Expectation,
} from "../conntrack/expectations.js";
import { writeAscii, writePadded } from "./ascii-bytes.js";
import { formatConntrackEvent, type ProcLineOptions } from "./conntrack-text.js";
import { formatExpectEvent } from "./expect-text.js";

export const EVENT_FORMATS = ["text", "csv", "json", "ndjson"] as const;
export type EventFormat = (typeof EVENT_FORMATS)[number];

/** A tuple as conntrack prints it; only the fields its protocol has are present. */
export interface TupleRecord {
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  type?: number;
  code?: number;
  id?: number;
  srckey?: string;
  dstkey?: string;
}

/** What an event and a table entry share. Absent values are null so every record has every key. */
export interface ConnectionRecord {
  protocol: string;
  protocolNumber: number;
  /** Remaining seconds; null when the message had none (DESTROY after natural expiry). */
  timeout: number | null;
  /** TCP state name when the message carried it. */
  state: string | null;
  original: TupleRecord;
  reply: TupleRecord;
  /** "UNREPLIED", "ASSURED" as printed. */
  flags: string[];
  originalPackets: number | null;
  originalBytes: number | null;
  replyPackets: number | null;
  replyBytes: number | null;
  deltaTime: number | null;
  /** The helper attached to the connection (in every record, not only where `conntrack -E` prints it). */
  helper: string | null;
  /** The engine's sequential connection id (1 = first connection created). */
  id: number;
  /** For a RELATED connection (it fulfilled an expectation): the id of its master, else null. */
  masterId: number | null;
}

export interface EventRecord extends ConnectionRecord {
  /** ISO 8601 UTC with nanoseconds. */
  time: string;
  /** Seconds since the epoch with microseconds, as `conntrack -E -o timestamp` prints them. */
  epoch: number;
  type: "NEW" | "UPDATE" | "DESTROY";
  /** DESTROY only: expired, reset (RST on an unanswered entry), reopen (SYN reusing the tuple), drain. */
  cause: string | null;
}

/** libnetfilter_conntrack's names; anything else prints as "unknown". */
const PROTOCOL_NAMES: Record<number, string> = {
  [IPPROTO_TCP]: "tcp",
  [IPPROTO_UDP]: "udp",
  [IPPROTO_UDPLITE]: "udplite",
  [IPPROTO_ICMP]: "icmp",
  [IPPROTO_ICMPV6]: "icmpv6",
  [IPPROTO_SCTP]: "sctp",
  [IPPROTO_GRE]: "gre",
  33: "dccp",
};

export function protocolName(protocol: number): string {
  return PROTOCOL_NAMES[protocol] ?? "unknown";
}

export function tupleRecord(tuple: Tuple): TupleRecord {
  const record: TupleRecord =
    tuple.family === 4
      ? { src: formatIpv4(tuple.src0), dst: formatIpv4(tuple.dst0) }
      : {
          src: formatIpv6(tuple.src0, tuple.src1, tuple.src2, tuple.src3),
          dst: formatIpv6(tuple.dst0, tuple.dst1, tuple.dst2, tuple.dst3),
        };
  switch (tuple.protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_SCTP:
      record.sport = tuple.srcPort;
      record.dport = tuple.dstPort;
      break;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      record.type = tuple.icmpType;
      record.code = tuple.icmpCode;
      record.id = tuple.icmpId;
      break;
    case IPPROTO_GRE:
      record.srckey = `0x${tuple.srcPort.toString(16)}`;
      record.dstkey = `0x${tuple.dstPort.toString(16)}`;
      break;
  }
  return record;
}

function flagsOf(seenReply: boolean, assured: boolean): string[] {
  const flags: string[] = [];
  if (!seenReply) flags.push("UNREPLIED");
  if (assured) flags.push("ASSURED");
  return flags;
}

/** Epoch seconds cut to microseconds, as `-o timestamp` prints them. */
function epochOf(tsSec: number, tsNsec: number): number {
  return Number(`${tsSec}.${String(Math.floor(tsNsec / 1000)).padStart(6, "0")}`);
}

/** An event as a plain object (a copy: the engine reuses its event). */
export function eventRecord(event: ConntrackEvent): EventRecord {
  const connection = event.connection;
  return {
    time: isoTimeNs(event.tsSec, event.tsNsec),
    epoch: epochOf(event.tsSec, event.tsNsec),
    type: event.type,
    protocol: protocolName(connection.protocol),
    protocolNumber: connection.protocol,
    timeout: event.timeout >= 0 ? event.timeout : null,
    state: event.state >= 0 ? TCP_STATE_NAMES[event.state] : null,
    original: tupleRecord(connection.original),
    reply: tupleRecord(connection.reply),
    flags: flagsOf(event.seenReply, event.assured),
    originalPackets: event.hasCounters ? event.originalPackets : null,
    originalBytes: event.hasCounters ? event.originalBytes : null,
    replyPackets: event.hasCounters ? event.replyPackets : null,
    replyBytes: event.hasCounters ? event.replyBytes : null,
    deltaTime: event.deltaTime >= 0 ? event.deltaTime : null,
    helper: connection.helper,
    id: connection.id,
    masterId: masterIdOf(connection),
    cause: event.type === "DESTROY" && event.destroyCause !== "" ? event.destroyCause : null,
  };
}

export interface TableView {
  /** Engine-relative now (ns) the table is read at. */
  now: number;
  /** nf_conntrack_acct was on: entries carry counters. */
  accounting: boolean;
  /** nf_conntrack_timestamp was on: entries carry delta-time. */
  timestamps: boolean;
  /** Kernel tick rate (CONFIG_HZ). */
  hz: number;
}

/** How an engine's live table reads now (its clock and its accounting, timestamp and tick settings). */
export function tableViewOf(engine: ConntrackEngine): TableView {
  return {
    now: engine.now,
    accounting: engine.settings.acct !== 0,
    timestamps: engine.settings.timestamp !== 0,
    hz: engine.settings.hz,
  };
}

/** The `/proc/net/nf_conntrack` line options of an engine's live table (`formatProcLine`). */
export function procLineOptionsOf(engine: ConntrackEngine): ProcLineOptions {
  return {
    ...tableViewOf(engine),
    use: 2,
    greTimeout: engine.settings.greTimeout,
    greTimeoutStream: engine.settings.greTimeoutStream,
  };
}

/** A live table entry as a plain object, as `conntrack -L` would report it at `view.now`. */
export function connectionRecord(connection: Connection, view: TableView): ConnectionRecord {
  return {
    protocol: protocolName(connection.protocol),
    protocolNumber: connection.protocol,
    timeout: Math.max(0, remainingSeconds(connection.expiresAt, view.now, view.hz)),
    state: connection.tcpState >= 0 ? TCP_STATE_NAMES[connection.tcpState] : null,
    original: tupleRecord(connection.original),
    reply: tupleRecord(connection.reply),
    flags: flagsOf(connection.seenReply, connection.assured),
    originalPackets: view.accounting ? connection.originalPackets : null,
    originalBytes: view.accounting ? connection.originalBytes : null,
    replyPackets: view.accounting ? connection.replyPackets : null,
    replyBytes: view.accounting ? connection.replyBytes : null,
    deltaTime: view.timestamps ? listDeltaTime(connection, view.now) : null,
    helper: connection.helper,
    id: connection.id,
    masterId: masterIdOf(connection),
  };
}

function masterIdOf(connection: Connection): number | null {
  const masterId = connection.masterId;
  return masterId > 0 ? masterId : null;
}

/**
 * libnetfilter_conntrack's delta-time for a live entry: the difference of whole seconds of now and
 * of the start (engine times count from a whole second, so flooring them is flooring epoch times).
 */
function listDeltaTime(connection: Connection, now: number): number {
  const delta = Math.floor(now / 1e9) - Math.floor(connection.startedAt / 1e9);
  return delta > 0 ? delta : 0;
}

/**
 * One `conntrack -L` line (conntrack-tools 1.4.7): the event layout without header, then `mark=0`
 * (dumps always carry the mark), delta-time, helper and `use=1`.
 */
export function formatConntrackListLine(connection: Connection, view: TableView): string {
  const event = listEvent;
  event.type = "UPDATE";
  event.connection = connection;
  event.timeout = Math.max(0, remainingSeconds(connection.expiresAt, view.now, view.hz));
  event.state = connection.tcpState;
  event.seenReply = connection.seenReply;
  event.assured = connection.assured;
  event.hasCounters = view.accounting;
  event.originalPackets = connection.originalPackets;
  event.originalBytes = connection.originalBytes;
  event.replyPackets = connection.replyPackets;
  event.replyBytes = connection.replyBytes;
  event.deltaTime = -1;
  event.helper = null;
  // The event layout starts with the `%9s ` header; a listing has none.
  let line = `${formatConntrackEvent(event, { timestamp: false }).slice(EVENT_HEADER_WIDTH)} mark=0 `;
  if (view.timestamps) line += `delta-time=${listDeltaTime(connection, view.now)} `;
  if (connection.helper !== null) line += `helper=${connection.helper} `;
  return `${line}use=1`;
}

const EVENT_HEADER_WIDTH = 10;
const listEvent = new ConntrackEvent();

/** The trailer `conntrack -L` prints on standard error. */
export function conntrackListTrailer(count: number): string {
  return `conntrack v1.4.7 (conntrack-tools): ${count} flow entries have been shown.`;
}

// ------------------------------------------------------------------ expectations

/** An expectation as a plain object: what `conntrack -L expect` shows, plus the master's id. */
export interface ExpectationRecord {
  /** Remaining whole seconds of its timer. */
  timeout: number;
  protocol: string;
  protocolNumber: number;
  /** The expected connection's original tuple; a wildcard part holds 0 (see `mask`). */
  tuple: TupleRecord;
  /** Which parts of `tuple` must match: all ones exact, 0 any (as `mask-src=`, `mask-dst=` print it). */
  mask: TupleRecord;
  /** The master connection's original tuple (`master-src=` …). */
  master: TupleRecord;
  /**
   * The master's connection id. In an event, also while the master is not confirmed yet (TFTP: the
   * request that creates the master announces the reply): the id its confirmation gives it; null
   * for a master never confirmed.
   */
  masterId: number | null;
  class: number;
  helper: string | null;
  /** PERMANENT, INACTIVE, USERSPACE as printed (FTP and TFTP set none). */
  flags: string[];
  /** The engine's sequential expectation id (1 = first expectation created). */
  id: number;
}

export interface ExpectEventRecord extends ExpectationRecord {
  /** ISO 8601 UTC with nanoseconds. */
  time: string;
  /** Seconds since the epoch with microseconds. */
  epoch: number;
  type: "NEW" | "DESTROY";
  /** DESTROY only: used (a connection fulfilled it), expired, evicted, replaced, master-destroyed, drain. */
  cause: string | null;
}

const MASK_ONES = { 4: "255.255.255.255", 6: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" } as const;
const MASK_ZERO = { 4: "0.0.0.0", 6: "::" } as const;

function maskRecord(expectation: Expectation): TupleRecord {
  const family = expectation.tuple.family === 4 ? 4 : 6;
  const record: TupleRecord = {
    src: expectation.srcAddressExact ? MASK_ONES[family] : MASK_ZERO[family],
    dst: MASK_ONES[family],
  };
  const protocol = expectation.tuple.protocol;
  if (
    protocol === IPPROTO_TCP ||
    protocol === IPPROTO_UDP ||
    protocol === IPPROTO_UDPLITE ||
    protocol === IPPROTO_SCTP
  ) {
    record.sport = expectation.srcPortExact ? 0xffff : 0;
    record.dport = 0xffff;
  }
  return record;
}

function expectFlags(flags: number): string[] {
  const names: string[] = [];
  if (flags & EXPECT_PERMANENT) names.push("PERMANENT");
  if (flags & EXPECT_INACTIVE) names.push("INACTIVE");
  if (flags & EXPECT_USERSPACE) names.push("USERSPACE");
  return names;
}

/** A live expectation as a plain object, `timeout` being its remaining whole seconds. */
export function expectationRecord(expectation: Expectation, timeout: number): ExpectationRecord {
  return {
    timeout,
    protocol: protocolName(expectation.tuple.protocol),
    protocolNumber: expectation.tuple.protocol,
    tuple: tupleRecord(expectation.tuple),
    mask: maskRecord(expectation),
    master: tupleRecord(expectation.master.original),
    masterId: expectation.master.id > 0 ? expectation.master.id : null,
    class: expectation.expectClass,
    helper: expectation.helper === "" ? null : expectation.helper,
    flags: expectFlags(expectation.flags),
    id: expectation.id,
  };
}

/** An expectation event as a plain object (a copy: the engine reuses its event). */
export function expectEventRecord(event: ExpectEvent): ExpectEventRecord {
  return {
    time: isoTimeNs(event.tsSec, event.tsNsec),
    epoch: epochOf(event.tsSec, event.tsNsec),
    type: event.type,
    ...expectationRecord(event.expectation, event.timeout),
    masterId: event.masterId > 0 ? event.masterId : null,
    cause: event.type === "DESTROY" && event.cause !== "" ? event.cause : null,
  };
}

/** The remaining seconds of a live expectation as the table shows it at `view.now`. */
export function expectationTimeout(expectation: Expectation, view: TableView): number {
  return expectationRemainingSeconds(expectation, view.now, view.hz);
}

/**
 * One `conntrack -L expect` line (conntrack-tools 1.4.7, checked on this kernel): the event layout
 * without its `%9s ` header and without a timestamp.
 */
export function formatExpectListLine(expectation: Expectation, view: TableView): string {
  const event = listExpectEvent;
  event.type = "NEW";
  event.expectation = expectation;
  event.timeout = expectationTimeout(expectation, view);
  return formatExpectEvent(event, { timestamp: false }).slice(EVENT_HEADER_WIDTH);
}

const listExpectEvent = new ExpectEvent();

/** The trailer `conntrack -L expect` prints on standard error. */
export function conntrackExpectListTrailer(count: number): string {
  return `conntrack v1.4.7 (conntrack-tools): ${count} expectations have been shown.`;
}

// ------------------------------------------------------------------ CSV

const TUPLE_COLUMNS = ["src", "dst", "sport", "dport", "type", "code", "id", "srckey", "dstkey"] as const;

const CONNECTION_COLUMNS = [
  "protocol",
  "protocol_number",
  "timeout",
  "state",
  ...TUPLE_COLUMNS.map((name) => `orig_${name}`),
  ...TUPLE_COLUMNS.map((name) => `reply_${name}`),
  "flags",
  "orig_packets",
  "orig_bytes",
  "reply_packets",
  "reply_bytes",
  "delta_time",
  "helper",
  "connection_id",
  "master_connection_id",
];

export const EVENT_CSV_COLUMNS = ["time", "epoch", "type", ...CONNECTION_COLUMNS, "cause"];
export const TABLE_CSV_COLUMNS = CONNECTION_COLUMNS;

const EXPECTATION_COLUMNS = [
  "timeout",
  "protocol",
  "protocol_number",
  "src",
  "dst",
  "sport",
  "dport",
  "mask_src",
  "mask_dst",
  "mask_sport",
  "mask_dport",
  "master_src",
  "master_dst",
  "master_sport",
  "master_dport",
  "master_connection_id",
  "class",
  "helper",
  "flags",
  "expectation_id",
];

export const EXPECT_EVENT_CSV_COLUMNS = ["time", "epoch", "type", ...EXPECTATION_COLUMNS, "cause"];
export const EXPECT_TABLE_CSV_COLUMNS = EXPECTATION_COLUMNS;

type Cell = string | number | null | undefined;

function connectionCells(record: ConnectionRecord): Cell[] {
  const cells: Cell[] = [record.protocol, record.protocolNumber, record.timeout, record.state];
  for (const name of TUPLE_COLUMNS) cells.push(record.original[name]);
  for (const name of TUPLE_COLUMNS) cells.push(record.reply[name]);
  cells.push(
    record.flags.join(" "),
    record.originalPackets,
    record.originalBytes,
    record.replyPackets,
    record.replyBytes,
    record.deltaTime,
    record.helper,
    record.id,
    record.masterId,
  );
  return cells;
}

/** Epoch seconds printed as conntrack does (six decimals), not as a float might round them. */
function epochText(record: EventRecord): string {
  return record.epoch.toFixed(6);
}

/** A character that makes csv-stringify quote a cell (delimiter, quote, record delimiters). */
const NEEDS_QUOTES = /[",\r\n]/;

/**
 * One CSV line. Rows whose cells need no quoting (nearly all: numbers, addresses, states) are joined
 * here, as csv-stringify would write them; the others go through csv-stringify, which a reader of the
 * CSV can rely on. Building a stringifier per row cost more than the rest of a report's row.
 */
export function csvRow(cells: readonly Cell[]): string {
  let line = "";
  for (let i = 0; i < cells.length; i++) {
    const cell = cells[i];
    const text = cell === null || cell === undefined ? "" : typeof cell === "number" ? `${cell}` : cell;
    if (typeof cell === "string" && NEEDS_QUOTES.test(cell)) return stringifyRow(cells);
    line = i === 0 ? text : `${line},${text}`;
  }
  return `${line}\n`;
}

function stringifyRow(cells: readonly Cell[]): string {
  return stringify([cells.map((cell) => (cell === null || cell === undefined ? "" : cell))]);
}

export function eventCsvRow(record: EventRecord): string {
  return csvRow([record.time, epochText(record), record.type, ...connectionCells(record), record.cause]);
}

export function connectionCsvRow(record: ConnectionRecord): string {
  return csvRow(connectionCells(record));
}

function expectationCells(record: ExpectationRecord): Cell[] {
  const { tuple, mask, master } = record;
  return [
    record.timeout,
    record.protocol,
    record.protocolNumber,
    tuple.src,
    tuple.dst,
    tuple.sport,
    tuple.dport,
    mask.src,
    mask.dst,
    mask.sport,
    mask.dport,
    master.src,
    master.dst,
    master.sport,
    master.dport,
    record.masterId,
    record.class,
    record.helper,
    record.flags.join(" "),
    record.id,
  ];
}

export function expectEventCsvRow(record: ExpectEventRecord): string {
  return csvRow([
    record.time,
    record.epoch.toFixed(6),
    record.type,
    ...expectationCells(record),
    record.cause,
  ]);
}

export function expectationCsvRow(record: ExpectationRecord): string {
  return csvRow(expectationCells(record));
}

// ------------------------------------------------------------------ streaming formatters

/** Turns a stream of items into text pieces: a header, one piece per item, a footer. */
export interface StreamFormatter<T> {
  header(): string;
  format(item: T): string;
  footer(): string;
}

export type EventFormatter = StreamFormatter<ConntrackEvent>;

export interface EventFormatterOptions {
  /** Text format: prefix `[sec.usec]\t` as `conntrack -E -o timestamp` (default true). */
  timestamp?: boolean;
}

export function createEventFormatter(
  format: EventFormat,
  options: EventFormatterOptions = {},
): EventFormatter {
  switch (format) {
    case "text":
      return {
        header: () => "",
        format: (event) => `${formatConntrackEvent(event, { timestamp: options.timestamp !== false })}\n`,
        footer: () => "",
      };
    case "csv":
      return {
        header: () => csvRow(EVENT_CSV_COLUMNS),
        format: (event) => eventCsvRow(eventRecord(event)),
        footer: () => "",
      };
    case "ndjson":
      return {
        header: () => "",
        format: (event) => `${JSON.stringify(eventRecord(event))}\n`,
        footer: () => "",
      };
    case "json":
      return new JsonArrayFormatter((event: ConntrackEvent) => eventRecord(event));
  }
}

/**
 * Expectation events in the same formats: text as `conntrack -E expect [-o timestamp]` prints them
 * (with that tool's own space-padded timestamp), or records with the master's id.
 */
export function createExpectEventFormatter(
  format: EventFormat,
  options: EventFormatterOptions = {},
): StreamFormatter<ExpectEvent> {
  switch (format) {
    case "text":
      return {
        header: () => "",
        format: (event) => `${formatExpectEvent(event, { timestamp: options.timestamp !== false })}\n`,
        footer: () => "",
      };
    case "csv":
      return {
        header: () => csvRow(EXPECT_EVENT_CSV_COLUMNS),
        format: (event) => expectEventCsvRow(expectEventRecord(event)),
        footer: () => "",
      };
    case "ndjson":
      return {
        header: () => "",
        format: (event) => `${JSON.stringify(expectEventRecord(event))}\n`,
        footer: () => "",
      };
    case "json":
      return new JsonArrayFormatter((event: ExpectEvent) => expectEventRecord(event));
  }
}

/** A JSON array written one element at a time, so the whole output is never held in memory. */
export class JsonArrayFormatter<T> {
  private count = 0;
  constructor(private readonly toRecord: (item: T) => unknown) {}
  header(): string {
    return "[";
  }
  format(item: T): string {
    return `${this.count++ === 0 ? "\n" : ",\n"}${JSON.stringify(this.toRecord(item))}`;
  }
  footer(): string {
    return this.count === 0 ? "]\n" : "\n]\n";
  }
}

/**
 * Whole seconds formatted lately (`YYYY-MM-DDTHH:MM:SS.`), by the second's low bits: a flow's first,
 * last and end times, and events in time order, mostly find theirs without a Date.
 */
const isoSecondKeys = new Float64Array(512).fill(Number.NaN);
const isoSecondTexts: string[] = new Array<string>(512).fill("");
/** Zero-padded three-digit groups of the nanoseconds. */
const ISO_DIGITS3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"));

/** `YYYY-MM-DDTHH:MM:SS.` of a capture second, the part of `isoTimeNs` before the nanoseconds. */
export function isoSecondPrefix(tsSec: number): string {
  const slot = tsSec & 511;
  if (isoSecondKeys[slot] === tsSec) return isoSecondTexts[slot];
  const prefix = `${new Date(tsSec * 1000).toISOString().slice(0, 19)}.`;
  isoSecondKeys[slot] = tsSec;
  isoSecondTexts[slot] = prefix;
  return prefix;
}

/** Seconds from one capture time to another (exact to the nanosecond where a double can be). */
export function secondsBetween(fromSec: number, fromNsec: number, toSec: number, toNsec: number): number {
  return ((toSec - fromSec) * 1e9 + (toNsec - fromNsec)) / 1e9;
}

/** `isoTimeNs(tsSec, tsNsec)` as bytes at `at`; returns the offset after them. */
export function writeIsoTime(out: Uint8Array, at: number, tsSec: number, tsNsec: number): number {
  if (!(tsNsec >= 0 && tsNsec < 1e9 && Number.isInteger(tsNsec)))
    return writeAscii(out, at, isoTimeNs(tsSec, tsNsec));
  at = writeAscii(out, at, isoSecondPrefix(tsSec));
  at = writePadded(out, at, tsNsec, 9);
  out[at++] = 0x5a; // Z
  return at;
}

/** ISO 8601 UTC with nanoseconds. */
export function isoTimeNs(tsSec: number, tsNsec: number): string {
  const base = isoSecondPrefix(tsSec);
  if (tsNsec >= 0 && tsNsec < 1e9 && Number.isInteger(tsNsec)) {
    const millis = Math.floor(tsNsec / 1e6);
    const rest = tsNsec - millis * 1e6;
    const micros = Math.floor(rest / 1000);
    return `${base}${ISO_DIGITS3[millis]}${ISO_DIGITS3[micros]}${ISO_DIGITS3[rest - micros * 1000]}Z`;
  }
  return `${base}${String(tsNsec).padStart(9, "0")}Z`;
}
