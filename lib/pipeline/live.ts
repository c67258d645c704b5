/**
 * The live pipeline: a live capture → the same decode → conntrack step as `replayCaptures` → event
 * callbacks. Packets carry their arrival time; between packets the engine's clock follows the wall
 * clock, so entries expire (and their DESTROY is delivered) on time on an idle link.
 */
import type { LiveCaptureSource, LiveCaptureStats } from "../capture/live.js";
import {
  EXPIRY_STEP,
  createRecordStep,
  splitNs,
  waitFor,
  type RecordStepOptions,
  type ReplayResult,
} from "./replay.js";

/** Where captured packets are saved as well (PcapWriter or PcapngWriter). */
export interface LiveRecordWriter {
  writeRecord(
    tsSec: number,
    tsNsec: number,
    bytes: Uint8Array,
    offset: number,
    length: number,
    origlen: number,
  ): Promise<void> | undefined;
}

export type LiveStopReason = "count" | "duration" | "signal" | "stopped";

export interface LiveOptions extends RecordStepOptions {
  /** Stop after this many packets. */
  count?: number;
  /** Stop this many nanoseconds after the start. */
  durationNs?: number;
  /** Stops the capture when aborted (SIGINT, SIGTERM); packets already queued are still tracked. */
  signal?: AbortSignal;
  /** Every packet handed to the engine is written here first. */
  writer?: LiveRecordWriter | null;
  /** After the stop, let every remaining entry expire at its own time (DESTROY events). */
  drain?: boolean;
  /**
   * Called whenever the queue of arrived packets is empty (after a batch, and at every idle tick):
   * the place to flush output so events appear as they happen. A returned promise is awaited.
   */
  onIdle?: () => Promise<void> | null;
  /** Asked after every packet, as in `replayCaptures`: a promise to wait for, or null. */
  backpressure?: () => Promise<void> | null;
}

export interface LiveResult {
  /** The run as `replayCaptures` would report it (for the summaries `events` prints). */
  replay: ReplayResult;
  capture: LiveCaptureStats;
  reason: LiveStopReason;
  started: { tsSec: number; tsNsec: number };
  /** The time the engine's clock was run to at the stop (the deadline for `duration`). */
  stopped: { tsSec: number; tsNsec: number };
}

function later(a: { tsSec: number; tsNsec: number }, tsSec: number, tsNsec: number): boolean {
  return a.tsSec > tsSec || (a.tsSec === tsSec && a.tsNsec > tsNsec);
}

/** Runs `source` through a new engine until a stop condition; closes the source. */
export async function runLive(source: LiveCaptureSource, options: LiveOptions = {}): Promise<LiveResult> {
  const step = createRecordStep(options, 1);
  const { engine, counts, handle } = step;
  const writer = options.writer ?? null;
  const onIdle = options.onIdle ?? null;
  const backpressure = options.backpressure ?? null;
  const count = options.count ?? Infinity;
  const started = { tsSec: 0, tsNsec: 0 };
  source.now(started);
  let deadlineSec = Infinity;
  let deadlineNsec = 0;
  if (options.durationNs !== undefined) {
    const deadline = splitNs(started.tsSec, started.tsNsec + options.durationNs);
    deadlineSec = deadline.tsSec;
    deadlineNsec = deadline.tsNsec;
  }
  let reason: LiveStopReason | null = null;
  const stop = (why: LiveStopReason): void => {
    reason ??= why;
    source.stop();
  };
  const onAbort = (): void => stop("signal");
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener("abort", onAbort);
  const clock = { tsSec: 0, tsNsec: 0 };
  let firstSec = -1;
  let firstNsec = 0;
  let lastSec = -1;
  let lastNsec = 0;
  try {
    reading: for (;;) {
      while (source.next()) {
        const record = source.record;
        if (later(record, deadlineSec, deadlineNsec)) {
          stop("duration");
          break reading;
        }
        if (writer !== null) {
          const wait = writer.writeRecord(
            record.tsSec,
            record.tsNsec,
            record.data,
            record.offset,
            record.caplen,
            record.origlen,
          );
          // The record's bytes stay in the queue until the next `next()`, whatever arrives meanwhile.
          if (wait !== undefined) await wait;
        }
        if (firstSec < 0) {
          firstSec = record.tsSec;
          firstNsec = record.tsNsec;
        }
        lastSec = record.tsSec;
        lastNsec = record.tsNsec;
        handle(record);
        if (counts.records >= count) {
          stop("count");
          break reading;
        }
        if (backpressure !== null) {
          const wait = backpressure();
          if (wait !== null) await wait;
        }
      }
      // Nothing queued: every later packet will be stamped after now, so the clock may run to now.
      // Not before the first packet, whose second the engine counts its time from (as offline).
      source.now(clock);
      if (later(clock, deadlineSec, deadlineNsec)) {
        stop("duration");
        break;
      }
      if (firstSec >= 0) engine.advanceTo(clock.tsSec, clock.tsNsec);
      if (onIdle !== null) {
        const wait = onIdle();
        if (wait !== null) await wait;
      }
      if (!(await source.fill())) break;
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    await source.close();
  }
  const stopped = { tsSec: 0, tsNsec: 0 };
  if (reason === "duration") {
    stopped.tsSec = deadlineSec;
    stopped.tsNsec = deadlineNsec;
  } else source.now(stopped);
  if (firstSec >= 0)
    while (!engine.advanceTo(stopped.tsSec, stopped.tsNsec, EXPIRY_STEP)) await waitFor(backpressure);
  step.decoder.finish();
  if (options.drain) while (!engine.drain(EXPIRY_STEP)) await waitFor(backpressure);
  const replay: ReplayResult = {
    engine,
    decoder: step.decoder,
    accounting: step.accounting,
    inputNames: [source.name],
    warnings: [],
    records: counts.records,
    tracked: counts.tracked,
    events: counts.events,
    expectEvents: counts.expectEvents,
    first: firstSec < 0 ? null : { tsSec: firstSec, tsNsec: firstNsec },
    last: lastSec < 0 ? null : { tsSec: lastSec, tsNsec: lastNsec },
    stoppedEarly: false,
    until: stopped,
  };
  return { replay, capture: source.stats(), reason: reason ?? "stopped", started, stopped };
}
