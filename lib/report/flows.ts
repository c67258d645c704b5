/**
 * Per-connection lifecycle records: the `flows.csv` / `flows.ndjson` rows of `report`. A FlowTracker
 * listens to the engine's events and to every packet, keeps one small state per live connection and
 * hands out a finished record as each connection ends (DESTROY), then the still-live ones at the end.
 * Memory follows the live table, never the capture.
 */
import { IPPROTO_TCP, type DecodedPacket } from "../decode/packet.js";
import { Status, TCP_STATE_NAMES, Tuple, type Connection } from "../conntrack/connection.js";
import {
  Verdict,
  type ConntrackEngine,
  type ConntrackEvent,
  type DestroyCause,
} from "../conntrack/engine.js";
import { csvRow, isoTimeNs, protocolName, tupleRecord, type TupleRecord } from "./event-formats.js";
import { tupleCommunityId } from "./community-id.js";
import { safeCsvCell } from "./escape.js";

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

/** One live connection's report state. */
export class FlowState {
  firstSec = 0;
  firstNsec = 0;
  lastSec = 0;
  lastNsec = 0;
  /** Flattened [state, sec, nsec] triples. */
  readonly history: (string | number)[] = [];
  historyOmitted = 0;
  lastState = "";
  replySec = -1;
  replyNsec = 0;
  assuredSec = -1;
  assuredNsec = 0;
  constructor(readonly connection: Connection) {}
}

export interface FlowTrackerOptions {
  /** Receives each finished record. */
  onFlow: (record: FlowRecord) => void;
  /** Most state changes kept per connection (default 64); the rest are counted. */
  maxHistory?: number;
  /** Community ID seed (default 0). */
  communityIdSeed?: number;
}

const NS = 1e9;

export class FlowTracker {
  private readonly live = new Map<number, FlowState>();
  private readonly maxHistory: number;
  private readonly onFlow: (record: FlowRecord) => void;
  private readonly seed: number;
  /** Records emitted so far. */
  emitted = 0;

  constructor(options: FlowTrackerOptions) {
    this.onFlow = options.onFlow;
    this.maxHistory = options.maxHistory ?? 64;
    this.seed = options.communityIdSeed ?? 0;
  }

  get liveCount(): number {
    return this.live.size;
  }

  /** Feed every engine event here. */
  onEvent(event: ConntrackEvent): void {
    const connection = event.connection;
    if (event.type === "NEW") {
      const flow = new FlowState(connection);
      flow.firstSec = flow.lastSec = event.tsSec;
      flow.firstNsec = flow.lastNsec = event.tsNsec;
      this.live.set(connection.id, flow);
      this.noteState(flow, event);
      return;
    }
    const flow = this.live.get(connection.id);
    if (flow === undefined) return;
    if (event.type === "UPDATE") {
      this.noteState(flow, event);
      return;
    }
    // A RST that kills an entry was accounted to it: the DESTROY's time is that packet's.
    if (event.destroyCause === "reset") {
      flow.lastSec = event.tsSec;
      flow.lastNsec = event.tsNsec;
    }
    if (event.state >= 0) this.pushState(flow, TCP_STATE_NAMES[event.state], event.tsSec, event.tsNsec);
    this.forget(flow);
    this.emit(
      flow,
      event.destroyCause === "" ? "expired" : event.destroyCause,
      event.tsSec,
      event.tsNsec,
      null,
    );
  }

  /**
   * Feed every packet the engine tracked (after its events), with the engine's `lastConnection`.
   * Returns the live flow the packet belonged to, or null (untracked, an ICMP error about another
   * connection, or a first packet that made no entry).
   */
  onPacket(packet: DecodedPacket, verdict: number, connection: Connection | null): FlowState | null {
    if (verdict < 0 || verdict === Verdict.Ignored || connection === null) return null;
    const flow = this.live.get(connection.id) ?? null;
    if (
      flow !== null &&
      verdict !== Verdict.Invalid &&
      (packet.tsSec > flow.lastSec || (packet.tsSec === flow.lastSec && packet.tsNsec > flow.lastNsec))
    ) {
      flow.lastSec = packet.tsSec;
      flow.lastNsec = packet.tsNsec;
    }
    return flow;
  }

  /** The live flow of a connection id. */
  get(id: number): FlowState | undefined {
    return this.live.get(id);
  }

  /** End of input: a record for every connection still live, in id order. */
  finish(engine: ConntrackEngine): void {
    const at = { tsSec: 0, tsNsec: 0 };
    engine.toCaptureTime(engine.now, at);
    const flows = [...this.live.values()].sort((a, b) => a.connection.id - b.connection.id);
    for (const flow of flows) {
      this.forget(flow);
      const expiry = { tsSec: 0, tsNsec: 0 };
      engine.toCaptureTime(flow.connection.expiresAt, expiry);
      const remaining = Math.max(0, engine.remainingSeconds(flow.connection));
      this.emit(flow, "live", at.tsSec, at.tsNsec, { ...expiry, remaining });
    }
  }

  private noteState(flow: FlowState, event: ConntrackEvent): void {
    const connection = event.connection;
    if (connection.protocol === IPPROTO_TCP) {
      const state = event.state >= 0 ? event.state : connection.tcpState;
      if (state >= 0) this.pushState(flow, TCP_STATE_NAMES[state], event.tsSec, event.tsNsec);
    } else if (event.type === "NEW") {
      this.pushState(flow, event.seenReply ? "REPLIED" : "UNREPLIED", event.tsSec, event.tsNsec);
    }
    if (event.seenReply && flow.replySec < 0) {
      flow.replySec = event.tsSec;
      flow.replyNsec = event.tsNsec;
      if (connection.protocol !== IPPROTO_TCP) this.pushState(flow, "REPLIED", event.tsSec, event.tsNsec);
    }
    if (event.assured && flow.assuredSec < 0) {
      flow.assuredSec = event.tsSec;
      flow.assuredNsec = event.tsNsec;
      if (connection.protocol !== IPPROTO_TCP) this.pushState(flow, "ASSURED", event.tsSec, event.tsNsec);
    }
  }

  private pushState(flow: FlowState, state: string, tsSec: number, tsNsec: number): void {
    if (state === flow.lastState) return;
    flow.lastState = state;
    if (flow.history.length >= this.maxHistory * 3) {
      flow.historyOmitted++;
      return;
    }
    flow.history.push(state, tsSec, tsNsec);
  }

  private forget(flow: FlowState): void {
    this.live.delete(flow.connection.id);
  }

  private emit(
    flow: FlowState,
    cause: DestroyCause | "live",
    endSec: number,
    endNsec: number,
    live: { tsSec: number; tsNsec: number; remaining: number } | null,
  ): void {
    const connection = flow.connection;
    const offset = (sec: number, nsec: number): number =>
      ((sec - flow.firstSec) * NS + (nsec - flow.firstNsec)) / NS;
    const history: StateChange[] = [];
    for (let i = 0; i < flow.history.length; i += 3) {
      const sec = flow.history[i + 1] as number;
      const nsec = flow.history[i + 2] as number;
      history.push({
        state: flow.history[i] as string,
        time: isoTimeNs(sec, nsec),
        offset: offset(sec, nsec),
      });
    }
    const finalState =
      connection.protocol === IPPROTO_TCP && connection.tcpState >= 0
        ? TCP_STATE_NAMES[connection.tcpState]
        : flow.lastState;
    const endReason: EndReason = cause === "expired" || cause === "drain" ? "timeout" : cause;
    const flags = [connection.seenReply ? "SEEN_REPLY" : "UNREPLIED"];
    if (connection.assured) flags.push("ASSURED");
    if (connection.expected || connection.masterId > 0) flags.push("RELATED");
    const record: FlowRecord = {
      id: connection.id,
      protocol: protocolName(connection.protocol),
      protocolNumber: connection.protocol,
      family: connection.original.family === 6 ? 6 : 4,
      original: tupleRecord(connection.original),
      reply: tupleRecord(connection.reply),
      nat: natKind(connection.original, connection.reply),
      firstPacket: isoTimeNs(flow.firstSec, flow.firstNsec),
      lastPacket: isoTimeNs(flow.lastSec, flow.lastNsec),
      duration: offset(flow.lastSec, flow.lastNsec),
      history,
      historyOmitted: flow.historyOmitted,
      finalState,
      endReason,
      endDetail: endDetail(cause, finalState, live),
      endTime: live === null ? isoTimeNs(endSec, endNsec) : null,
      expiresAt: live === null ? null : isoTimeNs(live.tsSec, live.tsNsec),
      expiresIn: live === null ? null : live.remaining,
      flags,
      replyAfter: flow.replySec < 0 ? null : offset(flow.replySec, flow.replyNsec),
      assuredAfter: flow.assuredSec < 0 ? null : offset(flow.assuredSec, flow.assuredNsec),
      originalPackets: connection.originalPackets,
      originalBytes: connection.originalBytes,
      replyPackets: connection.replyPackets,
      replyBytes: connection.replyBytes,
      helper: connection.helper,
      masterId: connection.masterId > 0 ? connection.masterId : null,
      communityId: tupleCommunityId(connection.original, { seed: this.seed }),
    };
    if (record.nat !== "none")
      record.natOrigin = (connection.status & Status.NatObserved) !== 0 ? "observed" : "configured";
    this.emitted++;
    this.onFlow(record);
  }
}

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
