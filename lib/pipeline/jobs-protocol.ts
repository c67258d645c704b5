/**
 * What the replay's main thread and its workers (`--jobs N`, lib/pipeline/jobs.ts) say to each other.
 *
 * The main thread reads and decodes every record (to know its shard), and hands each decoded packet to
 * the worker of its shard in rounds of records. Every worker gets every round, with or without packets
 * of its own, so that all of them run their clocks to the round's end: the events a round produces are
 * then final, and the main thread merges them in the order one engine would have emitted them.
 */
import type { EngineStats } from "../conntrack/engine.js";
import type { EventFormat } from "../report/event-formats.js";
import type { RecordStepOptions } from "./replay.js";
import type { WorkerErrorMessage } from "./one-shot-worker.js";

/**
 * Connection ids a worker gives before the main thread numbers them: PROVISIONAL_ID_BASE + the global
 * index of the record that created the connection (a record confirms at most one connection). They
 * sort as creation order, as the single run's ids do, and are larger than any id that run gives.
 */
export const PROVISIONAL_ID_BASE = 2 ** 40;

/** Doubles per record in a round's `meta`. */
export const RECORD_META_FIELDS = 14;
export const enum RecordMeta {
  /** Index of the record among all records read (0-based). */
  Index = 0,
  /** The engine clock before this record (latest decoded packet time so far), -1 before any. */
  ClockSec = 1,
  ClockNsec = 2,
  TsSec = 3,
  TsNsec = 4,
  LinkType = 5,
  Caplen = 6,
  Origlen = 7,
  InputIndex = 8,
  InterfaceId = 9,
  RecordNumber = 10,
  /** Where the record's bytes start in its shared buffer. */
  DataOffset = 11,
  FileOffset = 12,
  /** The shared buffer holding the record's bytes (a reader's, or an arena of copies). */
  BufferId = 13,
}

/**
 * Doubles per event in a result's `keys`: the merge key, where the event's bytes end, and whether its
 * line names a provisional id (only those lines are rewritten; the others are copied as they are).
 */
export const EVENT_KEY_FIELDS = 6;
export const enum EventKey {
  TsSec = 0,
  TsNsec = 1,
  /** 0: a timer fired (expiry, drain), 1: a packet's own events. */
  Group = 2,
  /** Timers: the connection's id (provisional or final); packets: the record's index. */
  Tiebreak = 3,
  End = 4,
  /** 1: the line names a provisional id (its connection's or its master's), 0: none. */
  Provisional = 5,
}

export const enum EventGroup {
  Timer = 0,
  Packet = 1,
  /** Flows still live when the input ends (`report`), after every event of that time, by id. */
  Live = 2,
}

/** What a round or a finish writes, each stream into buffers of its own, in this order. */
export const enum OutputStream {
  Events = 0,
  Expectations = 1,
  /** `report`'s flows.csv and flows.ndjson rows, each keyed as the DESTROY that ended its flow. */
  FlowsCsv = 2,
  FlowsNdjson = 3,
}
export const OUTPUT_STREAM_COUNT = 4;

/** Timer-fired expectation events come after the connections that expire at the same time. */
export const EXPECTATION_TIMER_TIEBREAK = 2 ** 52;

export interface JobsEventFormat {
  format: Exclude<EventFormat, "json">;
  timestamp: boolean;
  events: boolean;
  expectations: boolean;
}

/** `report`'s flow files, written by the workers as their connections end. */
export interface JobsFlowFormat {
  csv: boolean;
  ndjson: boolean;
  maxHistory?: number;
  communityIdSeed?: number;
}

export interface JobsWorkerData {
  step: Pick<RecordStepOptions, "settings" | "helpers" | "helperPorts" | "ftpLoose" | "nat" | "decoder">;
  format: JobsEventFormat;
  /** Null: no flow files. */
  flows: JobsFlowFormat | null;
}

/**
 * Rounds use a few slots in turn (rounds in flight + 1): a slot's shared buffers (the record list the
 * main thread writes, the events a worker writes) are reused once the main thread has merged the round
 * that last used them, so nothing is allocated, copied or transferred per round but the small messages.
 */
export interface RoundMessage {
  type: "round";
  round: number;
  slot: number;
  count: number;
  /** The slot's record list (RECORD_META_FIELDS doubles per record), sent when the slot is new to the worker. */
  meta: SharedArrayBuffer | null;
  /** Shared buffers (read only) the round's records point into that the worker has not been sent yet. */
  buffers: { id: number; buffer: SharedArrayBuffer }[];
  /** The clock after the round's last record: every worker runs to it before answering. */
  endSec: number;
  endNsec: number;
  /** The first decoded packet's second (every engine counts from it), -1 while none. */
  epochSec: number;
  /** Final ids for this worker's provisional ones: pairs (provisional, final). */
  ids: Float64Array | null;
}

export interface FinishMessage {
  type: "finish";
  /** Run the clock to this capture time first (`until`), or null. */
  advanceSec: number | null;
  advanceNsec: number;
  drain: boolean;
  /**
   * With `drain`: expire only what expires up to this capture time (a drain in time windows, each
   * merged as it comes), or null for everything.
   */
  drainUntilSec: number | null;
  drainUntilNsec: number;
  epochSec: number;
  ids: Float64Array | null;
  /**
   * After the rest: write the flows still live whose id is below this, in id order (0 writes none but
   * names the first one in `nextLiveFlowId`), or null.
   */
  liveFlowsBelow: number | null;
}

export type ToWorker = RoundMessage | FinishMessage;

/** Where one stream's events of a round are: in the slot's buffers, new ones named when they changed. */
export interface EventBatchInfo {
  used: number;
  count: number;
  /** The slot's buffers when the worker made (or grew) them this round, else null (as before). */
  bytes: SharedArrayBuffer | null;
  keys: SharedArrayBuffer | null;
}

/** A stream's events of a round as the main thread merges them. */
export interface EventBatch {
  bytes: Buffer;
  used: number;
  /** EVENT_KEY_FIELDS doubles per event. */
  keys: Float64Array;
  count: number;
}

export interface RoundResult {
  type: "round";
  round: number;
  slot: number;
  /** By `OutputStream`. */
  streams: EventBatchInfo[];
  /** Indexes of the records that confirmed a connection, ascending. */
  confirmations: Float64Array;
  /** Records that did not decode as they had in the main thread (never expected; counted, not hidden). */
  mismatches: number;
}

export interface FinishResult {
  type: "finish";
  /** What the finish wrote (drain, until, live flows) by `OutputStream`, in slot FINISH_SLOT's buffers. */
  streams: EventBatchInfo[];
  stats: EngineStats;
  liveConnections: number;
  liveExpectations: number;
  /** Expectation events by type, also when they were not asked for (the summary counts them). */
  expectEvents: { NEW: number; DESTROY: number };
  /** Capture time of the worker's earliest pending timer (it may fire later), null when none is. */
  nextExpirySec: number | null;
  nextExpiryNsec: number;
  /**
   * Capture time up to which at most `DRAIN_WINDOW_ENTRIES` of the worker's connections expire, null
   * when fewer are live: where the next drain window may end.
   */
  windowEndSec: number | null;
  windowEndNsec: number;
  /** After live flows were asked for: the id of the next one still to write, null when none is. */
  nextLiveFlowId: number | null;
}

/** Connections a worker expires at most in one drain window of `--jobs` (see `FinishResult`). */
export const DRAIN_WINDOW_ENTRIES = 2048;

export type FromWorker = RoundResult | FinishResult | WorkerErrorMessage;

/** The output slot the finish writes into (past every round slot). */
export const FINISH_SLOT = 1024;
