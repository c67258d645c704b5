/**
 * The progress bar: drawn on a terminal only, throttled by a (fake) clock, erased at the end, one
 * line rewritten in place; and the byte and packet counts it shows come from the capture readers.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { openCapture } from "../../lib/capture/open.js";
import { forEachRecord } from "../../lib/capture/source.js";
import { openInputs } from "../../lib/pipeline/inputs.js";
import {
  ProgressMeter,
  formatDuration,
  formatProgressLine,
  readInputCounters,
  shouldShowProgress,
  startCommandProgress,
  type ProgressStream,
} from "../../cli/progress.js";
import { frame, pcapBytes, writeScratch } from "./capture-fixtures.js";
import { runCli } from "../support/cli.js";

class FakeTerminal implements ProgressStream {
  readonly writes: string[] = [];
  constructor(
    readonly isTTY: boolean,
    readonly columns = 200,
  ) {}
  write(text: string): boolean {
    this.writes.push(text);
    return true;
  }
}

function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

const ERASE = "\x1b[K";

test("redraws at most once per 100 ms, nothing in the first 500 ms, one line rewritten in place", () => {
  const terminal = new FakeTerminal(true);
  const clock = fakeClock();
  let reads = 0;
  const meter = new ProgressMeter({
    stream: terminal,
    totalBytes: 1e9,
    read: () => {
      reads++;
      return { bytes: reads * 1e6, packets: reads * 1000 };
    },
    now: clock.now,
  });
  const drawnAt: number[] = [];
  for (let step = 0; step <= 300; step++) {
    if (meter.tick()) drawnAt.push(clock.now());
    clock.advance(7);
  }
  // 2.1 s of ticks every 7 ms: the first draw at 504 ms, then one per 105 ms (the first tick past 100).
  assert.equal(drawnAt[0] - 1000, 504);
  for (let i = 1; i < drawnAt.length; i++) assert.ok(drawnAt[i] - drawnAt[i - 1] >= 100);
  assert.equal(drawnAt.length, 16);
  assert.equal(terminal.writes.length, drawnAt.length, "one write per draw");
  assert.equal(reads, drawnAt.length, "the counters are read only to draw");
  for (const write of terminal.writes) {
    assert.ok(write.startsWith("\r") && write.endsWith(ERASE), JSON.stringify(write));
    assert.ok(!write.includes("\n"), "never a new line");
  }
  assert.match(terminal.writes[0], /1\.0\/1000\.0 MB {2}1,000 packets/);
});

test("finish erases the drawn line once; nothing is drawn after it", () => {
  const terminal = new FakeTerminal(true);
  const clock = fakeClock();
  const meter = new ProgressMeter({
    stream: terminal,
    totalBytes: null,
    read: () => ({ bytes: 5, packets: 1 }),
    now: clock.now,
  });
  clock.advance(600);
  assert.equal(meter.tick(), true);
  meter.finish();
  meter.finish();
  clock.advance(600);
  assert.equal(meter.tick(), false);
  assert.equal(terminal.writes.length, 2);
  assert.equal(terminal.writes[1], `\r${ERASE}`);
});

test("a quick run draws nothing and erases nothing", () => {
  const terminal = new FakeTerminal(true);
  const clock = fakeClock();
  const meter = new ProgressMeter({
    stream: terminal,
    totalBytes: 10,
    read: () => ({ bytes: 10, packets: 1 }),
    now: clock.now,
  });
  clock.advance(499);
  assert.equal(meter.tick(), false);
  meter.finish();
  assert.deepEqual(terminal.writes, []);
});

test("the line is cut one column short of the terminal's width", () => {
  const terminal = new FakeTerminal(true, 40);
  const clock = fakeClock();
  const meter = new ProgressMeter({
    stream: terminal,
    totalBytes: 1e9,
    read: () => ({ bytes: 1e8, packets: 123456 }),
    now: clock.now,
  });
  clock.advance(1000);
  meter.tick();
  assert.equal(terminal.writes[0].length, 1 + 39 + ERASE.length);
});

test("the line: bar, percent, bytes of total, packets, rates, elapsed and time left", () => {
  assert.equal(
    formatProgressLine({ bytes: 50e6, packets: 1_234_567 }, 100e6, 2000),
    "[==========>         ]   50%  50.0/100.0 MB  1,234,567 packets  617.3k pkt/s  25.0 MB/s  0:02 elapsed, 0:02 left",
  );
  assert.equal(
    formatProgressLine({ bytes: 3_500_000, packets: 900 }, null, 3_600_000 + 61_000),
    "3.5 MB  900 packets  0 pkt/s  0.0 MB/s  1:01:01 elapsed",
  );
  assert.match(formatProgressLine({ bytes: 0, packets: 0 }, 100, 0), /0:00 elapsed, -:-- left$/);
  assert.match(
    formatProgressLine({ bytes: 100, packets: 2e6 }, 100, 1000),
    /^\[=+\] +100% {2}.* 2\.00M pkt\/s/,
  );
  assert.equal(formatDuration(59.6), "1:00");
});

test("shown on a terminal unless output streams to the same screen; --progress / --no-progress decide", () => {
  assert.equal(shouldShowProgress(undefined, true, false), true);
  assert.equal(shouldShowProgress(undefined, false, false), false);
  assert.equal(shouldShowProgress(undefined, true, true), false);
  assert.equal(shouldShowProgress(true, false, true), true);
  assert.equal(shouldShowProgress(false, true, false), false);
});

test("silent when standard error is not a terminal: no hook, no write", () => {
  const notATerminal = new FakeTerminal(false);
  const progress = startCommandProgress(["x.pcap"], {
    requested: undefined,
    outputWhileReading: false,
    stderr: notATerminal,
    sizeOf: () => 100,
  });
  assert.equal(progress.onOpened, undefined);
  progress.finish();
  assert.deepEqual(notATerminal.writes, []);

  const terminal = new FakeTerminal(true);
  const streaming = startCommandProgress(["x.pcap"], {
    requested: undefined,
    outputWhileReading: true,
    stdoutIsTTY: true,
    stderr: terminal,
    sizeOf: () => 100,
  });
  assert.equal(streaming.onOpened, undefined, "events to the terminal: no bar between the lines");
  const toFile = startCommandProgress(["x.pcap"], {
    requested: undefined,
    outputWhileReading: true,
    stdoutIsTTY: false,
    stderr: terminal,
    sizeOf: () => 100,
  });
  assert.notEqual(toFile.onOpened, undefined);
  toFile.onOpened!([]);
  toFile.finish();
  assert.deepEqual(terminal.writes, [], "finished before the first draw");
});

function capture(count: number): Buffer {
  const records = [];
  for (let i = 0; i < count; i++) records.push({ sec: 100 + i, fraction: i, data: frame(i, 60 + (i % 40)) });
  return pcapBytes({ records });
}

test("the readers count bytes of the stored file and packets: plain, gzip, standard input, merged", async () => {
  const plain = capture(3000);
  const compressed = gzipSync(plain);
  const plainPath = writeScratch("progress-plain.pcap", plain);
  const gzipPath = writeScratch("progress-compressed.pcap.gz", compressed);
  for (const [label, bytes, open] of [
    ["file", plain.length, () => openCapture(plainPath, { bufferBytes: 4096 })],
    ["gzip file", compressed.length, () => openCapture(gzipPath, { bufferBytes: 4096 })],
    ["gzip stdin", compressed.length, () => openCapture("-", { stdin: Readable.from([compressed]) })],
    ["stdin", plain.length, () => openCapture("-", { stdin: Readable.from([plain]), bufferBytes: 4096 })],
  ] as const) {
    const source = await open();
    let seen = 0;
    let midway: number | null = null;
    await forEachRecord(source, () => {
      seen++;
      if (seen === 1500) midway = source.bytesConsumed!;
    });
    assert.equal(source.packetsRead, 3000, label);
    assert.equal(source.bytesConsumed, bytes, `${label}: every stored byte consumed`);
    if (label === "file") assert.ok(midway! > 0 && midway! < bytes, `${label}: midway ${midway}`);
    await source.close();
  }

  let opened: readonly unknown[] = [];
  const { inputs, source } = await openInputs([plainPath, gzipPath], {
    onOpened: (readers) => (opened = readers),
  });
  assert.equal(opened, inputs, "the hook gets the readers");
  await forEachRecord(source, () => undefined);
  assert.deepEqual(readInputCounters(inputs), { bytes: plain.length + compressed.length, packets: 6000 });
  await source.close();
});

test("--progress and --no-progress leave standard output as it is", () => {
  const path = writeScratch("progress-cli.pcap", capture(50));
  const plain = runCli(["stats", path]);
  assert.equal(plain.status, 0, plain.stderr);
  for (const flag of ["--progress", "--no-progress"]) {
    const run = runCli(["stats", path, flag]);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, plain.stdout, flag);
  }
  for (const command of ["events", "table"]) assert.equal(runCli([command, path, "--no-progress"]).status, 0);
});
