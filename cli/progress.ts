/**
 * The progress bar on standard error while the commands read their captures: bytes read of the
 * inputs' size (when every size is known), packets, packets/s, MB/s, elapsed time and time left.
 *
 * Nothing is done per packet: a timer polls the readers' counters (`bytesConsumed`, `packetsRead`),
 * and the timer runs whenever the replay waits for input, which it does at least once per buffer
 * of input. Shown by default only when standard error is a terminal and no output is streamed to that
 * terminal meanwhile (the two would mix on one screen); `--progress` / `--no-progress` decide instead.
 */
import { fstatSync, statSync } from "node:fs";
import type { Argv } from "yargs";
import type { CaptureSource } from "../lib/capture/source.js";

/** What the meter writes to: standard error, or a fake terminal in tests. */
export interface ProgressStream {
  write(text: string): boolean;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface ProgressCounters {
  bytes: number;
  packets: number;
}

export interface ProgressMeterOptions {
  stream: ProgressStream;
  /** Size of all inputs in bytes, null when one is unknown (a pipe). */
  totalBytes: number | null;
  /** The counters so far; read once per redraw. */
  read: () => ProgressCounters;
  /** Milliseconds on a monotonic clock (default performance.now). */
  now?: () => number;
  /** Least time between two redraws (default 100 ms: at most 10 a second). */
  redrawMs?: number;
  /** Nothing is drawn before this much time has passed, so quick runs never flash a bar (default 500 ms). */
  quietMs?: number;
}

const ERASE_TO_END_OF_LINE = "\x1b[K";
const BAR_CELLS = 20;
const MB = 1e6;

/** Draws and redraws one status line, throttled, and erases it at the end. */
export class ProgressMeter {
  private readonly startedAt: number;
  private lastDrawAt = -Infinity;
  private drawn = false;
  private finished = false;
  private readonly now: () => number;
  private readonly redrawMs: number;
  private readonly quietMs: number;

  constructor(private readonly options: ProgressMeterOptions) {
    this.now = options.now ?? (() => performance.now());
    this.redrawMs = options.redrawMs ?? 100;
    this.quietMs = options.quietMs ?? 500;
    this.startedAt = this.now();
  }

  /** Redraws if the last redraw is old enough; returns whether it drew. Cheap to call often. */
  tick(): boolean {
    if (this.finished) return false;
    const now = this.now();
    if (now - this.startedAt < this.quietMs || now - this.lastDrawAt < this.redrawMs) return false;
    this.lastDrawAt = now;
    const line = formatProgressLine(this.options.read(), this.options.totalBytes, now - this.startedAt);
    const columns = this.options.stream.columns ?? 0;
    // One column short of the width: a line that fills it wraps on some terminals, and \r then
    // returns to the wrapped part only.
    const fitted = columns > 1 && line.length >= columns ? line.slice(0, columns - 1) : line;
    this.options.stream.write(`\r${fitted}${ERASE_TO_END_OF_LINE}`);
    this.drawn = true;
    return true;
  }

  /** Erases the line (if one was drawn), so what follows starts on a clean line. Safe to call twice. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.drawn) this.options.stream.write(`\r${ERASE_TO_END_OF_LINE}`);
  }
}

/** The status line: `[=====>    ]  42%  214.7/512.0 MB  1,234,567 packets  456.7k pkt/s  52.3 MB/s  0:04 elapsed, 0:06 left`. */
export function formatProgressLine(
  counters: ProgressCounters,
  totalBytes: number | null,
  elapsedMs: number,
): string {
  const seconds = elapsedMs / 1000;
  const bytesPerSecond = seconds > 0 ? counters.bytes / seconds : 0;
  const packetsPerSecond = seconds > 0 ? counters.packets / seconds : 0;
  const parts: string[] = [];
  if (totalBytes !== null && totalBytes > 0) {
    const fraction = Math.min(1, counters.bytes / totalBytes);
    const full = Math.floor(fraction * BAR_CELLS);
    const head = full < BAR_CELLS ? ">" : "";
    parts.push(`[${"=".repeat(full)}${head}${" ".repeat(BAR_CELLS - full - head.length)}]`);
    parts.push(`${String(Math.floor(fraction * 100)).padStart(3)}%`);
    parts.push(`${(counters.bytes / MB).toFixed(1)}/${(totalBytes / MB).toFixed(1)} MB`);
  } else {
    parts.push(`${(counters.bytes / MB).toFixed(1)} MB`);
  }
  parts.push(`${counters.packets.toLocaleString("en-US")} packets`);
  parts.push(`${formatRate(packetsPerSecond)} pkt/s`);
  parts.push(`${(bytesPerSecond / MB).toFixed(1)} MB/s`);
  let time = `${formatDuration(seconds)} elapsed`;
  if (totalBytes !== null && totalBytes > 0) {
    const left = bytesPerSecond > 0 ? Math.max(0, totalBytes - counters.bytes) / bytesPerSecond : NaN;
    time += `, ${Number.isFinite(left) ? formatDuration(left) : "-:--"} left`;
  }
  parts.push(time);
  return parts.join("  ");
}

function formatRate(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)}k`;
  return perSecond.toFixed(0);
}

/** m:ss, or h:mm:ss from an hour on. */
export function formatDuration(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  const s = whole % 60;
  const m = Math.floor(whole / 60) % 60;
  const h = Math.floor(whole / 3600);
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** `--progress` / `--no-progress`; absent: decide by the terminal. */
export function withProgressOption<T>(argv: Argv<T>) {
  return argv.option("progress", {
    type: "boolean",
    describe:
      "show a progress bar on standard error while reading (default: when standard error is a terminal " +
      "and no output streams to it); --no-progress: never",
  });
}

export interface CommandProgressOptions {
  /** `--progress`: true forces, false forbids, undefined decides by the terminal. */
  requested: boolean | undefined;
  /** Whether the command writes to standard output while it reads (events does; the others at the end). */
  outputWhileReading: boolean;
  stderr?: ProgressStream;
  stdoutIsTTY?: boolean;
  /** Sizes of the inputs by path ("-" is standard input); default: stat them. */
  sizeOf?: (path: string) => number | null;
  /** How often the readers' counters are polled (default 50 ms; the meter draws at most every 100 ms). */
  pollMs?: number;
}

/**
 * A command's progress: pass `onOpened` into the input options (undefined when no bar is shown) and
 * call `finish()` once reading is over, before anything else goes to standard error.
 */
export interface CommandProgress {
  readonly onOpened: ((inputs: readonly CaptureSource[]) => void) | undefined;
  finish(): void;
}

export function shouldShowProgress(
  requested: boolean | undefined,
  stderrIsTTY: boolean,
  outputToTerminalWhileReading: boolean,
): boolean {
  if (requested !== undefined) return requested;
  return stderrIsTTY && !outputToTerminalWhileReading;
}

export function startCommandProgress(
  files: readonly string[],
  options: CommandProgressOptions,
): CommandProgress {
  const stderr = options.stderr ?? process.stderr;
  const stdoutIsTTY = options.stdoutIsTTY ?? process.stdout.isTTY === true;
  const show = shouldShowProgress(
    options.requested,
    stderr.isTTY === true,
    options.outputWhileReading && stdoutIsTTY,
  );
  if (!show) return { onOpened: undefined, finish: () => undefined };
  const sizeOf = options.sizeOf ?? inputSize;
  let totalBytes: number | null = 0;
  for (const file of files) {
    const size = sizeOf(file);
    totalBytes = size === null || totalBytes === null ? null : totalBytes + size;
  }
  let inputs: readonly CaptureSource[] = [];
  const counters: ProgressCounters = { bytes: 0, packets: 0 };
  const meter = new ProgressMeter({
    stream: stderr,
    totalBytes,
    read: () => readInputCounters(inputs, counters),
  });
  let timer: NodeJS.Timeout | null = null;
  return {
    onOpened: (opened) => {
      inputs = opened;
      if (timer === null) {
        timer = setInterval(() => meter.tick(), options.pollMs ?? 50);
        // The bar never keeps the process alive.
        timer.unref();
      }
    },
    finish: () => {
      if (timer !== null) clearInterval(timer);
      timer = null;
      meter.finish();
    },
  };
}

/** Sums the readers' byte and packet counts into `counters`. */
export function readInputCounters(
  inputs: readonly CaptureSource[],
  counters: ProgressCounters = { bytes: 0, packets: 0 },
): ProgressCounters {
  counters.bytes = 0;
  counters.packets = 0;
  for (const input of inputs) {
    counters.bytes += input.bytesConsumed ?? 0;
    counters.packets += input.packetsRead ?? 0;
  }
  return counters;
}

/** A capture's size in bytes; standard input's only when it is a regular file (`< file.pcap`). */
function inputSize(path: string): number | null {
  try {
    const stats = path === "-" ? fstatSync(0) : statSync(path);
    return stats.isFile() ? stats.size : null;
  } catch {
    return null;
  }
}
