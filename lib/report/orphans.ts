/**
 * Orphaned packets: every packet no connection explains, for `orphans.csv`. The engine's INVALID
 * verdicts (with its reason, made specific from the packet: a SYN-ACK or RST with no connection, an
 * echo reply with no request, an ICMP error about an unknown connection, a segment outside the TCP
 * window), table-full drops, and replies that arrived after their connection had ended (the engine
 * takes those for a new connection). Each row names the nearest connection it could have belonged to.
 *
 * Memory is bounded: a fixed number of recently ended connections is remembered, oldest forgotten.
 */
import {
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  type DecodedPacket,
} from "../decode/packet.js";
import { TCP_STATE_NAMES, Tuple, signedTupleHash, type Connection } from "../conntrack/connection.js";
import { Reason, Verdict, type ConntrackEvent, type DestroyCause } from "../conntrack/engine.js";
import { TcpReason } from "../conntrack/tcp.js";
import { csvRow, isoTimeNs, protocolName, secondsBetween } from "./event-formats.js";
import { safeCsvCell } from "./escape.js";
import { describeTuple, fillPacketAddresses, fillPacketTuple, tupleAddress } from "./packet-tuple.js";
import { HashedEntries, type HashedEntry } from "./hashed-entries.js";
import { LivePairs, pairHash } from "./live-pairs.js";

/** What kind of orphan a packet is; `reason` says it in words. */
export type OrphanKind =
  | "no-original"
  | "icmp-error-unknown"
  | "outside-window"
  | "after-end"
  | "reply-after-expiry"
  | "table-full"
  | "invalid";

export interface OrphanRecord {
  /** Input file name and 1-based record number within it (as Wireshark numbers frames). */
  input: string;
  packet: number;
  time: string;
  protocol: string;
  protocolNumber: number;
  src: string;
  dst: string;
  sport: number | null;
  dport: number | null;
  icmpType: number | null;
  icmpCode: number | null;
  /** TCP flags as tcpdump prints them (S, SA, R, RA, F …), null for other protocols. */
  tcpFlags: string | null;
  kind: OrphanKind;
  /** Words for people, specific to the packet. */
  reason: string;
  /** The engine's own reason (INVALID/DROPPED), null for replies after expiry. */
  engineReason: string | null;
  /** The ended connection this packet belonged to, and how long after its end it came. */
  endedConnectionId: number | null;
  secondsAfterEnd: number | null;
  /** Nearest connection: same tuple, else the latest on the same address pair (live or recently ended). */
  nearestConnectionId: number | null;
  nearestConnection: string | null;
  /** The connection the engine created for this packet (replies after expiry), else null. */
  createdConnectionId: number | null;
}

export const ORPHAN_CSV_COLUMNS = [
  "input",
  "packet",
  "time",
  "protocol",
  "protocol_number",
  "src",
  "dst",
  "sport",
  "dport",
  "icmp_type",
  "icmp_code",
  "tcp_flags",
  "kind",
  "reason",
  "engine_reason",
  "ended_connection_id",
  "seconds_after_end",
  "nearest_connection_id",
  "nearest_connection",
  "created_connection_id",
];

export function orphanCsvRow(record: OrphanRecord): string {
  return csvRow(
    [
      record.input,
      record.packet,
      record.time,
      record.protocol,
      record.protocolNumber,
      record.src,
      record.dst,
      record.sport,
      record.dport,
      record.icmpType,
      record.icmpCode,
      record.tcpFlags,
      record.kind,
      record.reason,
      record.engineReason,
      record.endedConnectionId,
      record.secondsAfterEnd === null ? null : record.secondsAfterEnd.toFixed(6),
      record.nearestConnectionId,
      record.nearestConnection,
      record.createdConnectionId,
    ].map(safeCsvCell),
  );
}

/**
 * What is remembered of an ended connection: numbers and a copy of its original tuple, its words for
 * people made only if an orphan names it. Entries of the bounded memories are reused once forgotten, so
 * remembering allocates nothing once a memory is full (objects that live a while and then die by the
 * thousand are what a generational collector handles worst: they fill the old generation).
 */
class EndedConnection {
  id = 0;
  protocol = 0;
  endSec = 0;
  endNsec = 0;
  cause: DestroyCause = "expired";
  /** Its last state: a TCP state name, ASSURED, REPLIED or UNREPLIED. */
  state = "";
  readonly original = new Tuple();

  copyFrom(other: EndedConnection): void {
    this.id = other.id;
    this.protocol = other.protocol;
    this.endSec = other.endSec;
    this.endNsec = other.endNsec;
    this.cause = other.cause;
    this.state = other.state;
    this.original.copyFrom(other.original);
  }

  /** "timeout in SYN_SENT", "RST in …" */
  get how(): string {
    const how =
      this.cause === "reset"
        ? "RST"
        : this.cause === "reopen"
          ? "reused by a new connection"
          : this.cause === "early-drop"
            ? "evicted from a full table"
            : "timeout";
    return `${how} in ${this.state}`;
  }

  get description(): string {
    return `${protocolName(this.protocol)} ${describeTuple(this.original)}`;
  }
}

/** An ended connection remembered under one of its tuples. */
class EndedTuple implements HashedEntry<Tuple, EndedTuple> {
  hash = 0;
  sameHash: EndedTuple | null = null;
  older: EndedTuple | null = null;
  newer: EndedTuple | null = null;
  readonly tuple = new Tuple();
  readonly ended = new EndedConnection();
  /** Whether `tuple` is the connection's reply tuple. */
  replyDirection = false;

  matches(key: Tuple): boolean {
    return this.tuple.equals(key);
  }
}

/** The two addresses of a tuple, whichever way round (in a fixed order of their words). */
class AddressPair {
  family = 0;
  a0 = 0;
  a1 = 0;
  a2 = 0;
  a3 = 0;
  b0 = 0;
  b1 = 0;
  b2 = 0;
  b3 = 0;
  hash = 0;

  setFrom(tuple: Tuple): this {
    const srcFirst =
      tuple.srcWord0 !== tuple.dstWord0
        ? tuple.srcWord0 < tuple.dstWord0
        : tuple.srcWord1 !== tuple.dstWord1
          ? tuple.srcWord1 < tuple.dstWord1
          : tuple.srcWord2 !== tuple.dstWord2
            ? tuple.srcWord2 < tuple.dstWord2
            : tuple.srcWord3 <= tuple.dstWord3;
    this.family = tuple.family;
    if (srcFirst) {
      this.setWords(
        tuple.srcWord0,
        tuple.srcWord1,
        tuple.srcWord2,
        tuple.srcWord3,
        tuple.dstWord0,
        tuple.dstWord1,
        tuple.dstWord2,
        tuple.dstWord3,
      );
    } else {
      this.setWords(
        tuple.dstWord0,
        tuple.dstWord1,
        tuple.dstWord2,
        tuple.dstWord3,
        tuple.srcWord0,
        tuple.srcWord1,
        tuple.srcWord2,
        tuple.srcWord3,
      );
    }
    this.hash = pairHash(this.family, this.a0, this.a1, this.a2, this.a3, this.b0, this.b1, this.b2, this.b3);
    return this;
  }

  copyFrom(other: AddressPair): void {
    this.family = other.family;
    this.setWords(other.a0, other.a1, other.a2, other.a3, other.b0, other.b1, other.b2, other.b3);
    this.hash = other.hash;
  }

  matches(other: AddressPair): boolean {
    return (
      this.a0 === other.a0 &&
      this.b0 === other.b0 &&
      this.family === other.family &&
      this.a1 === other.a1 &&
      this.a2 === other.a2 &&
      this.a3 === other.a3 &&
      this.b1 === other.b1 &&
      this.b2 === other.b2 &&
      this.b3 === other.b3
    );
  }

  private setWords(
    a0: number,
    a1: number,
    a2: number,
    a3: number,
    b0: number,
    b1: number,
    b2: number,
    b3: number,
  ): void {
    this.a0 = a0;
    this.a1 = a1;
    this.a2 = a2;
    this.a3 = a3;
    this.b0 = b0;
    this.b1 = b1;
    this.b2 = b2;
    this.b3 = b3;
  }
}

/** An address pair whose last connection ended, with that connection. */
class EndedPair extends AddressPair implements HashedEntry<AddressPair, EndedPair> {
  sameHash: EndedPair | null = null;
  older: EndedPair | null = null;
  newer: EndedPair | null = null;
  readonly ended = new EndedConnection();
}

export interface OrphanTrackerOptions {
  onOrphan: (record: OrphanRecord) => void;
  /** Ended connections remembered for "after its end" and nearest-connection answers (default 4096). */
  memory?: number;
}

const newEndedTuple = (): EndedTuple => new EndedTuple();
const newEndedPair = (): EndedPair => new EndedPair();

export class OrphanTracker {
  private readonly onOrphan: (record: OrphanRecord) => void;
  private readonly memory: number;
  /** Ended connections by original and reply tuple, oldest first. */
  private readonly ended = new HashedEntries<Tuple, EndedTuple>();
  /** Address pairs of live connections (follows the live table). */
  private readonly livePairs = new LivePairs();
  /** Address pairs whose last connection ended, the latest ended one each, oldest first (bounded). */
  private readonly endedPairs = new HashedEntries<AddressPair, EndedPair>();
  private readonly probe = new Tuple();
  private readonly pairProbe = new AddressPair();
  /** The connection ending now, then copied into the entries that remember it. */
  private readonly ending = new EndedConnection();
  private readonly replyTuple = new Tuple();
  private inputNames: readonly string[] = [];
  /** A connection just created by a packet travelling its ended predecessor's reply direction. */
  private pendingReply: { connection: Connection; ended: EndedConnection } | null = null;
  private readonly pendingEnded = new EndedConnection();
  /** Orphans by kind and by reason. */
  readonly byKind = new Map<OrphanKind, number>();
  readonly byReason = new Map<string, number>();
  count = 0;

  constructor(options: OrphanTrackerOptions) {
    this.onOrphan = options.onOrphan;
    this.memory = Math.max(1, options.memory ?? 4096);
  }

  /** How much is remembered now: ended tuples (two per connection) and address pairs (live or ended). */
  get remembered(): { tuples: number; livePairs: number; endedPairs: number } {
    return { tuples: this.ended.size, livePairs: this.livePairs.size, endedPairs: this.endedPairs.size };
  }

  setInputNames(names: readonly string[]): void {
    this.inputNames = names;
  }

  /** Feed every engine event here. */
  onEvent(event: ConntrackEvent): void {
    const connection = event.connection;
    const original = connection.tupleInto(0, this.probe);
    if (event.type === "NEW") {
      const previous = this.ended.get(original, signedTupleHash(original));
      if (previous !== null && previous.replyDirection) {
        // A copy: the entry may be reused before the packet's orphan check reads it.
        this.pendingEnded.copyFrom(previous.ended);
        this.pendingReply = { connection, ended: this.pendingEnded };
      }
      this.livePairs.addConnection(this.pairProbe.setFrom(original), connection);
      return;
    }
    if (event.type !== "DESTROY") return;
    const ended = this.ending;
    ended.id = connection.id;
    ended.protocol = connection.protocol;
    ended.endSec = event.tsSec;
    ended.endNsec = event.tsNsec;
    ended.cause = event.destroyCause === "" ? "expired" : event.destroyCause;
    ended.state =
      connection.tcpState >= 0
        ? TCP_STATE_NAMES[connection.tcpState]
        : connection.assured
          ? "ASSURED"
          : connection.seenReply
            ? "REPLIED"
            : "UNREPLIED";
    ended.original.copyFrom(original);
    if (event.destroyCause !== "reopen") {
      this.remember(original, false);
      this.remember(connection.tupleInto(1, this.replyTuple), true);
    }
    const key = this.pairProbe.setFrom(original);
    const pair = this.livePairs.find(key);
    if (pair >= 0 && this.livePairs.endConnection(pair, key)) {
      // Added again as the newest: pairs are forgotten oldest-ended first.
      const endedPair = this.endedPairs.newest(key, key.hash, this.memory, newEndedPair);
      endedPair.copyFrom(key);
      endedPair.ended.copyFrom(ended);
    }
  }

  /**
   * Feed every packet the engine saw, with its verdict and reason, and the connection whose live flow
   * it belonged to (FlowTracker.onPacket's answer).
   */
  onPacket(
    inputIndex: number,
    recordNumber: number,
    packet: DecodedPacket,
    verdict: number,
    reason: string,
    live: Connection | null,
  ): void {
    const pending = this.pendingReply;
    if (pending !== null) {
      this.pendingReply = null;
      if (verdict === Verdict.New || verdict === Verdict.Established) {
        const after = secondsBetween(
          pending.ended.endSec,
          pending.ended.endNsec,
          packet.tsSec,
          packet.tsNsec,
        );
        this.emit(inputIndex, recordNumber, packet, "reply-after-expiry", null, {
          reason:
            `reply ${after.toFixed(3)} s after connection ${pending.ended.id} ended (${pending.ended.how}); ` +
            `conntrack took it for a new connection ${pending.connection.id}`,
          ended: pending.ended,
          after,
          created: pending.connection.id,
        });
        return;
      }
    }
    const tableFull = verdict === Verdict.Dropped && reason === Reason.tableFull;
    if (verdict !== Verdict.Invalid && !tableFull) return;
    if (tableFull) {
      this.emit(inputIndex, recordNumber, packet, "table-full", live, { reason, engineReason: reason });
      return;
    }
    let kind = classify(reason);
    let text = describeInvalid(reason, packet);
    let ended: EndedConnection | null = null;
    let after: number | null = null;
    if (live === null && fillPacketTuple(packet, this.probe)) {
      const previous = this.ended.get(this.probe, signedTupleHash(this.probe))?.ended;
      if (previous !== undefined) {
        ended = previous;
        after = secondsBetween(previous.endSec, previous.endNsec, packet.tsSec, packet.tsNsec);
        kind = "after-end";
        text = `${text}: ${after.toFixed(3)} s after connection ${previous.id} ended (${previous.how})`;
      }
    }
    this.emit(inputIndex, recordNumber, packet, kind, live, {
      reason: text,
      engineReason: reason,
      ended,
      after,
    });
  }

  /** Remembers the ending connection (`this.ending`) under `tuple`, reusing the entry forgotten for it. */
  private remember(tuple: Tuple, replyDirection: boolean): void {
    const entry = this.ended.newest(tuple, signedTupleHash(tuple), this.memory * 2, newEndedTuple);
    entry.tuple.copyFrom(tuple);
    entry.ended.copyFrom(this.ending);
    entry.replyDirection = replyDirection;
  }

  private nearest(
    packet: DecodedPacket,
    live: Connection | null,
    aboutQuoted: boolean,
  ): { id: number; description: string } | null {
    if (live !== null) {
      return {
        id: live.id,
        description: `${protocolName(live.protocol)} ${describeTuple(live.original)} (same tuple, live)`,
      };
    }
    const probe = this.probe;
    // An ICMP error is about the packet it quotes: look on that packet's address pair.
    if (aboutQuoted) fillQuotedAddresses(packet, probe);
    else if (!fillPacketAddresses(packet, probe)) return null;
    const key = this.pairProbe.setFrom(probe);
    const pair = this.livePairs.find(key);
    if (pair >= 0) {
      const latest = this.livePairs.latest(pair);
      return {
        id: latest.id,
        description: `${protocolName(latest.protocol)} ${describeTuple(latest.original)} (same addresses, live)`,
      };
    }
    const ended = this.endedPairs.get(key, key.hash)?.ended;
    if (ended === undefined) return null;
    const after = secondsBetween(ended.endSec, ended.endNsec, packet.tsSec, packet.tsNsec);
    return {
      id: ended.id,
      description: `${ended.description} (same addresses, ended ${after.toFixed(3)} s before: ${ended.how})`,
    };
  }

  private emit(
    inputIndex: number,
    recordNumber: number,
    packet: DecodedPacket,
    kind: OrphanKind,
    live: Connection | null,
    detail: {
      reason: string;
      engineReason?: string | null;
      ended?: EndedConnection | null;
      after?: number | null;
      created?: number | null;
    },
  ): void {
    const ported = packet.hasPorts && !isIcmp(packet.protocol);
    const icmp = packet.hasPorts && isIcmp(packet.protocol);
    const ended = detail.ended ?? null;
    const nearest =
      ended !== null
        ? { id: ended.id, description: `${ended.description} (same tuple, ended)` }
        : this.nearest(packet, live, kind === "icmp-error-unknown" && packet.embedded.present);
    const record: OrphanRecord = {
      input: this.inputNames[inputIndex] ?? String(inputIndex),
      packet: recordNumber,
      time: isoTimeNs(packet.tsSec, packet.tsNsec),
      protocol: protocolName(packet.protocol),
      protocolNumber: packet.protocol,
      src: addressText(packet, "src"),
      dst: addressText(packet, "dst"),
      sport: ported ? packet.srcPort : null,
      dport: ported ? packet.dstPort : null,
      icmpType: icmp ? packet.icmpType : null,
      icmpCode: icmp ? packet.icmpCode : null,
      tcpFlags: packet.protocol === IPPROTO_TCP && packet.hasPorts ? tcpFlagsText(packet.tcpFlags) : null,
      kind,
      reason: detail.reason,
      engineReason: detail.engineReason ?? null,
      endedConnectionId: ended?.id ?? null,
      secondsAfterEnd: detail.after ?? null,
      nearestConnectionId: nearest?.id ?? null,
      nearestConnection: nearest?.description ?? null,
      createdConnectionId: detail.created ?? null,
    };
    this.count++;
    this.byKind.set(kind, (this.byKind.get(kind) ?? 0) + 1);
    const reasonKey = record.engineReason ?? kind;
    this.byReason.set(reasonKey, (this.byReason.get(reasonKey) ?? 0) + 1);
    this.onOrphan(record);
  }
}

function isIcmp(protocol: number): boolean {
  return protocol === IPPROTO_ICMP || protocol === IPPROTO_ICMPV6;
}

function classify(reason: string): OrphanKind {
  switch (reason) {
    case Reason.icmpNoMatch:
    case Reason.icmpOuterMismatch:
      return "icmp-error-unknown";
    case Reason.icmpNotNew:
    case Reason.cannotInvert:
    case TcpReason.invalidNew:
    case TcpReason.noPickup:
      return "no-original";
    case TcpReason.seqOverWindow:
    case TcpReason.ackOverSent:
    case TcpReason.invalidRst:
      return "outside-window";
    default:
      return "invalid";
  }
}

const ICMP_NAMES: Record<number, string> = {
  0: "echo reply",
  14: "timestamp reply",
  16: "information reply",
  18: "address mask reply",
};
const ICMPV6_NAMES: Record<number, string> = { 129: "echo reply", 140: "node information reply" };

/** The engine's reason made specific with what the packet was. */
function describeInvalid(reason: string, packet: DecodedPacket): string {
  const kind = classify(reason);
  if (kind === "no-original") {
    if (packet.protocol === IPPROTO_TCP) return `${tcpPacketName(packet.tcpFlags)} with no connection`;
    if (isIcmp(packet.protocol)) {
      const name = (packet.protocol === IPPROTO_ICMP ? ICMP_NAMES : ICMPV6_NAMES)[packet.icmpType];
      return name !== undefined
        ? `${name} with no request`
        : `icmp type ${packet.icmpType} cannot start a connection`;
    }
  }
  if (kind === "icmp-error-unknown") {
    const inner = packet.embedded;
    const about = inner.present
      ? ` (about ${protocolName(inner.protocol)} ${innerAddress(packet, "src")}${inner.hasPorts && !isIcmp(inner.protocol) ? `:${inner.srcPort}` : ""} > ${innerAddress(packet, "dst")}${inner.hasPorts && !isIcmp(inner.protocol) ? `:${inner.dstPort}` : ""})`
      : "";
    return `icmp error type ${packet.icmpType} code ${packet.icmpCode} about an unknown connection${about}`;
  }
  if (kind === "outside-window")
    return `${tcpPacketName(packet.tcpFlags)} outside the TCP window (${reason.slice(5)})`;
  return reason;
}

function tcpPacketName(flags: number): string {
  if (flags & TCP_RST) return flags & TCP_ACK ? "RST-ACK" : "RST";
  if (flags & TCP_SYN) return flags & TCP_ACK ? "SYN-ACK" : "SYN";
  if (flags & TCP_FIN) return "FIN";
  return flags & TCP_ACK ? "ACK" : "TCP segment";
}

/** tcpdump's flag letters: S F R P . (ACK) U E W. */
export function tcpFlagsText(flags: number): string {
  let text = "";
  if (flags & 0x02) text += "S";
  if (flags & 0x01) text += "F";
  if (flags & 0x04) text += "R";
  if (flags & 0x08) text += "P";
  if (flags & 0x20) text += "U";
  if (flags & 0x40) text += "E";
  if (flags & 0x80) text += "W";
  if (flags & 0x10) text += ".";
  return text === "" ? "none" : text;
}

function addressText(packet: DecodedPacket, which: "src" | "dst"): string {
  const probe = scratch;
  if (!fillPacketAddresses(packet, probe)) return "";
  return tupleAddress(probe, which);
}

function innerAddress(packet: DecodedPacket, which: "src" | "dst"): string {
  fillQuotedAddresses(packet, scratch);
  return tupleAddress(scratch, which);
}

/** The addresses of the packet an ICMP error quotes (IPv4 zeros when the quote had none). */
function fillQuotedAddresses(packet: DecodedPacket, tuple: Tuple): void {
  if (fillPacketAddresses(packet.embedded, tuple)) return;
  tuple.family = 4;
  tuple.src0 = tuple.src1 = tuple.src2 = tuple.src3 = tuple.dst0 = tuple.dst1 = tuple.dst2 = tuple.dst3 = 0;
}

const scratch = new Tuple();
