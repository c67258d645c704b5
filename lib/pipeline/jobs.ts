/**
 * `--jobs N`: one replay over N worker threads, with the single engine's output.
 *
 * The main thread reads and decodes every record once (to know which shard a packet belongs to, by
 * the symmetric address-pair hash of lib/pipeline/shard.ts: both directions of a connection, an FTP
 * control connection with its data connections, and an ICMP error with the connection it quotes meet
 * in one worker) and sends each decoded packet's bytes to that shard's worker, with the clock one
 * engine would have had before it. Records go out in rounds; every worker answers every round after
 * running its clock to the round's end, so each round's events are final when all have answered. The
 * main thread then puts them in the order one engine emits them (timers due by a packet's time before
 * that packet's events; timers at one instant by connection id; packets by record), numbers the new
 * connections as one engine would (in the order of the records that created them), and writes.
 *
 * What differs from one engine: `nf_conntrack_max` and early drop act per worker (each has its own
 * table), and "most live at once" is the sum of the workers' maxima (an upper bound).
 */
import { errorFromWorker, startWorker } from "./one-shot-worker.js";
import type { ConntrackEngine } from "../conntrack/engine.js";
import { PacketDecoder } from "../decode/decoder.js";
import { PacketClass } from "../decode/packet.js";
import { EVENT_CSV_COLUMNS, EXPECT_EVENT_CSV_COLUMNS } from "../report/event-formats.js";
import { FLOW_CSV_COLUMNS } from "../report/flows.js";
import { PacketAccounting } from "./accounting.js";
import { openInputs } from "./inputs.js";
import { writeNumber } from "../report/ascii-bytes.js";
import { digitsValue, findCsvCells } from "./text-lines.js";
import type { ByteBufferPool } from "../capture/bytes.js";
import { ReplaySpan, type ReplayOptions, type ReplayResult } from "./replay.js";
import { shardOf } from "./shard.js";
import { sumEngines, sumExpectEvents, type EngineSummary } from "./shard-summary.js";
import {
  EVENT_KEY_FIELDS,
  EXPECTATION_TIMER_TIEBREAK,
  EventGroup,
  EventKey,
  FINISH_SLOT,
  OUTPUT_STREAM_COUNT,
  OutputStream,
  PROVISIONAL_ID_BASE,
  RECORD_META_FIELDS,
  RecordMeta,
  type EventBatch,
  type FinishResult,
  type FromWorker,
  type JobsEventFormat,
  type JobsWorkerData,
  type EventBatchInfo,
  type RoundResult,
  type ToWorker,
} from "./jobs-protocol.js";

export type { JobsEventFormat } from "./jobs-protocol.js";
export type { EngineSummary } from "./shard-summary.js";

/** LINKTYPE_RAW: a reassembled datagram goes to its worker as the bare IP packet. */
const LINKTYPE_RAW = 101;
/**
 * Records per round. A small round's bytes are still in the caches when the workers read what the main
 * thread just read (8192 records, with 8 MiB reads, took 5-10 % longer on the bench capture).
 */
const DEFAULT_ROUND_RECORDS = 2048;
const DEFAULT_ROUNDS_IN_FLIGHT = 3;
/** Ids of live flows written in one finish step at the end of a `report` (see `JobsFlowOptions`). */
const LIVE_FLOW_WINDOW_IDS = 4096;
/** A round's shared bytes; a round goes out early when its records fill them. */
const ARENA_BYTES = 16 << 20;
/** Bytes between two records (headers, padding) that still let them share one copied span. */
const MAX_SPAN_GAP = 4096;

export interface JobsReplayOptions extends Omit<
  ReplayOptions,
  "onEvent" | "onExpectEvent" | "onPacket" | "observedNat" | "shard" | "backpressure"
> {
  /** Worker threads (at least 1). */
  jobs: number;
  /** How the workers write events (a JSON array is not line by line: use ndjson). */
  format: JobsEventFormat;
  /** Receives the connection events, formatted, in one engine's order. */
  writeEvents?: (bytes: Uint8Array) => void;
  /** Receives the expectation events likewise. */
  writeExpectations?: (bytes: Uint8Array) => void;
  /**
   * `report`'s flow files: each connection's flows.csv row and flows.ndjson line as it ends, then the
   * live ones in id order, as one engine's FlowTracker writes them. The engine's settings must have
   * events on (the flows follow them; `format.events` says whether they are written).
   */
  flows?: JobsFlowOptions;
  /** A promise to wait for before going on (the output's buffer is full), or null. */
  backpressure?: () => Promise<void> | null;
  /** Records per round (default 2048) and rounds sent before the oldest must be answered (default 3). */
  roundRecords?: number;
  roundsInFlight?: number;
}

export interface JobsFlowOptions {
  writeCsv?: (bytes: Uint8Array) => void;
  writeNdjson?: (bytes: Uint8Array) => void;
  maxHistory?: number;
  communityIdSeed?: number;
}

export interface JobsReplayResult extends Omit<ReplayResult, "engine"> {
  engine: EngineSummary;
  jobs: number;
}

/** One worker's records of the round being built, and what it has been sent and has written. */
interface Outbox {
  /** The record list of each slot (shared with the worker). */
  metaSlots: Float64Array[];
  metaSent: boolean[];
  meta: Float64Array;
  count: number;
  /** Shared buffers (readers' and arenas) the worker holds already, by id. */
  buffersSent: Set<number>;
  /** The buffers the worker writes each slot's lines into, by `OutputStream`. */
  streams: Map<number, { bytes: Buffer; keys: Float64Array }>[];
}

/**
 * The bytes of one round's records, in memory every worker shares. Records that lie one after
 * another in a reader's buffer (all of them, for one capture file read in order) are copied as one
 * span when the reader is about to refill or the round goes out: one copy per buffer, not per packet.
 */
class RoundArena {
  readonly id = nextSharedBufferId++;
  readonly shared: SharedArrayBuffer;
  private readonly bytes: Buffer;
  private used = 0;
  private spanSource: Buffer | null = null;
  private spanStart = 0;
  private spanEnd = 0;

  constructor(size: number) {
    this.shared = new SharedArrayBuffer(size);
    this.bytes = Buffer.from(this.shared);
  }

  get size(): number {
    return this.bytes.length;
  }

  /**
   * Where `source[start, end)` will be in the arena, or -1 when it does not fit (send the round).
   * The bytes must stay in place until `flush` (the reader refills only after it).
   */
  place(source: Buffer, start: number, end: number): number {
    if (source === this.spanSource && start >= this.spanEnd && start - this.spanEnd <= MAX_SPAN_GAP) {
      const at = this.used + (start - this.spanStart);
      if (at + (end - start) <= this.bytes.length) {
        this.spanEnd = end;
        return at;
      }
    }
    this.flush();
    if (this.used + (end - start) > this.bytes.length) return -1;
    this.spanSource = source;
    this.spanStart = start;
    this.spanEnd = end;
    return this.used;
  }

  flush(): void {
    if (this.spanSource === null) return;
    this.used += this.spanSource.copy(this.bytes, this.used, this.spanStart, this.spanEnd);
    this.spanSource = null;
  }

  reset(): void {
    this.used = 0;
    this.spanSource = null;
  }
}

/** Ids of the shared buffers records point into (the readers' and the arenas), as the workers know them. */
let nextSharedBufferId = 0;

/** A reader buffer of the pool: whether its reader still holds it, and how many rounds point into it. */
interface PoolEntry {
  id: number;
  buffer: Buffer;
  readerHolds: boolean;
  rounds: number;
  /** The last round that counted it (a round counts a buffer once). */
  lastRound: number;
}

/**
 * The readers read straight into memory the workers share (lib/capture/bytes.ts ByteBufferPool): a
 * packet goes to its worker as a buffer id and an offset, with no copy. A buffer is reused once its
 * reader has moved on and every round pointing into it has been merged.
 */
class SharedBufferPool implements ByteBufferPool {
  private readonly entries = new Map<Buffer, PoolEntry>();
  private readonly free: PoolEntry[] = [];

  take(size: number): Buffer {
    const at = this.free.findIndex((entry) => entry.buffer.length >= size);
    const entry =
      at >= 0
        ? this.free.splice(at, 1)[0]
        : {
            id: nextSharedBufferId++,
            buffer: Buffer.from(new SharedArrayBuffer(size)),
            readerHolds: true,
            rounds: 0,
            lastRound: -1,
          };
    entry.readerHolds = true;
    this.entries.set(entry.buffer, entry);
    return entry.buffer;
  }

  release(buffer: Buffer): void {
    const entry = this.entries.get(buffer);
    if (entry === undefined || !entry.readerHolds) return;
    entry.readerHolds = false;
    this.settle(entry);
  }

  entryOf(buffer: Buffer): PoolEntry | undefined {
    return this.entries.get(buffer);
  }

  /** Round `round` points into `entry`; true the first time it does. */
  use(entry: PoolEntry, round: number): boolean {
    if (entry.lastRound === round) return false;
    entry.lastRound = round;
    entry.rounds++;
    return true;
  }

  /** A round that pointed into these buffers has been merged. */
  done(entries: readonly PoolEntry[]): void {
    for (const entry of entries) {
      entry.rounds--;
      this.settle(entry);
    }
  }

  private settle(entry: PoolEntry): void {
    if (!entry.readerHolds && entry.rounds === 0) this.free.push(entry);
  }
}

interface PendingRound {
  round: number;
  arena: RoundArena;
  /** The readers' buffers its records point into. */
  buffers: PoolEntry[];
  results: (RoundResult | null)[];
  waiting: number;
  done: Promise<void>;
  resolve: () => void;
}

export async function replayCapturesInJobs(
  files: readonly string[],
  options: JobsReplayOptions,
): Promise<JobsReplayResult> {
  const jobs = options.jobs;
  if (!Number.isInteger(jobs) || jobs < 1)
    throw new Error(`jobs: ${jobs} is not a whole number of at least 1`);
  if (options.nat?.vantage === "arrival")
    throw new Error("--jobs shards connections by address pair: not with the arrival vantage");
  const roundRecords = options.roundRecords ?? DEFAULT_ROUND_RECORDS;
  const roundsInFlight = options.roundsInFlight ?? DEFAULT_ROUNDS_IN_FLIGHT;
  const pool = new SharedBufferPool();
  const { inputs, source, order } = await openInputs(files, { pool, ...options });
  if (options.onInputs) options.onInputs(inputs.map((input) => input.name));
  const decoder = new PacketDecoder(options.decoder);
  const accounting = new PacketAccounting(inputs.length);
  const workerData: JobsWorkerData = {
    step: {
      settings: options.settings,
      helpers: options.helpers,
      helperPorts: options.helperPorts,
      ftpLoose: options.ftpLoose,
      nat: options.nat,
      decoder: options.decoder,
    },
    format: options.format,
    flows:
      options.flows === undefined
        ? null
        : {
            csv: options.flows.writeCsv !== undefined,
            ndjson: options.flows.writeNdjson !== undefined,
            maxHistory: options.flows.maxHistory,
            communityIdSeed: options.flows.communityIdSeed,
          },
  };

  let failure: Error | null = null;
  const failed: (() => void)[] = [];
  const fail = (error: Error): void => {
    if (failure === null) failure = error;
    for (const wake of failed.splice(0)) wake();
  };
  const workers = Array.from({ length: jobs }, () => {
    const worker = startWorker(new URL("./jobs-worker.js", import.meta.url), workerData);
    worker.on("error", (error) => fail(error));
    worker.on("exit", (code) => {
      if (code !== 0) fail(new Error(`a --jobs worker stopped (exit code ${code})`));
    });
    return worker;
  });
  const slotCount = roundsInFlight + 1;
  const outboxes: Outbox[] = workers.map(() => {
    const metaSlots = Array.from(
      { length: slotCount },
      () => new Float64Array(new SharedArrayBuffer(roundRecords * RECORD_META_FIELDS * 8)),
    );
    return {
      metaSlots,
      metaSent: metaSlots.map(() => false),
      meta: metaSlots[0],
      count: 0,
      buffersSent: new Set<number>(),
      streams: Array.from({ length: OUTPUT_STREAM_COUNT }, () => new Map()),
    };
  });
  const arenas: RoundArena[] = [];
  let arena = new RoundArena(ARENA_BYTES);
  let arenaUsed = false;
  let roundBuffers: PoolEntry[] = [];

  const pending = new Map<number, PendingRound>();
  let finishResults: (FinishResult | null)[] = [];
  let finishWaiting = 0;
  let finishResolve: (() => void) | null = null;
  workers.forEach((worker, index) => {
    worker.on("message", (message: FromWorker) => {
      if (message.type === "error") {
        fail(errorFromWorker(message, `--jobs worker ${index}: `));
        return;
      }
      const box = outboxes[index];
      if (message.type === "finish") {
        noteAllBuffers(box, FINISH_SLOT, message.streams);
        finishResults[index] = message;
        if (--finishWaiting === 0) finishResolve?.();
        return;
      }
      noteAllBuffers(box, message.slot, message.streams);
      const round = pending.get(message.round)!;
      round.results[index] = message;
      if (--round.waiting === 0) round.resolve();
    });
  });
  const untilFailure = <T>(promise: Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (failure !== null) {
        reject(failure);
        return;
      }
      const wake = (): void => reject(failure!);
      failed.push(wake);
      promise.then(
        (value) => {
          const at = failed.indexOf(wake);
          if (at >= 0) failed.splice(at, 1);
          resolve(value);
        },
        (error: unknown) => reject(error instanceof Error ? error : new Error(String(error))),
      );
    });
  /** Waits while the output asks to (`backpressure`), or until a worker fails. */
  const waitForOutput = async (): Promise<void> => {
    const wait = backpressure === null ? null : backpressure();
    if (wait !== null) await untilFailure(wait);
  };

  const merger = new RoundMerger(jobs, options);
  let roundNumber = 0;
  let roundCount = 0;
  let records = 0;
  let tracked = 0;
  let epochSec = -1;
  let clockSec = -1;
  let clockNsec = 0;
  const span = new ReplaySpan(options.until ?? null);
  let lastData: Buffer | null = null;
  let lastEntry: PoolEntry | undefined;
  const backpressure = options.backpressure ?? null;

  const sendRound = async (): Promise<void> => {
    const round = roundNumber++;
    let resolve!: () => void;
    const done = new Promise<void>((settle) => (resolve = settle));
    arena.flush();
    const buffers = roundBuffers;
    pending.set(round, {
      round,
      arena,
      buffers,
      results: workers.map(() => null),
      waiting: jobs,
      done,
      resolve,
    });
    const slot = round % slotCount;
    workers.forEach((worker, index) => {
      const box = outboxes[index];
      const shared: { id: number; buffer: SharedArrayBuffer }[] = [];
      for (const entry of buffers)
        if (!box.buffersSent.has(entry.id)) {
          box.buffersSent.add(entry.id);
          shared.push({ id: entry.id, buffer: entry.buffer.buffer as SharedArrayBuffer });
        }
      if (arenaUsed && !box.buffersSent.has(arena.id)) {
        box.buffersSent.add(arena.id);
        shared.push({ id: arena.id, buffer: arena.shared });
      }
      const message: ToWorker = {
        type: "round",
        round,
        slot,
        count: box.count,
        meta: box.metaSent[slot] ? null : (box.meta.buffer as SharedArrayBuffer),
        buffers: shared,
        endSec: clockSec,
        endNsec: clockNsec,
        epochSec,
        ids: merger.takeIds(index),
      };
      box.metaSent[slot] = true;
      worker.postMessage(message);
      box.meta = box.metaSlots[(round + 1) % slotCount];
      box.count = 0;
    });
    arena = arenas.pop() ?? new RoundArena(ARENA_BYTES);
    arenaUsed = false;
    roundBuffers = [];
    roundCount = 0;
    if (pending.size >= roundsInFlight) await mergeOldest();
  };
  const mergeOldest = async (): Promise<void> => {
    const oldest = pending.get(merger.nextRound)!;
    await untilFailure(oldest.done);
    pending.delete(oldest.round);
    const results = oldest.results as RoundResult[];
    merger.mergeRound(results, batchesOf(outboxes, results, results[0].slot));
    pool.done(oldest.buffers);
    if (oldest.arena.size === ARENA_BYTES) {
      oldest.arena.reset();
      arenas.push(oldest.arena);
    }
    await waitForOutput();
  };

  try {
    let more = true;
    reading: for (;;) {
      while (source.next()) {
        const record = source.record;
        if (!span.admit(record)) break reading;
        const index = records++;
        const packetClass = decoder.decode(record);
        const packet = decoder.packet;
        accounting.count(record.inputIndex, packetClass, packet.reason);
        if (packetClass !== PacketClass.Decoded) continue;
        tracked++;
        if (epochSec < 0) epochSec = record.tsSec;
        const box = outboxes[shardOf(packet, jobs)];
        // The bytes as the worker's decoder must see them: the frame, or a reassembled datagram bare.
        const reassembled = packet.reassembled;
        const from = reassembled ? packet.buf : record.data;
        const start = reassembled ? packet.l3Offset : record.offset;
        const length = reassembled ? packet.capturedEnd - packet.l3Offset : record.caplen;
        // Records come from one reader buffer at a time: look the buffer up when it changes.
        if (record.data !== lastData) {
          lastData = record.data;
          lastEntry = pool.entryOf(record.data);
        }
        const entry = reassembled ? undefined : lastEntry;
        let bufferId: number;
        let placed: number;
        if (entry !== undefined) {
          // Read straight into shared memory: the worker reads it where it is.
          if (pool.use(entry, roundNumber)) roundBuffers.push(entry);
          bufferId = entry.id;
          placed = start;
        } else {
          // Bytes the reader does not keep in place (a reorder window's copies, a reassembled datagram).
          placed = arena.place(from, start, start + length);
          if (placed < 0) {
            await sendRound();
            if (length > arena.size) arena = new RoundArena(length);
            placed = arena.place(from, start, start + length);
          }
          // The defragmenter reuses its output buffer.
          if (reassembled) arena.flush();
          arenaUsed = true;
          bufferId = arena.id;
        }
        const at = box.count++ * RECORD_META_FIELDS;
        const meta = box.meta;
        meta[at + RecordMeta.Index] = index;
        meta[at + RecordMeta.ClockSec] = clockSec;
        meta[at + RecordMeta.ClockNsec] = clockNsec;
        meta[at + RecordMeta.TsSec] = record.tsSec;
        meta[at + RecordMeta.TsNsec] = record.tsNsec;
        meta[at + RecordMeta.LinkType] = reassembled ? LINKTYPE_RAW : record.linkType;
        meta[at + RecordMeta.Caplen] = length;
        meta[at + RecordMeta.Origlen] = reassembled ? packet.ipLength : record.origlen;
        meta[at + RecordMeta.InputIndex] = record.inputIndex;
        meta[at + RecordMeta.InterfaceId] = record.interfaceId;
        meta[at + RecordMeta.RecordNumber] = record.recordNumber;
        meta[at + RecordMeta.DataOffset] = placed;
        meta[at + RecordMeta.BufferId] = bufferId;
        meta[at + RecordMeta.FileOffset] = record.fileOffset;
        if (record.tsSec > clockSec || (record.tsSec === clockSec && record.tsNsec > clockNsec)) {
          clockSec = record.tsSec;
          clockNsec = record.tsNsec;
        }
        if (++roundCount === roundRecords) await sendRound();
      }
      if (!more) break;
      arena.flush();
      more = await source.fill();
    }
  } catch (error) {
    await Promise.all(workers.map((worker) => worker.terminate()));
    throw error;
  } finally {
    await source.close();
    await Promise.all(inputs.map((input) => input.close()));
  }
  decoder.finish();

  let summary: EngineSummary;
  let expectEvents: { NEW: number; DESTROY: number };
  try {
    if (roundCount > 0) await sendRound();
    while (pending.size > 0) await mergeOldest();
    // The end of the input: the clock to `until`, then (with drain) the expiries in time windows that
    // every worker runs alike, each window merged and written before the next (one drain at once
    // would hold all the table's events in memory).
    const finishStep = async (
      advance: { tsSec: number; tsNsec: number } | null,
      drainUntil: { tsSec: number; tsNsec: number } | "all" | "none",
      liveFlowsBelow: number | null = null,
    ): Promise<FinishResult[]> => {
      finishResults = workers.map(() => null);
      finishWaiting = jobs;
      const finished = new Promise<void>((resolve) => (finishResolve = resolve));
      workers.forEach((worker, index) => {
        const message: ToWorker = {
          type: "finish",
          advanceSec: advance?.tsSec ?? null,
          advanceNsec: advance?.tsNsec ?? 0,
          drain: drainUntil !== "none",
          drainUntilSec: drainUntil === "all" || drainUntil === "none" ? null : drainUntil.tsSec,
          drainUntilNsec: drainUntil === "all" || drainUntil === "none" ? 0 : drainUntil.tsNsec,
          epochSec,
          ids: merger.takeIds(index),
          liveFlowsBelow,
        };
        worker.postMessage(message);
      });
      await untilFailure(finished);
      const stepResults = finishResults as FinishResult[];
      merger.mergeFinal(batchesOf(outboxes, stepResults, FINISH_SLOT));
      await waitForOutput();
      return stepResults;
    };
    let results = await finishStep(span.stopsAt, "none");
    if (options.drain === true) {
      for (;;) {
        // The window ends where the first worker reaches its bound of entries (at most that many
        // expire in every worker); with fewer left in every worker, the rest goes at once.
        let live = false;
        let end = Infinity;
        for (const result of results) {
          if (result.nextExpirySec !== null) live = true;
          if (result.windowEndSec !== null)
            end = Math.min(end, (result.windowEndSec - epochSec) * 1e9 + result.windowEndNsec);
        }
        if (!live) break;
        if (end === Infinity) {
          results = await finishStep(null, "all");
          break;
        }
        const endSec = epochSec + Math.floor(end / 1e9);
        results = await finishStep(null, { tsSec: endSec, tsNsec: end - (endSec - epochSec) * 1e9 });
      }
    }
    if (options.flows !== undefined) {
      // The flows still live, in id order as one tracker writes them: a range of ids at a time, so
      // that a window's rows (at most LIVE_FLOW_WINDOW_IDS) are all that is held at once.
      results = await finishStep(null, "none", 0);
      for (;;) {
        let next = Infinity;
        for (const result of results)
          if (result.nextLiveFlowId !== null) next = Math.min(next, result.nextLiveFlowId);
        if (next === Infinity) break;
        results = await finishStep(null, "none", next + LIVE_FLOW_WINDOW_IDS);
      }
    }
    summary = sumEngines(results);
    expectEvents = sumExpectEvents(results);
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
  if (merger.mismatches > 0)
    throw new Error(
      `--jobs: ${merger.mismatches} packet(s) decoded differently in a worker (internal error)`,
    );
  return {
    engine: summary,
    decoder,
    accounting,
    inputNames: inputs.map((input) => input.name),
    warnings: inputs.flatMap((input) => input.warnings),
    records,
    tracked,
    events: summary.stats.events.NEW + summary.stats.events.UPDATE + summary.stats.events.DESTROY,
    expectEvents,
    ...span.result(),
    observedNat: null,
    shard: null,
    order: order(),
    jobs,
  };
}

/**
 * Puts the workers' events of each round in one engine's order and numbers connections as it would.
 * Keeps the final ids of the last few rounds' connections: a worker learns them a few rounds late and
 * prints the provisional ones until then.
 */
class RoundMerger {
  nextRound = 0;
  mismatches = 0;
  private nextId = 1;
  private readonly finalIds = new Map<number, number>();
  /** Provisional ids by the round that gave them, to forget them once no worker can print them. */
  private readonly idsByRound: number[][] = [];
  private readonly idsToSend: number[][];
  /** By `OutputStream`: where its lines go, and what puts final ids into them (null: none to put). */
  private readonly writers: (((bytes: Uint8Array) => void) | undefined)[];
  private readonly patchers: (LinePatcher | null)[];

  constructor(
    private readonly jobs: number,
    private readonly options: JobsReplayOptions,
  ) {
    this.idsToSend = Array.from({ length: jobs }, () => []);

    const format = options.format.format;
    this.writers = [];
    this.patchers = [];
    this.writers[OutputStream.Events] = options.writeEvents;
    this.patchers[OutputStream.Events] =
      format === "text" ? null : new LinePatcher(format, EVENT_CSV_COLUMNS);
    this.writers[OutputStream.Expectations] = options.writeExpectations;
    this.patchers[OutputStream.Expectations] =
      format === "text" ? null : new LinePatcher(format, EXPECT_EVENT_CSV_COLUMNS);
    this.writers[OutputStream.FlowsCsv] = options.flows?.writeCsv;
    this.patchers[OutputStream.FlowsCsv] = new LinePatcher("csv", FLOW_CSV_COLUMNS);
    this.writers[OutputStream.FlowsNdjson] = options.flows?.writeNdjson;
    this.patchers[OutputStream.FlowsNdjson] = new LinePatcher("ndjson", []);
  }

  takeIds(worker: number): Float64Array | null {
    const ids = this.idsToSend[worker];
    if (ids.length === 0) return null;
    this.idsToSend[worker] = [];
    return Float64Array.from(ids);
  }

  /** `streams`: each `OutputStream`'s batches, by worker. */
  mergeRound(results: RoundResult[], streams: EventBatch[][]): void {
    this.nextRound++;
    const given: number[] = [];
    // Confirmations in record order across workers: the single run's id order.
    const cursors = results.map(() => 0);
    for (;;) {
      let best = -1;
      let bestRecord = Infinity;
      for (let w = 0; w < results.length; w++) {
        const at = cursors[w];
        if (at < results[w].confirmations.length && results[w].confirmations[at] < bestRecord) {
          best = w;
          bestRecord = results[w].confirmations[at];
        }
      }
      if (best < 0) break;
      cursors[best]++;
      const provisional = PROVISIONAL_ID_BASE + bestRecord;
      const id = this.nextId++;
      this.finalIds.set(provisional, id);
      given.push(provisional);
      this.idsToSend[best].push(provisional, id);
    }
    this.idsByRound.push(given);
    // A worker applies new ids with the next round it is sent, up to `roundsInFlight` rounds after
    // these were produced; keep a margin before forgetting them.
    const keep = (this.options.roundsInFlight ?? DEFAULT_ROUNDS_IN_FLIGHT) + 2;
    while (this.idsByRound.length > keep)
      for (const old of this.idsByRound.shift()!) this.finalIds.delete(old);
    for (const result of results) this.mismatches += result.mismatches;
    this.mergeFinal(streams);
  }

  /** Merges a finish step's lines (or a round's, once its ids are given). */
  mergeFinal(streams: EventBatch[][]): void {
    streams.forEach((batches, stream) =>
      this.mergeStream(batches, this.writers[stream], this.patchers[stream]),
    );
  }

  private readonly toFinalId = (id: number): number => this.finalId(id);

  private finalId(id: number): number {
    return id >= PROVISIONAL_ID_BASE ? (this.finalIds.get(id) ?? id) : id;
  }

  private mergeStream(
    batches: EventBatch[],
    write: ((bytes: Uint8Array) => void) | undefined,
    patch: LinePatcher | null,
  ): void {
    let total = 0;
    for (const batch of batches) {
      total += batch.used;
      // Timer tie-breaks are connection ids: provisional ones become final before comparing.
      const keys = batch.keys;
      for (let at = 0; at < batch.count * EVENT_KEY_FIELDS; at += EVENT_KEY_FIELDS) {
        if (keys[at + EventKey.Group] !== EventGroup.Timer) continue;
        const tiebreak = keys[at + EventKey.Tiebreak];
        keys[at + EventKey.Tiebreak] =
          tiebreak >= EXPECTATION_TIMER_TIEBREAK
            ? EXPECTATION_TIMER_TIEBREAK + this.finalId(tiebreak - EXPECTATION_TIMER_TIEBREAK)
            : this.finalId(tiebreak);
      }
    }
    if (total === 0 || write === undefined) return;
    const out = Buffer.allocUnsafe(total);
    let used = 0;
    const positions = batches.map(() => 0);
    const starts = batches.map(() => 0);
    // Consecutive events of one worker are consecutive bytes: copied as one run.
    let runBatch = -1;
    let runStart = 0;
    let runEnd = 0;
    for (;;) {
      let best = -1;
      for (let w = 0; w < batches.length; w++) {
        if (positions[w] >= batches[w].count) continue;
        if (best < 0 || keyBefore(batches[w].keys, positions[w], batches[best].keys, positions[best]))
          best = w;
      }
      if (best < 0) break;
      const batch = batches[best];
      const at = positions[best]++ * EVENT_KEY_FIELDS;
      const end = batch.keys[at + EventKey.End];
      const start = starts[best];
      starts[best] = end;
      if (patch !== null && batch.keys[at + EventKey.Provisional] === 1) {
        if (runBatch >= 0) used += batches[runBatch].bytes.copy(out, used, runStart, runEnd);
        runBatch = -1;
        used += patch.patch(batch.bytes.subarray(start, end), out, used, this.toFinalId);
        continue;
      }
      if (best === runBatch && start === runEnd) {
        runEnd = end;
        continue;
      }
      if (runBatch >= 0) used += batches[runBatch].bytes.copy(out, used, runStart, runEnd);
      runBatch = best;
      runStart = start;
      runEnd = end;
    }
    if (runBatch >= 0) used += batches[runBatch].bytes.copy(out, used, runStart, runEnd);
    write(out.subarray(0, used));
  }
}

/** Takes note of the buffers a worker made or grew for a slot, in every stream. */
function noteAllBuffers(box: Outbox, slot: number, streams: EventBatchInfo[]): void {
  streams.forEach((info, stream) => {
    // A worker names a slot's buffers (both) when it made or grew them, and only then.
    if (info.bytes === null || info.keys === null) return;
    box.streams[stream].set(slot, { bytes: Buffer.from(info.bytes), keys: new Float64Array(info.keys) });
  });
}

const NO_BATCH_BYTES = Buffer.alloc(0);
const NO_BATCH_KEYS = new Float64Array(0);

/** Each stream's batches of one round (or finish step), by worker. */
function batchesOf(
  outboxes: readonly Outbox[],
  results: readonly (RoundResult | FinishResult)[],
  slot: number,
): EventBatch[][] {
  return Array.from({ length: OUTPUT_STREAM_COUNT }, (_, stream) =>
    outboxes.map((box, worker) => {
      const result = results[worker];
      const info = result.streams[stream];
      const buffers = box.streams[stream].get(slot);
      return buffers === undefined || info.count === 0
        ? { bytes: NO_BATCH_BYTES, used: 0, keys: NO_BATCH_KEYS, count: 0 }
        : { bytes: buffers.bytes, used: info.used, keys: buffers.keys, count: info.count };
    }),
  );
}

function keyBefore(a: Float64Array, i: number, b: Float64Array, j: number): boolean {
  const x = i * EVENT_KEY_FIELDS;
  const y = j * EVENT_KEY_FIELDS;
  for (let k = 0; k < EventKey.End; k++) {
    const left = a[x + k];
    const right = b[y + k];
    if (left !== right) return left < right;
  }
  return false;
}

/**
 * Final ids into csv and ndjson lines that carry provisional ones (only ids at or above
 * PROVISIONAL_ID_BASE are touched, so an ICMP id or a counter never is).
 */
export class LinePatcher {
  private readonly idColumns: number[] = [];
  private readonly cells = new Int32Array(4);

  /** `header`: the csv columns of the stream (ids are found by name). */
  constructor(
    private readonly format: "csv" | "ndjson",
    header: readonly string[],
  ) {
    if (format === "csv")
      header.forEach((column, index) => {
        if (column === "connection_id" || column === "master_connection_id") this.idColumns.push(index);
      });
  }

  /** Writes `line` with final ids into `out` at `offset`; returns the bytes written. */
  patch(line: Uint8Array, out: Buffer, offset: number, finalId: (id: number) => number): number {
    if (this.format === "csv") return this.patchCsv(line, out, offset, finalId);
    const text = Buffer.from(line.buffer, line.byteOffset, line.length)
      .toString("utf8")
      .replace(/"(id|masterId)":(\d{13,})/g, (_all, key: string, digits: string) => {
        const id = Number(digits);
        return `"${key}":${id >= PROVISIONAL_ID_BASE ? finalId(id) : digits}`;
      });
    return out.write(text, offset, "utf8");
  }

  /** A csv line's id cells rewritten, the rest copied as bytes (cells found as the merges find them). */
  private patchCsv(line: Uint8Array, out: Buffer, offset: number, finalId: (id: number) => number): number {
    const cells = this.cells;
    const found = findCsvCells(line, 0, lineEndOf(line), this.idColumns, cells);
    let at = offset;
    let copied = 0;
    for (let i = 0; i < found; i++) {
      const start = cells[2 * i];
      const end = cells[2 * i + 1];
      const id = digitsValue(line, start, end);
      if (id < PROVISIONAL_ID_BASE) continue;
      out.set(line.subarray(copied, start), at);
      at += start - copied;
      at = writeNumber(out, at, finalId(id));
      copied = end;
    }
    out.set(line.subarray(copied), at);
    return at + line.length - copied - offset;
  }
}

/** Where a line's text ends (before its newline). */
function lineEndOf(line: Uint8Array): number {
  return line.length > 0 && line[line.length - 1] === 0x0a ? line.length - 1 : line.length;
}

/** The engine fields a summary reads, for callers that take either kind of result. */
export type EngineLike = Pick<ConntrackEngine, "stats" | "liveConnections" | "liveExpectations">;
