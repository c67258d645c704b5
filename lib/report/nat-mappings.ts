/**
 * The NAT mappings report (`nat.csv`, `nat.ndjson`): which inside endpoint left as which outside
 * endpoint towards which remote one, when, over how many connections and bytes, and how the mapping
 * is known. Connections that share a mapping while it is in use make one row: the row is written when
 * the last of them ends, so memory follows the live NAT'd connections, never the capture.
 *
 * Endpoints: for SNAT (MASQUERADE included) the inside endpoint is the original source, the outside
 * one the reply's destination, the remote one the original destination. For DNAT (a port forward, or
 * the RELATED data connection of active FTP behind MASQUERADE) the outside endpoint is the original
 * destination, the inside one the reply's source, the remote one the original source. With both, the
 * source side defines inside and outside and the remote endpoint is the reply's source (the real
 * peer). ICMP endpoints carry the echo id as their port; protocols without ports have none.
 */
import { Status, Tuple, type Connection } from "../conntrack/connection.js";
import { csvRow, tupleRecord, type TupleRecord } from "./event-formats.js";
import type { FlowRecord, NatKind } from "./flows.js";
import { natKind } from "./flows.js";
import { safeCsvCell } from "./escape.js";

export interface NatEndpoint {
  address: string;
  /** Port, or the ICMP echo id; null for protocols without either. */
  port: number | null;
}

/**
 * How the outside port came about: "kept" (the device kept the inside port), "device" (observed: the
 * device chose another), "rule" (configured: a rule's port range or target port), "own-choice"
 * (configured: the port clashed and the kernel would pick one at random, so this is the model's).
 */
export type NatPortChoice = "kept" | "device" | "rule" | "own-choice";

export interface NatMappingRecord {
  protocol: string;
  kind: Exclude<NatKind, "none">;
  /** "observed" (captures on both sides) or "configured" (rules); "mixed" when its connections differ. */
  origin: "observed" | "configured" | "mixed";
  portChoice: NatPortChoice;
  inside: NatEndpoint;
  outside: NatEndpoint;
  remote: NatEndpoint;
  /** ISO 8601 UTC, nanoseconds: the first packet of the first connection, the last of the last. */
  firstSeen: string;
  lastSeen: string;
  connections: number;
  packets: number;
  bytes: number;
  /** Bytes sent by the side that opened the connections (original direction) and back (reply). */
  originalBytes: number;
  replyBytes: number;
  /** Connection ids (events.csv, flows.csv), the first `MAX_LISTED_IDS` of them. */
  connectionIds: number[];
}

/** Connection ids a mapping row lists; `connections` counts them all. */
export const MAX_LISTED_IDS = 20;

export const NAT_CSV_COLUMNS = [
  "protocol",
  "kind",
  "origin",
  "port_choice",
  "inside_address",
  "inside_port",
  "outside_address",
  "outside_port",
  "remote_address",
  "remote_port",
  "first_seen",
  "last_seen",
  "connections",
  "packets",
  "bytes",
  "original_bytes",
  "reply_bytes",
  "connection_ids",
];

export function natMappingCsvRow(record: NatMappingRecord): string {
  return csvRow(
    [
      record.protocol,
      record.kind,
      record.origin,
      record.portChoice,
      record.inside.address,
      record.inside.port,
      record.outside.address,
      record.outside.port,
      record.remote.address,
      record.remote.port,
      record.firstSeen,
      record.lastSeen,
      record.connections,
      record.packets,
      record.bytes,
      record.originalBytes,
      record.replyBytes,
      record.connectionIds.join(" ") + (record.connections > record.connectionIds.length ? " …" : ""),
    ].map(safeCsvCell),
  );
}

/** A mapping in use: its row so far and how many of its connections are still live. */
interface LiveMapping {
  record: NatMappingRecord;
  live: number;
  ownChoice: boolean;
}

export class NatMappingTracker {
  private readonly byKey = new Map<string, LiveMapping>();
  /** Live NAT'd connections by id: their mapping's key. */
  private readonly keyOf = new Map<number, string>();
  private readonly onMapping: (record: NatMappingRecord) => void;
  /** Where a new connection's tuples are read into (every NEW is looked at; few are translated). */
  private readonly originalTuple = new Tuple();
  private readonly replyTuple = new Tuple();
  /** Rows written so far. */
  emitted = 0;

  constructor(options: { onMapping: (record: NatMappingRecord) => void }) {
    this.onMapping = options.onMapping;
  }

  /** Mappings with a live connection now. */
  get liveCount(): number {
    return this.byKey.size;
  }

  /** Call on every NEW event: a translated connection joins its mapping. */
  onNew(connection: Connection): void {
    const originalTuple = connection.tupleInto(0, this.originalTuple);
    const replyTuple = connection.tupleInto(1, this.replyTuple);
    const kind = natKind(originalTuple, replyTuple);
    if (kind === "none") return;
    const original = tupleRecord(originalTuple);
    const reply = tupleRecord(replyTuple);
    const endpoints = mappingEndpoints(kind, original, reply);
    const origin = (connection.status & Status.NatObserved) !== 0 ? "observed" : "configured";
    const key = [
      originalTuple.protocol,
      kind,
      endpointKey(endpoints.inside),
      endpointKey(endpoints.outside),
      endpointKey(endpoints.remote),
    ].join(" ");
    this.keyOf.set(connection.id, key);
    const ownChoice = (connection.status & Status.NatOwnChoice) !== 0;
    const existing = this.byKey.get(key);
    if (existing !== undefined) {
      existing.live++;
      if (existing.record.origin !== origin) existing.record.origin = "mixed";
      existing.ownChoice ||= ownChoice;
      return;
    }
    this.byKey.set(key, {
      live: 1,
      ownChoice,
      record: {
        protocol: "",
        kind: kind === "both" ? "both" : kind,
        origin,
        portChoice: "kept",
        ...endpoints,
        firstSeen: "",
        lastSeen: "",
        connections: 0,
        packets: 0,
        bytes: 0,
        originalBytes: 0,
        replyBytes: 0,
        connectionIds: [],
      },
    });
  }

  /** Call with every finished flow record: its connection leaves its mapping, which is written when empty. */
  /** Whether the connection of id `id` has a mapping here (`onFlow` wants its record). */
  tracks(id: number): boolean {
    return this.keyOf.has(id);
  }

  onFlow(flow: FlowRecord): void {
    const key = this.keyOf.get(flow.id);
    if (key === undefined) return;
    this.keyOf.delete(flow.id);
    const mapping = this.byKey.get(key)!;
    const record = mapping.record;
    record.protocol = flow.protocol;
    if (record.firstSeen === "" || flow.firstPacket < record.firstSeen) record.firstSeen = flow.firstPacket;
    if (flow.lastPacket > record.lastSeen) record.lastSeen = flow.lastPacket;
    record.connections++;
    record.packets += flow.originalPackets + flow.replyPackets;
    record.originalBytes += flow.originalBytes;
    record.replyBytes += flow.replyBytes;
    record.bytes = record.originalBytes + record.replyBytes;
    if (record.connectionIds.length < MAX_LISTED_IDS) record.connectionIds.push(flow.id);
    if (--mapping.live > 0) return;
    this.byKey.delete(key);
    record.portChoice = portChoiceOf(record, mapping.ownChoice);
    this.emitted++;
    this.onMapping(record);
  }
}

function mappingEndpoints(
  kind: NatKind,
  original: TupleRecord,
  reply: TupleRecord,
): { inside: NatEndpoint; outside: NatEndpoint; remote: NatEndpoint } {
  if (kind === "dnat")
    return {
      inside: endpoint(reply.src, sourcePort(reply)),
      outside: endpoint(original.dst, destinationPort(original)),
      remote: endpoint(original.src, sourcePort(original)),
    };
  return {
    inside: endpoint(original.src, sourcePort(original)),
    outside: endpoint(reply.dst, destinationPort(reply)),
    remote:
      kind === "both"
        ? endpoint(reply.src, sourcePort(reply))
        : endpoint(original.dst, destinationPort(original)),
  };
}

/** A tuple's source port, or its ICMP id (which both directions carry). */
function sourcePort(tuple: TupleRecord): number | null {
  return tuple.sport ?? tuple.id ?? null;
}

function destinationPort(tuple: TupleRecord): number | null {
  return tuple.dport ?? tuple.id ?? null;
}

function endpoint(address: string, port: number | null): NatEndpoint {
  return { address, port };
}

function endpointKey(point: NatEndpoint): string {
  return point.port === null ? point.address : `${point.address}#${point.port}`;
}

function portChoiceOf(record: NatMappingRecord, ownChoice: boolean): NatPortChoice {
  if (record.inside.port === record.outside.port) return "kept";
  if (ownChoice) return "own-choice";
  return record.origin === "configured" ? "rule" : "device";
}
