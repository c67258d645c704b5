/**
 * The pipeline the `events` and `table` commands share: captures → decoder → conntrack engine →
 * an event sink. Records are read one at a time through the readers' reused structures; the only
 * awaits per record happen when the sink's consumer is slower than the replay (backpressure).
 */
import type { Writable } from "node:stream";
import type { CaptureRecord, CaptureWarning } from "../capture/source.js";
import { PacketDecoder, type DecoderOptions } from "../decode/decoder.js";
import { PacketClass, type DecodedPacket } from "../decode/packet.js";
import {
  ConntrackEngine,
  HELPER_NAMES,
  Verdict,
  type ConntrackEvent,
  type EngineOptions,
  type HelperName,
} from "../conntrack/engine.js";
import type { ExpectEvent } from "../conntrack/expectations.js";
import { FtpHelper } from "../conntrack/helpers/ftp.js";
import { TftpHelper } from "../conntrack/helpers/tftp.js";
import type { ConntrackSettings } from "../conntrack/settings.js";
import type { Connection, Tuple } from "../conntrack/connection.js";
import { PacketAccounting } from "./accounting.js";
import { openInputs, type InputOptions, type InputOrderStats } from "./inputs.js";
import { OTHER_SHARD, shardOf, type ShardSelection } from "./shard.js";
import { ObservedNatMatcher, type ObservedNatOptions, type ObservedNatStats } from "./observed-nat.js";

/** A capture time, absolute or counted from the first packet. */
export type TimePoint =
  { kind: "absolute"; tsSec: number; tsNsec: number } | { kind: "relative"; offsetNs: number };

/** Ports each helper is attached on when nothing else is asked (the helpers' own defaults). */
export const DEFAULT_HELPER_PORTS: Readonly<Record<HelperName, readonly number[]>> = {
  ftp: new FtpHelper().defaultPorts,
  tftp: new TftpHelper().defaultPorts,
};

/**
 * The engine's `helperPorts` for "the defaults plus these": the engine replaces a helper's defaults
 * with whatever list it is given, while `--helper ftp=2121` means port 2121 as well as 21.
 */
export function helperPortsAdding(
  extra: Partial<Record<HelperName, readonly number[]>>,
): Record<HelperName, number[]> {
  const ports = {} as Record<HelperName, number[]>;
  for (const name of HELPER_NAMES)
    ports[name] = [...new Set([...DEFAULT_HELPER_PORTS[name], ...(extra[name] ?? [])])];
  return ports;
}

export interface ReplayOptions
  extends InputOptions, Pick<EngineOptions, "helpers" | "helperPorts" | "ftpLoose" | "nat"> {
  /** Timeouts and switches (settings fields or sysctl names); missing ones take kernel defaults. */
  settings?: Partial<ConntrackSettings> | Record<string, number>;
  decoder?: DecoderOptions;
  /** Receives every event; the event object is reused, read or copy it inside the call. */
  onEvent?: (event: ConntrackEvent) => void;
  /** Receives every expectation event (`conntrack -E expect`); the object is reused likewise. */
  onExpectEvent?: (event: ExpectEvent) => void;
  /**
   * Receives every record after the decoder (and, for decoded packets, the engine) saw it: its class,
   * the decoder's reused packet, the engine's verdict (`Verdict`, -1 when the record never reached
   * the engine) and, for INVALID, IGNORED and DROPPED, the engine's reason ("" otherwise). The
   * engine's events for the packet have been delivered by then. `connection` is the engine's
   * `lastConnection` (the confirmed connection the packet belonged to, else null). Everything passed
   * is reused.
   */
  onPacket?: (
    record: CaptureRecord,
    packetClass: PacketClass,
    packet: DecodedPacket,
    verdict: number,
    reason: string,
    connection: Connection | null,
  ) => void;
  /** Called once the inputs are open, with their names in record `inputIndex` order. */
  onInputs?: (inputNames: readonly string[]) => void;
  /**
   * Asked after every record: a promise to wait for before reading on (the sink's buffer is full),
   * or null to go on at once.
   */
  backpressure?: () => Promise<void> | null;
  /**
   * Observed NAT (lib/pipeline/observed-nat.ts): the inputs are several vantages of one NAT device;
   * each packet seen at two of them is tracked once, as it arrived, with the other sighting's
   * addresses and ports as its translation. Null or absent: every packet is tracked as read. With
   * it, `onPacket` gets decoded packets up to the window late, without their link-layer bytes, and
   * second sightings with verdict -1 and reason DUPLICATE_SIGHTING.
   */
  observedNat?: ObservedNatOptions | null;
  /**
   * Track only shard `index` of `count` (lib/pipeline/shard.ts): packets of other shards are decoded
   * and counted, not tracked; `onPacket` gets them with verdict -1 and reason OTHER_SHARD. Not with
   * observed NAT or the arrival vantage (their packets do not carry the connection's address pair).
   */
  shard?: ShardSelection | null;
  /** Stop reading after this capture time and run the engine clock up to it. */
  until?: TimePoint;
  /** After the input, let every remaining entry expire at its own time (DESTROY events). */
  drain?: boolean;
}

export interface ReplayResult {
  engine: ConntrackEngine;
  decoder: PacketDecoder;
  accounting: PacketAccounting;
  /** Input names in command-line order (after directory expansion). */
  inputNames: string[];
  /** Every reader warning (damaged or truncated input), in input order. */
  warnings: CaptureWarning[];
  /** Records read and handed to the decoder. */
  records: number;
  /** Decoded packets handed to the engine. */
  tracked: number;
  /** Connection and expectation events delivered (none when nf_conntrack_events is 0). */
  events: number;
  expectEvents: { NEW: number; DESTROY: number };
  /** Capture time of the first and last record read, null before any. */
  first: { tsSec: number; tsNsec: number } | null;
  last: { tsSec: number; tsNsec: number } | null;
  /** Whether `until` cut the input short. */
  stoppedEarly: boolean;
  /** The observed-NAT stage's counters, null when it did not run. */
  observedNat?: ObservedNatStats | null;
  /** The shard tracked, null when all of them. */
  shard?: ShardSelection | null;
  /** Time order of the inputs as read, and what the reorder window did. */
  order?: InputOrderStats;
  /** The resolved `until` (absolute), null when not asked for or no packet resolved a relative one. */
  until: { tsSec: number; tsNsec: number } | null;
}

const NS = 1e9;

/** `onPacket`'s reason for the second sighting of a packet (observed NAT), which is not tracked. */
export const DUPLICATE_SIGHTING = "duplicate sighting (seen at another vantage, tracked once)";

/** What the decode → conntrack step has counted so far. */
export interface RecordStepCounts {
  /** Records handed to the decoder. */
  records: number;
  /** Decoded packets handed to the engine. */
  tracked: number;
  /** Connection events delivered. */
  events: number;
  expectEvents: { NEW: number; DESTROY: number };
}

export type RecordStepOptions = Pick<
  ReplayOptions,
  | "settings"
  | "helpers"
  | "helperPorts"
  | "ftpLoose"
  | "nat"
  | "observedNat"
  | "shard"
  | "decoder"
  | "onEvent"
  | "onExpectEvent"
  | "onPacket"
>;

/**
 * One record through the decoder and the engine: the step `replayCaptures` runs for every record
 * read, shared with live capture so both decode and track alike.
 */
export interface RecordStep {
  readonly engine: ConntrackEngine;
  readonly decoder: PacketDecoder;
  readonly accounting: PacketAccounting;
  readonly counts: RecordStepCounts;
  /** Decodes `record` and tracks it; its events have been delivered when this returns. */
  handle(record: CaptureRecord): void;
  /** End of input: delivers what the observed-NAT stage still holds (nothing without it). */
  flush(): void;
  /** The observed-NAT stage's counters, null without it. */
  readonly observedNat: ObservedNatStats | null;
}

export function createRecordStep(options: RecordStepOptions, inputCount: number): RecordStep {
  const onEvent = options.onEvent ?? null;
  const onExpectEvent = options.onExpectEvent ?? null;
  const onPacket = options.onPacket ?? null;
  const counts: RecordStepCounts = {
    records: 0,
    tracked: 0,
    events: 0,
    expectEvents: { NEW: 0, DESTROY: 0 },
  };
  const engine = new ConntrackEngine({
    settings: options.settings,
    helpers: options.helpers,
    helperPorts: options.helperPorts,
    ftpLoose: options.ftpLoose,
    nat: options.nat,
    observedNat: options.observedNat !== undefined && options.observedNat !== null,
    onEvent: (event) => {
      counts.events++;
      if (onEvent !== null) onEvent(event);
    },
    onExpectEvent: (event) => {
      counts.expectEvents[event.type]++;
      if (onExpectEvent !== null) onExpectEvent(event);
    },
  });
  const decoder = new PacketDecoder(options.decoder);
  const accounting = new PacketAccounting(inputCount);

  const track = (packet: DecodedPacket, translation: Tuple | null, record: CaptureRecord): void => {
    counts.tracked++;
    const verdict = engine.process(packet, translation);
    if (onPacket !== null) {
      const explained =
        verdict === Verdict.Invalid || verdict === Verdict.Ignored || verdict === Verdict.Dropped;
      onPacket(
        record,
        PacketClass.Decoded,
        packet,
        verdict,
        explained ? engine.reason : "",
        engine.lastConnection,
      );
    }
  };
  const observedNat = options.observedNat ?? null;
  const matcher =
    observedNat === null
      ? null
      : new ObservedNatMatcher(observedNat, track, (packet, record) => {
          accounting.countDuplicateSighting(record.inputIndex);
          if (onPacket !== null) onPacket(record, PacketClass.Decoded, packet, -1, DUPLICATE_SIGHTING, null);
        });

  const shard = options.shard ?? null;
  if (shard !== null && (observedNat !== null || options.nat?.vantage === "arrival"))
    throw new Error("a shard is tracked by address pair: not with observed NAT or the arrival vantage");
  const shardCount = shard === null ? 1 : shard.count;
  const shardIndex = shard === null ? 0 : shard.index;

  const handle = (record: CaptureRecord): void => {
    counts.records++;
    const packetClass = decoder.decode(record);
    accounting.count(record.inputIndex, packetClass, decoder.packet.reason);
    if (
      packetClass === PacketClass.Decoded &&
      shardCount > 1 &&
      shardOf(decoder.packet, shardCount) !== shardIndex
    ) {
      accounting.countOtherShard(record.inputIndex);
      // The clock still follows every packet, so entries expire while the input lasts, as in one run.
      engine.advanceTo(record.tsSec, record.tsNsec);
      if (onPacket !== null) onPacket(record, packetClass, decoder.packet, -1, OTHER_SHARD, null);
      return;
    }
    if (packetClass === PacketClass.Decoded) {
      if (matcher !== null) matcher.push(decoder.packet, record);
      else track(decoder.packet, null, record);
    } else {
      if (matcher !== null) matcher.advance(record.tsSec, record.tsNsec);
      if (onPacket !== null) onPacket(record, packetClass, decoder.packet, -1, "", null);
    }
  };
  const flush = (): void => {
    if (matcher !== null) matcher.flush();
  };

  return {
    engine,
    decoder,
    accounting,
    counts,
    handle,
    flush,
    observedNat: matcher === null ? null : matcher.stats,
  };
}

/**
 * `settings` (field or sysctl names) with connection events on, whatever nf_conntrack_events says: for
 * consumers that read the events as data (a report's flows, a sharded table's ids).
 */
export function settingsWithEvents(settings: ReplayOptions["settings"] | undefined): Record<string, number> {
  const copy = { ...(settings ?? {}) } as Record<string, number>;
  delete copy["net.netfilter.nf_conntrack_events"];
  copy.events = 1;
  return copy;
}

/**
 * Entries expired between two backpressure checks when the end of the input expires many at once: a
 * step's events (a few hundred bytes each) stay well under a sink's buffer.
 */
export const EXPIRY_STEP = 1024;

/** Waits while the sink asks to (`ReplayOptions.backpressure`). */
export async function waitFor(backpressure: (() => Promise<void> | null) | null): Promise<void> {
  if (backpressure === null) return;
  const wait = backpressure();
  if (wait !== null) await wait;
}

export async function replayCaptures(
  files: readonly string[],
  options: ReplayOptions = {},
): Promise<ReplayResult> {
  const { inputs, source, order } = await openInputs(files, options);
  if (options.onInputs) options.onInputs(inputs.map((input) => input.name));
  const step = createRecordStep(options, inputs.length);
  const { engine, decoder, accounting, counts, handle } = step;
  const backpressure = options.backpressure ?? null;
  const span = new ReplaySpan(options.until ?? null);

  try {
    let more = true;
    reading: for (;;) {
      while (source.next()) {
        const record = source.record;
        if (!span.admit(record)) break reading;
        handle(record);
        if (backpressure !== null) {
          const wait = backpressure();
          if (wait !== null) await wait;
        }
      }
      if (!more) break;
      more = await source.fill();
    }
  } finally {
    await source.close();
    await Promise.all(inputs.map((input) => input.close()));
  }
  step.flush();
  decoder.finish();
  // The end of the input may expire the whole table at once: in steps, letting the sinks drain.
  const stopsAt = span.stopsAt;
  if (stopsAt !== null)
    while (!engine.advanceTo(stopsAt.tsSec, stopsAt.tsNsec, EXPIRY_STEP)) await waitFor(backpressure);
  if (options.drain) while (!engine.drain(EXPIRY_STEP)) await waitFor(backpressure);
  return {
    engine,
    decoder,
    accounting,
    inputNames: inputs.map((input) => input.name),
    warnings: inputs.flatMap((input) => input.warnings),
    records: counts.records,
    tracked: counts.tracked,
    events: counts.events,
    expectEvents: counts.expectEvents,
    ...span.result(),
    observedNat: step.observedNat,
    shard: options.shard ?? null,
    order: order(),
  };
}

/**
 * Which records a replay takes: all up to `until` (a relative one counted from the first record), and
 * the first and last it took.
 */
export class ReplaySpan {
  private firstSec = -1;
  private firstNsec = 0;
  private lastSec = -1;
  private lastNsec = 0;
  private stopSec = Infinity;
  private stopNsec = 0;
  private stoppedEarly = false;

  constructor(private readonly until: TimePoint | null) {
    if (until !== null && until.kind === "absolute") {
      this.stopSec = until.tsSec;
      this.stopNsec = until.tsNsec;
    }
  }

  /** Takes note of `record`; false when it lies past `until` (the replay stops before it). */
  admit(record: { tsSec: number; tsNsec: number }): boolean {
    if (this.firstSec < 0) {
      this.firstSec = record.tsSec;
      this.firstNsec = record.tsNsec;
      if (this.until !== null && this.until.kind === "relative") {
        const stop = splitNs(this.firstSec, this.firstNsec + this.until.offsetNs);
        this.stopSec = stop.tsSec;
        this.stopNsec = stop.tsNsec;
      }
    }
    if (record.tsSec > this.stopSec || (record.tsSec === this.stopSec && record.tsNsec > this.stopNsec)) {
      this.stoppedEarly = true;
      return false;
    }
    this.lastSec = record.tsSec;
    this.lastNsec = record.tsNsec;
    return true;
  }

  /** The resolved `until` (absolute), null when none was asked for or no record resolved a relative one. */
  get stopsAt(): { tsSec: number; tsNsec: number } | null {
    return Number.isFinite(this.stopSec) ? { tsSec: this.stopSec, tsNsec: this.stopNsec } : null;
  }

  result(): Pick<ReplayResult, "first" | "last" | "stoppedEarly" | "until"> {
    return {
      first: this.firstSec < 0 ? null : { tsSec: this.firstSec, tsNsec: this.firstNsec },
      last: this.lastSec < 0 ? null : { tsSec: this.lastSec, tsNsec: this.lastNsec },
      stoppedEarly: this.stoppedEarly,
      until: this.stopsAt,
    };
  }
}

/** Normalises seconds + nanoseconds (nanoseconds may be negative or exceed a second). */
export function splitNs(tsSec: number, tsNsec: number): { tsSec: number; tsNsec: number } {
  const carry = Math.floor(tsNsec / NS);
  return { tsSec: tsSec + carry, tsNsec: Math.round(tsNsec - carry * NS) };
}

/** Writes one item as bytes at `offset` of `out` and returns the offset after it. */
export interface ByteEncoder<T> {
  encode(item: T, out: Uint8Array, offset: number): number;
}

/**
 * Collects output into chunks and writes them to a stream, honouring its backpressure: `pending()`
 * gives the promise to wait for while the stream's buffer is over its high-water mark.
 *
 * Two ways in, kept in order: `write(text)` joins strings, and `writeEncoded` has an encoder write
 * bytes straight into a chunk buffer (no string per item, no UTF-8 pass by the stream). A flushed byte
 * chunk is never reused: the stream (or whatever reads from it) may hold on to it after the write
 * callback, so writing goes on in a new chunk (one allocation per chunk, not per item).
 */
/**
 * Buffered bytes a file stream takes before it asks the writer to wait. Node's default (16 KiB) is
 * smaller than one 64 KiB chunk, so every chunk made the replay wait for the thread pool's write;
 * with 1 MiB the writes overlap the replay and backpressure starts only when the disk falls behind.
 */
export const OUTPUT_HIGH_WATER_MARK = 1 << 20;

export class ChunkedWriter {
  private buffered = "";
  private chunk: Buffer | null = null;
  private chunkUsed = 0;
  private waiting: Promise<void> | null = null;
  private failure: Error | null = null;

  constructor(
    private readonly stream: Writable,
    private readonly chunkChars = 64 * 1024,
    private readonly chunkBytes = 64 * 1024,
  ) {
    stream.on("error", (error: Error) => {
      this.failure = error;
    });
  }

  write(text: string): void {
    if (this.chunkUsed > 0) this.flushBytes();
    this.buffered += text;
    if (this.buffered.length >= this.chunkChars) this.flushText();
  }

  /** Writes bytes that are not reused afterwards (handed to the stream as they are, no copy). */
  writeBytes(bytes: Uint8Array): void {
    if (this.buffered !== "") this.flushText();
    if (this.chunkUsed > 0) this.flushBytes();
    if (bytes.length > 0) this.afterWrite(this.stream.write(bytes));
  }

  /**
   * Has `encoder` write `item` into the current chunk; `maxBytes` is the most one item can take, so
   * the chunk is flushed first when less than that is left.
   */
  writeEncoded<T>(encoder: ByteEncoder<T>, item: T, maxBytes: number): void {
    if (this.buffered !== "") this.flushText();
    let chunk = this.chunk;
    if (chunk === null || chunk.length - this.chunkUsed < maxBytes) {
      if (this.chunkUsed > 0) this.flushBytes();
      chunk = this.chunk = this.freshChunk(maxBytes);
    }
    this.chunkUsed = encoder.encode(item, chunk, this.chunkUsed);
  }

  /** Null when writing may go on, else a promise that settles when the stream drained (or failed). */
  pending(): Promise<void> | null {
    if (this.failure !== null) return Promise.reject(this.failure);
    return this.waiting;
  }

  /** Hands everything buffered to the stream and waits until the stream has taken it. */
  async finish(): Promise<void> {
    this.flushText();
    this.flushBytes();
    if (this.waiting !== null) await this.waiting;
    if (this.failure !== null) throw this.failure;
    const writeError = await new Promise<Error | null | undefined>((resolve) =>
      this.stream.write("", (error) => resolve(error)),
    );
    if (writeError) {
      // A stream a failed write destroyed refuses this write too; the failure worth naming (ENOSPC)
      // is the one its 'error' event brings, which may come a tick after this callback.
      await new Promise((resolve) => setImmediate(resolve));
      throw this.failure ?? writeError;
    }
    if (this.failure !== null) throw this.failure;
  }

  private freshChunk(atLeast: number): Buffer {
    return Buffer.allocUnsafe(Math.max(atLeast, this.chunkBytes));
  }

  private flushText(): void {
    if (this.buffered === "") return;
    const text = this.buffered;
    this.buffered = "";
    this.afterWrite(this.stream.write(text));
  }

  private flushBytes(): void {
    if (this.chunkUsed === 0) return;
    const chunk = this.chunk!;
    const used = this.chunkUsed;
    this.chunk = null;
    this.chunkUsed = 0;
    this.afterWrite(this.stream.write(chunk.subarray(0, used)));
  }

  private afterWrite(accepted: boolean): void {
    // A stream a failed write (ENOSPC) destroyed emits its error and close once: a write after they
    // came waits for nothing (its failure is reported by `pending` and `finish`).
    if (!accepted && this.waiting === null && !this.stream.closed) {
      this.waiting = new Promise<void>((resolve) => {
        const settle = (): void => {
          this.stream.off("drain", settle);
          this.stream.off("error", settle);
          this.stream.off("close", settle);
          this.waiting = null;
          resolve();
        };
        this.stream.on("drain", settle);
        this.stream.on("error", settle);
        this.stream.on("close", settle);
      });
    }
  }
}

/**
 * One capture file through a new engine, drained unless `drain` is false (the helper tests use this).
 * `tracked` counts the packets the engine saw.
 */
export async function runEngineOverCapture(
  path: string,
  options: { settings?: ReplayOptions["settings"]; onEvent?: ReplayOptions["onEvent"] } = {},
  drain = true,
): Promise<{ engine: ConntrackEngine; decoder: PacketDecoder; tracked: number }> {
  const result = await replayCaptures([path], { ...options, drain });
  return { engine: result.engine, decoder: result.decoder, tracked: result.tracked };
}
