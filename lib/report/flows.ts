/**
 * Per-connection lifecycle records: the `flows.csv` / `flows.ndjson` rows of `report`. A FlowTracker
 * listens to the engine's events and to every packet, keeps one small state per live connection and
 * hands out a finished record as each connection ends (DESTROY), then the still-live ones at the end.
 * Memory follows the live table, never the capture.
 */
import { Status, TCP_STATE_NAMES, Tuple, type Connection } from "../conntrack/connection.js";
import {
  Verdict,
  type ConntrackEngine,
  type ConntrackEvent,
  type DestroyCause,
} from "../conntrack/engine.js";
import {
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
} from "../decode/packet.js";
import { writeTupleAddress } from "./conntrack-text.js";
import { writeJsonNumber, writeJsonString, writeJsonTime, writeJsonTuple } from "./json-bytes.js";
import { writeAscii, writeNumber, writePadded, writeText } from "./ascii-bytes.js";
import {
  csvRow,
  isoSecondPrefix,
  isoTimeNs,
  protocolName,
  secondsBetween,
  tupleRecord,
  writeIsoTime,
  type TupleRecord,
} from "./event-formats.js";
import { tupleCommunityId } from "./community-id.js";
import { FLOW_ASSURED, FLOW_REPLY, FlowRows } from "./flow-rows.js";
import { csvNeedsQuotes, safeCsvCell, startsLikeFormula } from "./escape.js";

export type NatKind = "none" | "snat" | "dnat" | "both";
/** Why a connection's record ended: its DESTROY cause, or still live when the input ran out. */
export type EndReason = "timeout" | "reset" | "reopen" | "early-drop" | "live";

export interface StateChange {
  state: string;
  /** ISO 8601 UTC with nanoseconds. */
  time: string;
  /** Seconds since the connection's first packet. */
  offset: number;
}

export interface FlowRecord {
  /** The engine's connection id (as in events.csv's connection_id). */
  id: number;
  protocol: string;
  protocolNumber: number;
  family: 4 | 6;
  original: TupleRecord;
  reply: TupleRecord;
  nat: NatKind;
  /**
   * With NAT, how the translation was known: "observed" (captures before and after the device,
   * `--nat-observe`) or "configured" (NAT rules); absent without NAT.
   */
  natOrigin?: "observed" | "configured";
  firstPacket: string;
  lastPacket: string;
  /** Seconds from the first to the last packet. */
  duration: number;
  /** TCP: tracker states; other protocols: UNREPLIED, REPLIED, ASSURED. Capped at `maxHistory`. */
  history: StateChange[];
  /** State changes left out of `history` (beyond the cap), 0 normally. */
  historyOmitted: number;
  finalState: string;
  endReason: EndReason;
  /** Words for people: "timeout in TIME_WAIT", "still live at the end, expires in 25 s" … */
  endDetail: string;
  /** When the connection ended (DESTROY time), null while live. */
  endTime: string | null;
  /** Live connections: when the entry would expire and the whole seconds left at the end of the input. */
  expiresAt: string | null;
  expiresIn: number | null;
  /** SEEN_REPLY or UNREPLIED, ASSURED, RELATED. */
  flags: string[];
  /** Seconds from the first packet to the first reply / to ASSURED, null when never. */
  replyAfter: number | null;
  assuredAfter: number | null;
  originalPackets: number;
  originalBytes: number;
  replyPackets: number;
  replyBytes: number;
  helper: string | null;
  masterId: number | null;
  communityId: string;
}

export const FLOW_CSV_COLUMNS = [
  "connection_id",
  "protocol",
  "protocol_number",
  "family",
  "orig_src",
  "orig_dst",
  "orig_sport",
  "orig_dport",
  "orig_type",
  "orig_code",
  "orig_id",
  "reply_src",
  "reply_dst",
  "reply_sport",
  "reply_dport",
  "nat",
  "first_packet",
  "last_packet",
  "duration",
  "history",
  "final_state",
  "end_reason",
  "end_detail",
  "end_time",
  "expires_at",
  "expires_in",
  "flags",
  "reply_after",
  "assured_after",
  "orig_packets",
  "orig_bytes",
  "reply_packets",
  "reply_bytes",
  "helper",
  "master_connection_id",
  "community_id",
];

/** The compact history: `SYN_SENT@0.000000>SYN_RECV@0.000051>…` (seconds since the first packet). */
export function historyText(record: Pick<FlowRecord, "history" | "historyOmitted">): string {
  const text = record.history.map((change) => `${change.state}@${change.offset.toFixed(6)}`).join(">");
  return record.historyOmitted > 0 ? `${text}>…(+${record.historyOmitted})` : text;
}

export function flowCsvRow(record: FlowRecord): string {
  const { original, reply } = record;
  return csvRow(
    [
      record.id,
      record.protocol,
      record.protocolNumber,
      record.family,
      original.src,
      original.dst,
      original.sport,
      original.dport,
      original.type,
      original.code,
      original.id,
      reply.src,
      reply.dst,
      reply.sport,
      reply.dport,
      record.nat,
      record.firstPacket,
      record.lastPacket,
      record.duration.toFixed(6),
      historyText(record),
      record.finalState,
      record.endReason,
      record.endDetail,
      record.endTime,
      record.expiresAt,
      record.expiresIn,
      record.flags.join(" "),
      record.replyAfter === null ? null : record.replyAfter.toFixed(6),
      record.assuredAfter === null ? null : record.assuredAfter.toFixed(6),
      record.originalPackets,
      record.originalBytes,
      record.replyPackets,
      record.replyBytes,
      record.helper,
      record.masterId,
      record.communityId,
    ].map(safeCsvCell),
  );
}

/** SNAT when the reply is not addressed to the original source, DNAT when it does not come from the original destination. */
export function natKind(original: Tuple, reply: Tuple): NatKind {
  const snat =
    reply.dst0 !== original.src0 ||
    reply.dst1 !== original.src1 ||
    reply.dst2 !== original.src2 ||
    reply.dst3 !== original.src3 ||
    (hasPortPair(original) && reply.dstPort !== original.srcPort);
  const dnat =
    reply.src0 !== original.dst0 ||
    reply.src1 !== original.dst1 ||
    reply.src2 !== original.dst2 ||
    reply.src3 !== original.dst3 ||
    (hasPortPair(original) && reply.srcPort !== original.dstPort);
  return snat && dnat ? "both" : snat ? "snat" : dnat ? "dnat" : "none";
}

function hasPortPair(tuple: Tuple): boolean {
  return !tuple.isIcmp && tuple.protocol !== 47;
}

/** History codes: TCP states by their number, the other protocols' words from here on (a byte). */
const WORD_CODES = 200;
const UNREPLIED_CODE = WORD_CODES;
const REPLIED_CODE = WORD_CODES + 1;
const ASSURED_CODE = WORD_CODES + 2;
const WORDS = ["UNREPLIED", "REPLIED", "ASSURED"];

function stateName(code: number): string {
  return code >= WORD_CODES ? WORDS[code - WORD_CODES] : TCP_STATE_NAMES[code];
}

const historyEntry = new Float64Array(3);
/** A capture time worked out from an engine time (scratch). */
const captureTime = { tsSec: 0, tsNsec: 0 };

export interface FlowTrackerOptions {
  /** Receives each finished record. */
  onFlow?: (record: FlowRecord) => void;
  /**
   * Gets each finished connection's flows.csv row as bytes (what `flowCsvRow` writes for its record),
   * encoded from the tracker's state: without `onFlow` no record is built at all.
   */
  csv?: FlowRowSink;
  /** Receives each finished connection's flows.csv row as text (the bytes `csv` gets). */
  onCsvRow?: (row: string) => void;
  /** Gets each finished connection's flows.ndjson line as bytes (`JSON.stringify` of its record). */
  ndjson?: FlowRowSink;
  /** Receives each finished connection's flows.ndjson line as text (the bytes `ndjson` gets). */
  onNdjsonRow?: (row: string) => void;
  /**
   * Receives each finished flow's state (reused; read it inside the call, `end.record()` builds its
   * record), before `onFlow`.
   */
  onFlowEnd?: (end: FlowEnd) => void;
  /** Most state changes kept per connection (default 64); the rest are counted. */
  maxHistory?: number;
  /** Community ID seed (default 0). */
  communityIdSeed?: number;
}

const NS = 1e9;

interface LiveEnd {
  tsSec: number;
  tsNsec: number;
  remaining: number;
}

/** A finished flow as its rows and record are written from it (one reused per tracker). */
export class FlowEnd {
  rows: FlowRows | null = null;
  index = -1;
  connection: Connection | null = null;
  original: Tuple | null = null;
  reply: Tuple | null = null;
  finalState = "";
  endReason: EndReason = "timeout";
  detail = "";
  endSec = 0;
  endNsec = 0;
  /** The first packet's time (its NEW's) and the last packet's the connection took. */
  firstSec = 0;
  firstNsec = 0;
  lastSec = 0;
  lastNsec = 0;
  live: LiveEnd | null = null;
  communityId = "";

  /** The flow's record (built on demand: valid only while the tracker hands this flow out). */
  record(): FlowRecord {
    return flowRecord(this);
  }
}

/** Writes a finished flow's row as bytes (flows.csv, flows.ndjson). */
export interface FlowEncoder {
  encode(end: FlowEnd, out: Uint8Array, at: number): number;
}

/** Where rows go as bytes: a ChunkedWriter (lib/pipeline/replay.ts). */
export interface FlowRowSink {
  writeEncoded(encoder: FlowEncoder, item: FlowEnd, maxBytes: number): void;
}

export class FlowTracker {
  private readonly rows = new FlowRows();
  private readonly maxHistory: number;
  private readonly onFlow: ((record: FlowRecord) => void) | null;
  private readonly csv: FlowRowSink | null;
  private readonly onCsvRow: ((row: string) => void) | null;
  private readonly ndjson: FlowRowSink | null;
  private readonly onNdjsonRow: ((row: string) => void) | null;
  private readonly onFlowEnd: ((end: FlowEnd) => void) | null;
  private readonly end = new FlowEnd();
  private readonly originalTuple = new Tuple();
  private readonly replyTuple = new Tuple();
  private scratch = Buffer.alloc(0);
  private readonly communityIdOptions: { seed: number };
  /** Records emitted so far. */
  emitted = 0;
  /** `finish` between calls: the end time, the live flows in id order and the next one to emit. */
  private finishing: { at: { tsSec: number; tsNsec: number }; live: Connection[]; next: number } | null =
    null;

  constructor(options: FlowTrackerOptions) {
    this.onFlow = options.onFlow ?? null;
    this.csv = options.csv ?? null;
    this.onCsvRow = options.onCsvRow ?? null;
    this.ndjson = options.ndjson ?? null;
    this.onNdjsonRow = options.onNdjsonRow ?? null;
    this.onFlowEnd = options.onFlowEnd ?? null;
    this.maxHistory = options.maxHistory ?? 64;
    this.communityIdOptions = { seed: options.communityIdSeed ?? 0 };
  }

  get liveCount(): number {
    return this.rows.size;
  }

  /** Feed every engine event here. */
  onEvent(event: ConntrackEvent): void {
    const connection = event.connection;
    const rows = this.rows;
    if (event.type === "NEW") {
      this.noteState(rows.add(connection, event.tsSec), event);
      return;
    }
    const index = rows.find(connection);
    if (index < 0) return;
    if (event.type === "UPDATE") {
      this.noteState(index, event);
      return;
    }
    if (event.state >= 0) this.pushState(index, event.state, event.tsSec, event.tsNsec);
    const end = this.end;
    end.firstSec = event.firstSec;
    end.firstNsec = event.firstNsec;
    end.lastSec = event.lastSec;
    end.lastNsec = event.lastNsec;
    this.emit(
      connection,
      event.destroyCause === "" ? "expired" : event.destroyCause,
      event.tsSec,
      event.tsNsec,
      null,
    );
  }

  /**
   * The connection a tracked packet belongs to if it has a live flow, else null (untracked, an ICMP
   * error about another connection, or a first packet that made no entry): `connection` is the
   * engine's `lastConnection` after the packet. The flows themselves need no packets (the engine
   * keeps each connection's last packet time).
   */
  liveConnection(verdict: number, connection: Connection | null): Connection | null {
    if (verdict < 0 || verdict === Verdict.Ignored || connection === null) return null;
    return this.rows.find(connection) < 0 ? null : connection;
  }

  /**
   * End of input: a record for every connection still live, in id order. `limit`: at most that many
   * records this call (so that a caller can let its output drain); `belowId`: only those with a
   * smaller id this call (a `--jobs` worker writes its part of a range of ids at a time). Returns true
   * when all are out.
   */
  finish(engine: ConntrackEngine, limit = Infinity, belowId = Infinity): boolean {
    if (this.finishing === null) {
      const live: Connection[] = [];
      for (const connection of engine.entries()) if (this.rows.find(connection) >= 0) live.push(connection);
      this.finishing = { at: { tsSec: 0, tsNsec: 0 }, live: live.sort((a, b) => a.id - b.id), next: 0 };
    }
    const { at, live } = this.finishing;
    engine.toCaptureTime(engine.now, at);
    let end = Math.min(live.length, this.finishing.next + limit);
    for (let i = this.finishing.next; i < end; i++)
      if (live[i].id >= belowId) {
        end = i;
        break;
      }
    for (let i = this.finishing.next; i < end; i++) {
      const connection = live[i];
      const flow = this.end;
      engine.toCaptureTime(connection.startedAt, captureTime);
      flow.firstSec = captureTime.tsSec;
      flow.firstNsec = captureTime.tsNsec;
      engine.toCaptureTime(connection.lastSeenAt, captureTime);
      flow.lastSec = captureTime.tsSec;
      flow.lastNsec = captureTime.tsNsec;
      const expiry = { tsSec: 0, tsNsec: 0, remaining: 0 };
      engine.toCaptureTime(connection.expiresAt, expiry);
      expiry.remaining = Math.max(0, engine.remainingSeconds(connection));
      this.emit(connection, "live", at.tsSec, at.tsNsec, expiry);
    }
    this.finishing.next = end;
    if (end < live.length) return false;
    this.finishing = null;
    return true;
  }

  /** While `finish` is under way: the id of the next live flow it writes (Infinity before and after). */
  get nextLiveId(): number {
    const finishing = this.finishing;
    return finishing === null || finishing.next >= finishing.live.length
      ? Infinity
      : finishing.live[finishing.next].id;
  }

  /** The finished flow (`this.end`) through `encoder` to the sink and the text callback. */
  private write(
    encoder: FlowEncoder,
    maxBytes: number,
    sink: FlowRowSink | null,
    onText: ((row: string) => void) | null,
  ): void {
    if (sink !== null) sink.writeEncoded(encoder, this.end, maxBytes);
    if (onText !== null) {
      if (this.scratch.length < maxBytes) this.scratch = Buffer.alloc(maxBytes);
      const length = encoder.encode(this.end, this.scratch, 0);
      onText(this.scratch.toString("utf8", 0, length));
    }
  }

  private noteState(index: number, event: ConntrackEvent): void {
    const connection = event.connection;
    const rows = this.rows;
    if (connection.protocol === IPPROTO_TCP) {
      const state = event.state >= 0 ? event.state : connection.tcpState;
      if (state >= 0) this.pushState(index, state, event.tsSec, event.tsNsec);
    } else if (event.type === "NEW") {
      this.pushState(index, event.seenReply ? REPLIED_CODE : UNREPLIED_CODE, event.tsSec, event.tsNsec);
    }
    if (event.seenReply && rows.markReplied(index, event.tsSec, event.tsNsec))
      if (connection.protocol !== IPPROTO_TCP) this.pushState(index, REPLIED_CODE, event.tsSec, event.tsNsec);
    if (event.assured && rows.markAssured(index, event.tsSec, event.tsNsec))
      if (connection.protocol !== IPPROTO_TCP) this.pushState(index, ASSURED_CODE, event.tsSec, event.tsNsec);
  }

  private pushState(index: number, code: number, tsSec: number, tsNsec: number): void {
    const rows = this.rows;
    if (code === rows.lastState(index)) return;
    rows.setLastState(index, code);
    rows.pushHistory(index, code, tsSec, tsNsec, this.maxHistory);
  }

  /** The flow's record or row goes out, then its row (its connection's table slot's) is freed. */
  private emit(
    connection: Connection,
    cause: DestroyCause | "live",
    endSec: number,
    endNsec: number,
    live: LiveEnd | null,
  ): void {
    const rows = this.rows;
    const index = connection.tableSlot;
    const lastState = rows.lastState(index);
    const finalState =
      connection.protocol === IPPROTO_TCP && connection.tcpState >= 0
        ? TCP_STATE_NAMES[connection.tcpState]
        : lastState < 0
          ? ""
          : stateName(lastState);
    const endReason: EndReason = cause === "expired" || cause === "drain" ? "timeout" : cause;
    const detail = endDetail(cause, finalState, live);
    // One copy of each tuple for all that reads them while this flow is handed out (they live in the
    // engine's table keys).
    const original = connection.tupleInto(0, this.originalTuple);
    const reply = connection.tupleInto(1, this.replyTuple);
    const communityId = tupleCommunityId(original, this.communityIdOptions);
    this.emitted++;
    const end = this.end;
    end.rows = rows;
    end.index = index;
    end.connection = connection;
    end.original = original;
    end.reply = reply;
    end.finalState = finalState;
    end.endReason = endReason;
    end.detail = detail;
    end.endSec = endSec;
    end.endNsec = endNsec;
    end.live = live;
    end.communityId = communityId;
    if (this.csv !== null || this.onCsvRow !== null)
      this.write(FLOW_CSV_ENCODER, flowCsvMaxBytes(end), this.csv, this.onCsvRow);
    if (this.ndjson !== null || this.onNdjsonRow !== null)
      this.write(FLOW_NDJSON_ENCODER, flowNdjsonMaxBytes(end), this.ndjson, this.onNdjsonRow);
    if (this.onFlowEnd !== null) this.onFlowEnd(end);
    if (this.onFlow !== null) this.onFlow(end.record());
    end.rows = null;
    end.connection = end.original = end.reply = null;
    end.live = null;
    rows.remove(index);
  }
}

/** A finished flow's record, from its state (`FlowEnd.record`). */
function flowRecord(end: FlowEnd): FlowRecord {
  const rows = end.rows!;
  const index = end.index;
  const connection = end.connection!;
  const original = end.original!;
  const reply = end.reply!;
  const live = end.live;
  const { firstSec, firstNsec, lastSec, lastNsec } = end;
  const history: StateChange[] = [];
  const length = rows.historyLength(index);
  for (let i = 0; i < length; i++) {
    rows.readHistory(index, i, historyEntry);
    const sec = historyEntry[1];
    const nsec = historyEntry[2];
    history.push({
      state: stateName(historyEntry[0]),
      time: isoTimeNs(sec, nsec),
      offset: secondsBetween(firstSec, firstNsec, sec, nsec),
    });
  }
  const record: FlowRecord = {
    id: connection.id,
    protocol: protocolName(connection.protocol),
    protocolNumber: connection.protocol,
    family: original.family === 6 ? 6 : 4,
    original: tupleRecord(original),
    reply: tupleRecord(reply),
    nat: natKind(original, reply),
    firstPacket: isoTimeNs(firstSec, firstNsec),
    lastPacket: isoTimeNs(lastSec, lastNsec),
    duration: secondsBetween(firstSec, firstNsec, lastSec, lastNsec),
    history,
    historyOmitted: rows.historyOmitted(index),
    finalState: end.finalState,
    endReason: end.endReason,
    endDetail: end.detail,
    endTime: live === null ? isoTimeNs(end.endSec, end.endNsec) : null,
    expiresAt: live === null ? null : isoTimeNs(live.tsSec, live.tsNsec),
    expiresIn: live === null ? null : live.remaining,
    flags: flagsText(connection).split(" "),
    replyAfter: rows.replied(index) ? rows.sinceFirst(index, FLOW_REPLY, firstSec, firstNsec) / NS : null,
    assuredAfter: rows.assured(index) ? rows.sinceFirst(index, FLOW_ASSURED, firstSec, firstNsec) / NS : null,
    originalPackets: connection.originalPackets,
    originalBytes: connection.originalBytes,
    replyPackets: connection.replyPackets,
    replyBytes: connection.replyBytes,
    helper: connection.helper,
    masterId: connection.masterId > 0 ? connection.masterId : null,
    communityId: end.communityId,
  };
  if (record.nat !== "none")
    record.natOrigin = (connection.status & Status.NatObserved) !== 0 ? "observed" : "configured";
  return record;
}

function flagsText(connection: Connection): string {
  const reply = connection.seenReply ? "SEEN_REPLY" : "UNREPLIED";
  const assured = connection.assured ? " ASSURED" : "";
  return connection.expected || connection.masterId > 0 ? `${reply}${assured} RELATED` : `${reply}${assured}`;
}

// ------------------------------------------------------------------ flows.csv as bytes

const COMMA = 0x2c;
const QUOTE = 0x22;
const APOSTROPHE = 0x27;

/**
 * The most bytes a row can take: cells of numbers, times, addresses and fixed words stay well under
 * 2 KiB together; a history entry under 64; free text at most 3 bytes per UTF-16 unit, doubled quotes.
 */
function flowCsvMaxBytes(end: FlowEnd): number {
  return flowRowMaxBytes(end, 2048, 64);
}

/** `fixed` bytes, `perEntry` per history entry (and one more), 6 per unit of the free text. */
function flowRowMaxBytes(end: FlowEnd, fixed: number, perEntry: number): number {
  const helper = end.connection!.helper;
  return (
    fixed +
    perEntry * (end.rows!.historyLength(end.index) + 1) +
    6 * (end.detail.length + end.finalState.length + (helper === null ? 0 : helper.length))
  );
}

/** A text cell of words and digits: the formula guard of `safeCsvCell` (such text never needs quotes). */
function writeGuarded(out: Uint8Array, at: number, text: string): number {
  if (startsLikeFormula(text)) out[at++] = APOSTROPHE;
  return writeText(out, at, text);
}

/** Free text as `safeCsvCell` and then csv-stringify leave it: guarded, then quoted when it must be. */
function writeFreeText(out: Uint8Array, at: number, text: string): number {
  const guard = startsLikeFormula(text);
  if (!csvNeedsQuotes(text)) {
    if (guard) out[at++] = APOSTROPHE;
    return writeText(out, at, text);
  }
  out[at++] = QUOTE;
  if (guard) out[at++] = APOSTROPHE;
  at = writeText(out, at, text.replaceAll('"', '""'));
  out[at++] = QUOTE;
  return at;
}

/** `isoTimeNs(sec, nsec)`, with the formula guard (extended years start with + or -). */
function writeTime(out: Uint8Array, at: number, sec: number, nsec: number): number {
  if (!(nsec >= 0 && nsec < 1e9 && Number.isInteger(nsec)))
    return writeGuarded(out, at, isoTimeNs(sec, nsec));
  if (startsLikeFormula(isoSecondPrefix(sec))) out[at++] = APOSTROPHE;
  return writeIsoTime(out, at, sec, nsec);
}

/**
 * `(ns / 1e9).toFixed(6)`. In range the microseconds are whole numbers away from a rounding tie, so
 * integer arithmetic gives toFixed's digits; halfway cases (the binary quotient decides those),
 * negative and huge values take toFixed itself. `guard`: the formula guard, for a cell of its own.
 */
function writeSeconds(out: Uint8Array, at: number, ns: number, guard: boolean): number {
  if (!(ns >= 0 && ns < 1e15 && ns % 1000 !== 500 && Number.isInteger(ns))) {
    const text = (ns / NS).toFixed(6);
    return guard ? writeGuarded(out, at, text) : writeAscii(out, at, text);
  }
  const micros = Math.round(ns / 1000);
  const whole = Math.floor(micros / 1e6);
  at = writeNumber(out, at, whole);
  out[at++] = 0x2e; // .
  return writePadded(out, at, micros - whole * 1e6, 6);
}

/**
 * A tuple's cells as `tupleRecord` fills them (then a comma): src, dst, sport, dport, and for the
 * original direction also type, code, id.
 */
function writeTupleCells(out: Uint8Array, at: number, tuple: Tuple, withIcmp: boolean): number {
  at = writeTupleAddress(out, at, tuple, true);
  out[at++] = COMMA;
  at = writeTupleAddress(out, at, tuple, false);
  out[at++] = COMMA;
  switch (tuple.protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_SCTP:
      at = writeNumber(out, at, tuple.srcPort);
      out[at++] = COMMA;
      at = writeNumber(out, at, tuple.dstPort);
      out[at++] = COMMA;
      if (withIcmp) at = writeAscii(out, at, ",,,");
      return at;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      if (!withIcmp) return writeAscii(out, at, ",,");
      at = writeAscii(out, at, ",,");
      at = writeNumber(out, at, tuple.icmpType);
      out[at++] = COMMA;
      at = writeNumber(out, at, tuple.icmpCode);
      out[at++] = COMMA;
      at = writeNumber(out, at, tuple.icmpId);
      out[at++] = COMMA;
      return at;
    default:
      return writeAscii(out, at, withIcmp ? ",,,,," : ",,");
  }
}

/**
 * A finished flow's flows.csv row straight from its state: the bytes `flowCsvRow` writes for its
 * record, without the record or a string per cell. Cells of fixed words, addresses and numbers need
 * neither the formula guard nor quoting; the others get what `safeCsvCell` and `csvRow` give them.
 */
export const FLOW_CSV_ENCODER = {
  encode(end: FlowEnd, out: Uint8Array, at: number): number {
    const rows = end.rows!;
    const index = end.index;
    const connection = end.connection!;
    const original = end.original!;
    const reply = end.reply!;
    const { firstSec, firstNsec, lastSec, lastNsec } = end;
    at = writeNumber(out, at, connection.id);
    out[at++] = COMMA;
    at = writeAscii(out, at, protocolName(connection.protocol));
    out[at++] = COMMA;
    at = writeNumber(out, at, connection.protocol);
    out[at++] = COMMA;
    out[at++] = original.family === 6 ? 0x36 : 0x34;
    out[at++] = COMMA;
    at = writeTupleCells(out, at, original, true);
    at = writeTupleCells(out, at, reply, false);
    at = writeAscii(out, at, natKind(original, reply));
    out[at++] = COMMA;
    at = writeTime(out, at, firstSec, firstNsec);
    out[at++] = COMMA;
    at = writeTime(out, at, lastSec, lastNsec);
    out[at++] = COMMA;
    at = writeSeconds(out, at, (lastSec - firstSec) * NS + (lastNsec - firstNsec), true);
    out[at++] = COMMA;
    const historyLength = rows.historyLength(index);
    const entry = historyEntry;
    for (let i = 0; i < historyLength; i++) {
      rows.readHistory(index, i, entry);
      // As a template prints it (an unknown TCP state number as "undefined").
      const state = `${stateName(entry[0])}`;
      if (i > 0) out[at++] = 0x3e; // >
      at = i === 0 ? writeGuarded(out, at, state) : writeText(out, at, state);
      out[at++] = 0x40; // @
      const ns = (entry[1] - firstSec) * NS + (entry[2] - firstNsec);
      at = writeSeconds(out, at, ns, false);
    }
    const omitted = rows.historyOmitted(index);
    if (omitted > 0) {
      at = writeText(out, at, ">…(+");
      at = writeNumber(out, at, omitted);
      out[at++] = 0x29; // )
    }
    out[at++] = COMMA;
    at = writeGuarded(out, at, end.finalState);
    out[at++] = COMMA;
    at = writeAscii(out, at, end.endReason);
    out[at++] = COMMA;
    at = writeFreeText(out, at, end.detail);
    out[at++] = COMMA;
    const live = end.live;
    if (live === null) {
      at = writeTime(out, at, end.endSec, end.endNsec);
      at = writeAscii(out, at, ",,,");
    } else {
      out[at++] = COMMA;
      at = writeTime(out, at, live.tsSec, live.tsNsec);
      out[at++] = COMMA;
      at = writeNumber(out, at, live.remaining);
      out[at++] = COMMA;
    }
    at = writeAscii(out, at, flagsText(connection));
    out[at++] = COMMA;
    if (rows.replied(index))
      at = writeSeconds(out, at, rows.sinceFirst(index, FLOW_REPLY, firstSec, firstNsec), true);
    out[at++] = COMMA;
    if (rows.assured(index))
      at = writeSeconds(out, at, rows.sinceFirst(index, FLOW_ASSURED, firstSec, firstNsec), true);
    out[at++] = COMMA;
    at = writeNumber(out, at, connection.originalPackets);
    out[at++] = COMMA;
    at = writeNumber(out, at, connection.originalBytes);
    out[at++] = COMMA;
    at = writeNumber(out, at, connection.replyPackets);
    out[at++] = COMMA;
    at = writeNumber(out, at, connection.replyBytes);
    out[at++] = COMMA;
    if (connection.helper !== null) at = writeFreeText(out, at, connection.helper);
    out[at++] = COMMA;
    if (connection.masterId > 0) at = writeNumber(out, at, connection.masterId);
    out[at++] = COMMA;
    at = writeAscii(out, at, end.communityId);
    out[at++] = 0x0a;
    return at;
  },
};

// ------------------------------------------------------------------ flows.ndjson as bytes

/** The seconds between two times, as the record computes them (the same doubles, so the same text). */
/** The most bytes a flows.ndjson line can take (see `flowCsvMaxBytes`; JSON escapes take 6 bytes). */
function flowNdjsonMaxBytes(end: FlowEnd): number {
  return flowRowMaxBytes(end, 4096, 160);
}

/**
 * A finished flow's flows.ndjson line straight from its state: the bytes of `JSON.stringify` of its
 * record (keys in the record's order) and a newline, without the record.
 */
export const FLOW_NDJSON_ENCODER: FlowEncoder = {
  encode(end: FlowEnd, out: Uint8Array, at: number): number {
    const rows = end.rows!;
    const index = end.index;
    const connection = end.connection!;
    const original = end.original!;
    const reply = end.reply!;
    const { firstSec, firstNsec, lastSec, lastNsec } = end;
    at = writeAscii(out, at, '{"id":');
    at = writeJsonNumber(out, at, connection.id);
    at = writeAscii(out, at, ',"protocol":');
    at = writeJsonString(out, at, protocolName(connection.protocol));
    at = writeAscii(out, at, ',"protocolNumber":');
    at = writeJsonNumber(out, at, connection.protocol);
    at = writeAscii(out, at, original.family === 6 ? ',"family":6,"original":' : ',"family":4,"original":');
    at = writeJsonTuple(out, at, original);
    at = writeAscii(out, at, ',"reply":');
    at = writeJsonTuple(out, at, reply);
    const nat = natKind(original, reply);
    at = writeAscii(out, at, ',"nat":"');
    at = writeAscii(out, at, nat);
    at = writeAscii(out, at, '","firstPacket":');
    at = writeJsonTime(out, at, firstSec, firstNsec);
    at = writeAscii(out, at, ',"lastPacket":');
    at = writeJsonTime(out, at, lastSec, lastNsec);
    at = writeAscii(out, at, ',"duration":');
    at = writeJsonNumber(out, at, secondsBetween(firstSec, firstNsec, lastSec, lastNsec));
    at = writeAscii(out, at, ',"history":[');
    const historyLength = rows.historyLength(index);
    const entry = historyEntry;
    for (let i = 0; i < historyLength; i++) {
      rows.readHistory(index, i, entry);
      if (i > 0) out[at++] = COMMA;
      out[at++] = 0x7b; // {
      // A state the names do not have is undefined in the record: JSON leaves the key out.
      const state = stateName(entry[0]) as string | undefined;
      if (state !== undefined) {
        at = writeAscii(out, at, '"state":');
        at = writeJsonString(out, at, state);
        out[at++] = COMMA;
      }
      at = writeAscii(out, at, '"time":');
      at = writeJsonTime(out, at, entry[1], entry[2]);
      at = writeAscii(out, at, ',"offset":');
      at = writeJsonNumber(out, at, secondsBetween(firstSec, firstNsec, entry[1], entry[2]));
      out[at++] = 0x7d; // }
    }
    at = writeAscii(out, at, '],"historyOmitted":');
    at = writeJsonNumber(out, at, rows.historyOmitted(index));
    at = writeAscii(out, at, ',"finalState":');
    at = writeJsonString(out, at, end.finalState);
    at = writeAscii(out, at, ',"endReason":');
    at = writeJsonString(out, at, end.endReason);
    at = writeAscii(out, at, ',"endDetail":');
    at = writeJsonString(out, at, end.detail);
    const live = end.live;
    if (live === null) {
      at = writeAscii(out, at, ',"endTime":');
      at = writeJsonTime(out, at, end.endSec, end.endNsec);
      at = writeAscii(out, at, ',"expiresAt":null,"expiresIn":null');
    } else {
      at = writeAscii(out, at, ',"endTime":null,"expiresAt":');
      at = writeJsonTime(out, at, live.tsSec, live.tsNsec);
      at = writeAscii(out, at, ',"expiresIn":');
      at = writeJsonNumber(out, at, live.remaining);
    }
    at = writeAscii(out, at, ',"flags":["');
    const flags = flagsText(connection);
    for (let i = 0; i < flags.length; i++) {
      const code = flags.charCodeAt(i);
      if (code === 0x20) at = writeAscii(out, at, '","');
      else out[at++] = code;
    }
    at = writeAscii(out, at, '"],"replyAfter":');
    if (rows.replied(index))
      at = writeJsonNumber(out, at, rows.sinceFirst(index, FLOW_REPLY, firstSec, firstNsec) / NS);
    else at = writeAscii(out, at, "null");
    at = writeAscii(out, at, ',"assuredAfter":');
    if (rows.assured(index))
      at = writeJsonNumber(out, at, rows.sinceFirst(index, FLOW_ASSURED, firstSec, firstNsec) / NS);
    else at = writeAscii(out, at, "null");
    at = writeAscii(out, at, ',"originalPackets":');
    at = writeJsonNumber(out, at, connection.originalPackets);
    at = writeAscii(out, at, ',"originalBytes":');
    at = writeJsonNumber(out, at, connection.originalBytes);
    at = writeAscii(out, at, ',"replyPackets":');
    at = writeJsonNumber(out, at, connection.replyPackets);
    at = writeAscii(out, at, ',"replyBytes":');
    at = writeJsonNumber(out, at, connection.replyBytes);
    at = writeAscii(out, at, ',"helper":');
    const helper = connection.helper;
    at = helper === null ? writeAscii(out, at, "null") : writeJsonString(out, at, helper);
    at = writeAscii(out, at, ',"masterId":');
    const masterId = connection.masterId;
    at = masterId > 0 ? writeJsonNumber(out, at, masterId) : writeAscii(out, at, "null");
    at = writeAscii(out, at, ',"communityId":');
    at = writeJsonString(out, at, end.communityId);
    if (nat !== "none")
      at = writeAscii(
        out,
        at,
        (connection.status & Status.NatObserved) !== 0
          ? ',"natOrigin":"observed"'
          : ',"natOrigin":"configured"',
      );
    out[at++] = 0x7d; // }
    out[at++] = 0x0a;
    return at;
  },
};

function endDetail(
  cause: DestroyCause | "live",
  finalState: string,
  live: { remaining: number } | null,
): string {
  switch (cause) {
    case "expired":
      return `timeout in ${finalState}`;
    case "drain":
      return `timeout in ${finalState} (after the input ended)`;
    case "reset":
      return `RST in ${finalState}`;
    case "reopen":
      return `a new connection reused the tuple (in ${finalState})`;
    case "early-drop":
      return `evicted from a full table (in ${finalState})`;
    case "live":
      return `still live at the end of the input in ${finalState}, expires in ${live?.remaining ?? 0} s`;
  }
}
