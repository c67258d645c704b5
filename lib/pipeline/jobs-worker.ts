/**
 * One worker of a `--jobs N` replay (lib/pipeline/jobs.ts): a decoder and an engine for one shard of
 * the connections. It decodes the records the main thread sends it, runs each through the engine at the
 * clock one engine over all records would have, formats the events (and, for `report`, the flow rows
 * of the connections that end), and keys every line so that the main thread can put all workers' lines
 * in that one engine's order.
 */
import { parentPort, workerData } from "node:worker_threads";
import { ConntrackEngine, type ConntrackEvent } from "../conntrack/engine.js";
import type { Connection } from "../conntrack/connection.js";
import type { ExpectEvent } from "../conntrack/expectations.js";
import { PacketDecoder } from "../decode/decoder.js";
import { PacketClass } from "../decode/packet.js";
import { emptyCaptureRecord } from "../capture/source.js";
import { workerErrorMessage } from "./one-shot-worker.js";
import { ConntrackEventTextEncoder, MAX_EVENT_LINE_BYTES } from "../report/conntrack-text.js";
import { EventCsvEncoder } from "../report/event-csv.js";
import { EventNdjsonEncoder } from "../report/event-json.js";
import { createEventFormatter, createExpectEventFormatter } from "../report/event-formats.js";
import { FlowTracker, type FlowEncoder, type FlowEnd, type FlowRowSink } from "../report/flows.js";
import {
  EVENT_KEY_FIELDS,
  EventKey,
  DRAIN_WINDOW_ENTRIES,
  EXPECTATION_TIMER_TIEBREAK,
  EventGroup,
  FINISH_SLOT,
  OUTPUT_STREAM_COUNT,
  OutputStream,
  PROVISIONAL_ID_BASE,
  RECORD_META_FIELDS,
  RecordMeta,
  type EventBatchInfo,
  type FinishMessage,
  type FromWorker,
  type JobsWorkerData,
  type RoundMessage,
  type ToWorker,
} from "./jobs-protocol.js";

/** One slot's buffers of one stream. */
interface SlotBuffers {
  bytes: Buffer;
  keys: Float64Array<ArrayBufferLike>;
}

const INITIAL_EVENT_BYTES = 1 << 20;
const INITIAL_EVENT_KEYS = 8192;
const NO_BYTES = Buffer.alloc(0);
const NO_KEYS = new Float64Array(0);

/**
 * Formatted events of one stream with their merge keys, written into the shared buffers of the round's
 * slot (grown when a round needs more, and then named to the main thread).
 */
class EventCollector {
  private readonly slots = new Map<number, SlotBuffers>();
  private bytes: Buffer = NO_BYTES;
  private keys: Float64Array<ArrayBufferLike> = NO_KEYS;
  private used = 0;
  private count = 0;
  private changed = false;
  private slot = 0;

  begin(slot: number): void {
    // A stream's buffers are made when it first writes into the slot (most runs write two streams).
    const buffers = this.slots.get(slot);
    this.changed = false;
    this.slot = slot;
    this.bytes = buffers?.bytes ?? NO_BYTES;
    this.keys = buffers?.keys ?? NO_KEYS;
    this.used = 0;
    this.count = 0;
  }

  /** Room for `bytes` more bytes and one more key; the buffer to write into. */
  reserve(bytes: number): Buffer {
    let grew = false;
    if (this.used + bytes > this.bytes.length) {
      let size = Math.max(INITIAL_EVENT_BYTES, this.bytes.length * 2);
      while (this.used + bytes > size) size *= 2;
      const grown = Buffer.from(new SharedArrayBuffer(size));
      this.bytes.copy(grown, 0, 0, this.used);
      this.bytes = grown;
      grew = true;
    }
    if ((this.count + 1) * EVENT_KEY_FIELDS > this.keys.length) {
      const size = Math.max(INITIAL_EVENT_KEYS * EVENT_KEY_FIELDS, this.keys.length * 2);
      const grown = new Float64Array(new SharedArrayBuffer(size * 8));
      grown.set(this.keys);
      this.keys = grown;
      grew = true;
    }
    if (grew) {
      this.slots.set(this.slot, { bytes: this.bytes, keys: this.keys });
      this.changed = true;
    }
    return this.bytes;
  }

  get offset(): number {
    return this.used;
  }

  /**
   * Records an event whose bytes end at `end` (written after `reserve`); `provisional`: its line names
   * a provisional id.
   */
  push(
    tsSec: number,
    tsNsec: number,
    group: number,
    tiebreak: number,
    end: number,
    provisional: boolean,
  ): void {
    const at = this.count++ * EVENT_KEY_FIELDS;
    const keys = this.keys;
    keys[at + EventKey.TsSec] = tsSec;
    keys[at + EventKey.TsNsec] = tsNsec;
    keys[at + EventKey.Group] = group;
    keys[at + EventKey.Tiebreak] = tiebreak;
    keys[at + EventKey.End] = end;
    keys[at + EventKey.Provisional] = provisional ? 1 : 0;
    this.used = end;
  }

  pushText(
    text: string,
    tsSec: number,
    tsNsec: number,
    group: number,
    tiebreak: number,
    provisional: boolean,
  ): void {
    const bytes = this.reserve(text.length * 3);
    const written = bytes.write(text, this.used, "utf8");
    this.push(tsSec, tsNsec, group, tiebreak, this.used + written, provisional);
  }

  /** Where the round's events are, for the main thread. */
  finish(): EventBatchInfo {
    return {
      used: this.used,
      count: this.count,
      bytes: this.changed ? (this.bytes.buffer as unknown as SharedArrayBuffer) : null,
      keys: this.changed ? (this.keys.buffer as SharedArrayBuffer) : null,
    };
  }
}

/** Whether a line about `connection` names an id the main thread has still to make final. */
function namesProvisionalId(connection: Connection): boolean {
  return connection.id >= PROVISIONAL_ID_BASE || connection.masterId >= PROVISIONAL_ID_BASE;
}

function run(data: JobsWorkerData): void {
  const port = parentPort!;
  const { format } = data;
  const collectors = Array.from({ length: OUTPUT_STREAM_COUNT }, () => new EventCollector());
  const events = collectors[OutputStream.Events];
  const expectations = collectors[OutputStream.Expectations];
  const textEncoder =
    format.events && format.format === "text"
      ? new ConntrackEventTextEncoder({ timestamp: format.timestamp })
      : null;
  const rowEncoder = !format.events
    ? null
    : format.format === "csv"
      ? new EventCsvEncoder()
      : format.format === "ndjson"
        ? new EventNdjsonEncoder()
        : null;
  const eventFormatter = format.events
    ? createEventFormatter(format.format, { timestamp: format.timestamp })
    : null;
  const expectFormatter = format.expectations
    ? createExpectEventFormatter(format.format, { timestamp: format.timestamp })
    : null;

  let group: number = EventGroup.Timer;
  let recordIndex = 0;
  /** A flow row's key is its DESTROY's (or, live at the end, the end's time and its id). */
  const flowSink = (collector: EventCollector): FlowRowSink => ({
    writeEncoded(encoder: FlowEncoder, end: FlowEnd, maxBytes: number): void {
      const bytes = collector.reserve(maxBytes);
      const stop = encoder.encode(end, bytes, collector.offset);
      const connection = end.connection!;
      const tiebreak = group === EventGroup.Packet ? recordIndex : connection.id;
      collector.push(end.endSec, end.endNsec, group, tiebreak, stop, namesProvisionalId(connection));
    },
  });
  const flows =
    data.flows === null
      ? null
      : new FlowTracker({
          maxHistory: data.flows.maxHistory,
          communityIdSeed: data.flows.communityIdSeed,
          csv: data.flows.csv ? flowSink(collectors[OutputStream.FlowsCsv]) : undefined,
          ndjson: data.flows.ndjson ? flowSink(collectors[OutputStream.FlowsNdjson]) : undefined,
        });
  const onEvent = (event: ConntrackEvent): void => {
    if (flows !== null) flows.onEvent(event);
    if (eventFormatter === null) return;
    const tiebreak = group === EventGroup.Timer ? event.connection.id : recordIndex;
    if (textEncoder !== null) {
      const bytes = events.reserve(MAX_EVENT_LINE_BYTES);
      const end = textEncoder.encode(event, bytes, events.offset);
      events.push(event.tsSec, event.tsNsec, group, tiebreak, end, namesProvisionalId(event.connection));
    } else if (rowEncoder !== null) {
      const bytes = events.reserve(rowEncoder.maxBytes(event));
      const end = rowEncoder.encode(event, bytes, events.offset);
      events.push(event.tsSec, event.tsNsec, group, tiebreak, end, namesProvisionalId(event.connection));
    } else {
      events.pushText(
        eventFormatter!.format(event),
        event.tsSec,
        event.tsNsec,
        group,
        tiebreak,
        namesProvisionalId(event.connection),
      );
    }
  };
  const expectEvents = { NEW: 0, DESTROY: 0 };
  const onExpectEvent = (event: ExpectEvent): void => {
    expectEvents[event.type]++;
    if (expectFormatter === null) return;
    const tiebreak = group === EventGroup.Timer ? EXPECTATION_TIMER_TIEBREAK + event.masterId : recordIndex;
    expectations.pushText(
      expectFormatter.format(event),
      event.tsSec,
      event.tsNsec,
      group,
      tiebreak,
      event.masterId >= PROVISIONAL_ID_BASE,
    );
  };
  const engine = new ConntrackEngine({
    ...data.step,
    onEvent: eventFormatter !== null || flows !== null ? onEvent : undefined,
    onExpectEvent,
  });
  const decoder = new PacketDecoder(data.step.decoder);
  const record = emptyCaptureRecord();
  /** Connections confirmed with a provisional id whose final id has not come yet. */
  const provisional = new Map<number, Connection>();
  let confirmations = new Float64Array(1024);

  const startClock = (epochSec: number): void => {
    // Every worker counts engine time from the same second as the single run (jiffies phase).
    if (epochSec >= 0 && engine.epochSec < 0) engine.advanceTo(epochSec, 0);
  };
  const applyIds = (ids: Float64Array | null): void => {
    if (ids === null) return;
    for (let i = 0; i < ids.length; i += 2) {
      const connection = provisional.get(ids[i]);
      if (connection === undefined) continue;
      provisional.delete(ids[i]);
      connection.id = ids[i + 1];
    }
  };

  /** The clock the engine has been run to (a packet later than it may still be processed earlier). */
  let ranSec = -1;
  let ranNsec = 0;
  const metaSlots = new Map<number, Float64Array>();
  const buffers = new Map<number, Buffer>();
  const round = (message: RoundMessage): void => {
    applyIds(message.ids);
    startClock(message.epochSec);
    if (message.meta !== null) metaSlots.set(message.slot, new Float64Array(message.meta));
    for (const shared of message.buffers) buffers.set(shared.id, Buffer.from(shared.buffer));
    const meta = metaSlots.get(message.slot)!;
    let bufferId = -1;
    for (const collector of collectors) collector.begin(message.slot);
    let confirmationCount = 0;
    let mismatches = 0;
    for (let i = 0; i < message.count; i++) {
      const at = i * RECORD_META_FIELDS;
      recordIndex = meta[at + RecordMeta.Index];
      // Small integers as int32 (Smis): doubles in the record's fields would slow every byte access.
      record.tsSec = meta[at + RecordMeta.TsSec];
      record.tsNsec = meta[at + RecordMeta.TsNsec] | 0;
      record.linkType = meta[at + RecordMeta.LinkType] | 0;
      record.caplen = meta[at + RecordMeta.Caplen] | 0;
      record.origlen = meta[at + RecordMeta.Origlen] | 0;
      record.inputIndex = meta[at + RecordMeta.InputIndex] | 0;
      record.interfaceId = meta[at + RecordMeta.InterfaceId] | 0;
      record.recordNumber = meta[at + RecordMeta.RecordNumber];
      record.offset = meta[at + RecordMeta.DataOffset] | 0;
      if (meta[at + RecordMeta.BufferId] !== bufferId) {
        bufferId = meta[at + RecordMeta.BufferId];
        record.data = buffers.get(bufferId)!;
      }
      record.fileOffset = meta[at + RecordMeta.FileOffset];
      // Timers first, as a single engine fires them on this packet's arrival: everything due by the
      // clock before it (other shards' packets moved it), then by its own time.
      let dueSec = meta[at + RecordMeta.ClockSec];
      let dueNsec = meta[at + RecordMeta.ClockNsec];
      if (record.tsSec > dueSec || (record.tsSec === dueSec && record.tsNsec > dueNsec)) {
        dueSec = record.tsSec;
        dueNsec = record.tsNsec;
      }
      if (dueSec > ranSec || (dueSec === ranSec && dueNsec > ranNsec)) {
        group = EventGroup.Timer;
        engine.advanceTo(dueSec, dueNsec);
        ranSec = dueSec;
        ranNsec = dueNsec;
      }
      group = EventGroup.Packet;
      if (decoder.decode(record) !== PacketClass.Decoded) {
        mismatches++;
        continue;
      }
      const id = PROVISIONAL_ID_BASE + recordIndex;
      engine.nextId = id;
      engine.process(decoder.packet);
      if (engine.nextId !== id) {
        if (confirmationCount === confirmations.length) {
          const grown = new Float64Array(confirmations.length * 2);
          grown.set(confirmations);
          confirmations = grown;
        }
        confirmations[confirmationCount++] = recordIndex;
        if (engine.lastConnection !== null) provisional.set(id, engine.lastConnection);
      }
    }
    group = EventGroup.Timer;
    if (message.endSec > ranSec || (message.endSec === ranSec && message.endNsec > ranNsec)) {
      engine.advanceTo(message.endSec, message.endNsec);
      ranSec = message.endSec;
      ranNsec = message.endNsec;
    }
    const result: FromWorker = {
      type: "round",
      round: message.round,
      slot: message.slot,
      streams: collectors.map((collector) => collector.finish()),
      confirmations: confirmations.slice(0, confirmationCount),
      mismatches,
    };
    port.postMessage(result);
  };

  const finish = (message: FinishMessage): void => {
    applyIds(message.ids);
    startClock(message.epochSec);
    group = EventGroup.Timer;
    for (const collector of collectors) collector.begin(FINISH_SLOT);
    if (message.advanceSec !== null) engine.advanceTo(message.advanceSec, message.advanceNsec);
    if (message.drain) {
      if (message.drainUntilSec === null) engine.drain();
      else engine.drainUntil(message.drainUntilSec, message.drainUntilNsec);
    }
    let nextLiveFlowId: number | null = null;
    if (message.liveFlowsBelow !== null && flows !== null) {
      group = EventGroup.Live;
      flows.finish(engine, Infinity, message.liveFlowsBelow);
      group = EventGroup.Timer;
      if (flows.nextLiveId !== Infinity) nextLiveFlowId = flows.nextLiveId;
    }
    const next = engine.nextExpiry();
    const nextAt = { tsSec: 0, tsNsec: 0 };
    if (next !== Infinity) engine.toCaptureTime(next, nextAt);
    const windowEnd = engine.expiryWindowEnd(DRAIN_WINDOW_ENTRIES);
    const windowEndAt = { tsSec: 0, tsNsec: 0 };
    if (windowEnd !== Infinity) engine.toCaptureTime(windowEnd, windowEndAt);
    const result: FromWorker = {
      type: "finish",
      streams: collectors.map((collector) => collector.finish()),
      stats: engine.stats,
      liveConnections: engine.liveConnections,
      liveExpectations: engine.liveExpectations,
      expectEvents,
      nextExpirySec: next === Infinity ? null : nextAt.tsSec,
      nextExpiryNsec: nextAt.tsNsec,
      windowEndSec: windowEnd === Infinity ? null : windowEndAt.tsSec,
      windowEndNsec: windowEndAt.tsNsec,
      nextLiveFlowId,
    };
    port.postMessage(result);
  };

  port.on("message", (message: ToWorker) => {
    try {
      if (message.type === "round") round(message);
      else finish(message);
    } catch (error) {
      port.postMessage(workerErrorMessage(error) satisfies FromWorker);
    }
  });
}

run(workerData as JobsWorkerData);
