/**
 * `--jobs N` gives one engine's output: for every recorded sample (NAT ones under their router's rule),
 * a synthetic capture cut into many small rounds (so that ids are numbered late and timers fire in
 * other workers' rounds), a capture out of time order, a time limit, several inputs at once, and the
 * public capture corpus (fragments, odd link types, damaged files), the workers' merged events, in
 * every line format, equal the single engine's byte for byte, and the counters agree.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { syntheticCaptureFile } from "../support/synth-file.js";
import { replayCaptures, type ReplayOptions, type ReplayResult } from "../../lib/pipeline/replay.js";
import { replayCapturesInJobs, type JobsReplayResult } from "../../lib/pipeline/jobs.js";
import { REPORT_FILES, writeReport, type ReportOptions } from "../../lib/pipeline/report.js";
import { writeReportInJobs } from "../../lib/pipeline/report-jobs.js";
import { openCapture } from "../../lib/capture/open.js";
import { createEventFormatter, createExpectEventFormatter } from "../../lib/report/event-formats.js";
import { settingsFromArguments } from "../../cli/commands/events.js";
import { natOptionsFor, recordedSamples, type ScenarioMetadata } from "./sample-golden.js";
import { corpusAvailable, corpusEntries, repoRoot } from "../support/corpus.js";
import { runCli } from "../support/cli.js";
import { autoJobs } from "../../cli/options.js";

const samplesDir = join(repoRoot, "samples");
const scratch = mkdtempSync(join(tmpdir(), "jobs-"));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

type LineFormat = "text" | "csv" | "ndjson";
type CommonOptions = Omit<ReplayOptions, "onEvent" | "onExpectEvent">;

interface Output {
  events: string;
  expectations: string;
  result: ReplayResult | JobsReplayResult;
  /** With --jobs: the most event lines handed to the output in one piece. */
  largestWriteLines?: number;
}

async function single(files: string[], options: CommonOptions, format: LineFormat): Promise<Output> {
  const events = createEventFormatter(format);
  const expectations = createExpectEventFormatter(format);
  let eventText = events.header();
  let expectText = expectations.header();
  const result = await replayCaptures(files, {
    ...options,
    onEvent: (event) => (eventText += events.format(event)),
    onExpectEvent: (event) => (expectText += expectations.format(event)),
  });
  return { events: eventText, expectations: expectText, result };
}

async function inJobs(
  files: string[],
  options: CommonOptions,
  format: LineFormat,
  jobs: number,
  rounds: { roundRecords?: number; roundsInFlight?: number } = {},
): Promise<Output> {
  const eventChunks: Buffer[] = [Buffer.from(createEventFormatter(format).header())];
  const expectChunks: Buffer[] = [Buffer.from(createExpectEventFormatter(format).header())];
  let largestWriteLines = 0;
  const result = await replayCapturesInJobs(files, {
    ...options,
    ...rounds,
    jobs,
    format: { format, timestamp: true, events: true, expectations: true },
    writeEvents: (bytes) => {
      eventChunks.push(Buffer.from(bytes));
      let lines = 0;
      for (const byte of bytes) if (byte === 0x0a) lines++;
      largestWriteLines = Math.max(largestWriteLines, lines);
    },
    writeExpectations: (bytes) => expectChunks.push(Buffer.from(bytes)),
  });
  return {
    events: Buffer.concat(eventChunks).toString("utf8"),
    expectations: Buffer.concat(expectChunks).toString("utf8"),
    result,
    largestWriteLines,
  };
}

/** The counters one engine and the workers must agree on ("most live at once" is a sum of maxima). */
function counters(output: Output): unknown {
  const { result } = output;
  const stats = { ...result.engine.stats, maxLive: 0 };
  return {
    records: result.records,
    tracked: result.tracked,
    classes: result.accounting.classes,
    reasons: result.accounting.reasons,
    stats,
    live: result.engine.liveConnections,
    liveExpectations: result.engine.liveExpectations,
    expectEvents: result.expectEvents,
    warnings: result.warnings.map((warning) => warning.message),
    stoppedEarly: result.stoppedEarly,
  };
}

function assertSame(expected: Output, actual: Output, what: string): void {
  assert.equal(actual.events, expected.events, `${what}: connection events`);
  assert.equal(actual.expectations, expected.expectations, `${what}: expectation events`);
  assert.deepEqual(counters(actual), counters(expected), `${what}: counters`);
}

function syntheticCapture(name: string, packets: number, conversations: number): Promise<string> {
  return syntheticCaptureFile(join(scratch, name), { packets, conversations, seed: 11 });
}

/** A recorded sample's capture and what it was recorded under: its router's sysctls and NAT rule. */
async function recordedSample(
  name: string,
): Promise<{ files: string[]; options: Pick<CommonOptions, "settings" | "nat"> }> {
  const directory = join(samplesDir, name);
  const metadata = JSON.parse(readFileSync(join(directory, "scenario.json"), "utf8")) as ScenarioMetadata;
  const settings = await settingsFromArguments(
    { sysctl: join(directory, "sysctl.txt"), hz: metadata.kernelHz ?? undefined },
    () => undefined,
  );
  const nat = natOptionsFor(metadata);
  return { files: [join(directory, "inside.pcap")], options: { settings, ...(nat === null ? {} : { nat }) } };
}

test("jobs: every recorded sample, as the single engine (NAT samples under their rule)", async () => {
  const names = recordedSamples(samplesDir);
  assert.ok(names.length >= 30, `samples found: ${names.length}`);
  for (const name of names) {
    const sample = await recordedSample(name);
    const options: CommonOptions = { ...sample.options, drain: true };
    const files = sample.files;
    const expected = await single(files, options, "text");
    assert.ok(expected.events.length > 0, `${name}: events`);
    assertSame(expected, await inJobs(files, options, "text", 2, { roundRecords: 3 }), `${name} --jobs 2`);
  }
});

test("jobs: a synthetic capture in small rounds, in every line format, is the single engine's", async () => {
  const capture = await syntheticCapture("synth.pcap", 20_000, 1_500);
  for (const format of ["text", "csv", "ndjson"] as const) {
    const expected = await single([capture], { drain: true }, format);
    assert.ok(expected.events.split("\n").length > 3_000, "many events");
    for (const [jobs, roundRecords, roundsInFlight] of [
      [2, 8192, 3],
      [3, 97, 1],
      [4, 211, 4],
    ]) {
      const actual = await inJobs([capture], { drain: true }, format, jobs, { roundRecords, roundsInFlight });
      assertSame(expected, actual, `${format} --jobs ${jobs}, rounds of ${roundRecords}`);
    }
  }
});

test("jobs: a drain of more entries than a window holds comes out in windows, as the single engine's", async () => {
  // Every worker holds more live entries at the end than one drain window (DRAIN_WINDOW_ENTRIES).
  const path = await syntheticCaptureFile(join(scratch, "many-live.pcap"), {
    packets: 24_000,
    conversations: 12_000,
    live: 12_000,
    seed: 12,
  });
  for (const format of ["text", "csv"] as const) {
    const expected = await single([path], { drain: true }, format);
    for (const jobs of [2, 3]) {
      const actual = await inJobs([path], { drain: true }, format, jobs, { roundRecords: 4096 });
      // One drain at once would have written every entry's DESTROY in one piece.
      assert.ok(actual.largestWriteLines! < 9_000, `${actual.largestWriteLines} lines written at once`);
      assertSame(expected, actual, `${format} --jobs ${jobs}`);
    }
  }
});

test("jobs: out of time order, a time limit, and several inputs at once", async () => {
  const capture = await syntheticCapture("synth-small.pcap", 6_000, 500);
  // Swap neighbouring records now and then: the engine's clock then runs ahead of some packets.
  const shuffled = join(scratch, "shuffled.pcap");
  writeFileSync(shuffled, swapRecords(readFileSync(capture), 37));
  const swappedRun = await single([shuffled], { drain: true }, "text");
  assert.ok(swappedRun.result.engine.stats.timeWentBack > 10, "records earlier than the clock");
  assertSame(
    swappedRun,
    await inJobs([shuffled], { drain: true }, "text", 2, { roundRecords: 50 }),
    "shuffled",
  );

  const until = { until: { kind: "relative" as const, offsetNs: 2e9 } };
  const limited = await single([capture], until, "ndjson");
  assert.equal(limited.result.stoppedEarly, true);
  assertSame(limited, await inJobs([capture], until, "ndjson", 3, { roundRecords: 64 }), "--until");

  const inputs = [
    capture,
    join(samplesDir, "ftp-passive", "inside.pcap"),
    join(samplesDir, "tftp-read", "inside.pcap"),
  ];
  const merged = await single(inputs, { drain: true }, "csv");
  assertSame(merged, await inJobs(inputs, { drain: true }, "csv", 2, { roundRecords: 128 }), "three inputs");
});

test("jobs: the public capture corpus (fragments, link types, damage) as the single engine, events and report", async (t) => {
  if (!corpusAvailable()) {
    t.skip("../shared/corpus not present");
    return;
  }
  const readable: string[] = [];
  for (const entry of corpusEntries()) {
    try {
      const source = await openCapture(entry.path);
      await source.close();
      readable.push(entry.path);
    } catch {
      // Files our readers refuse are the robustness tests' business.
    }
  }
  assert.ok(readable.length > 500, `readable corpus files: ${readable.length}`);
  let fragments = 0;
  for (let start = 0; start < readable.length; start += 100) {
    const group = readable.slice(start, start + 100);
    const expected = await single(group, { drain: true }, "text");
    fragments += expected.result.accounting.classes.fragment;
    assertSame(
      expected,
      await inJobs(group, { drain: true }, "text", 3, { roundRecords: 500 }),
      `corpus ${start}+`,
    );
    // report's line files too (flows of every protocol the corpus holds).
    assertSameFiles(
      await lineFiles(group, { drain: true }, 1),
      await lineFiles(group, { drain: true }, 3, { roundRecords: 500 }),
      `report, corpus ${start}+`,
    );
  }
  assert.ok(fragments > 0, "the corpus has fragments (reassembled datagrams go to their worker bare)");
});

test("events --jobs: the command's output and --summary are the single run's; bad uses are refused", async () => {
  const capture = join(samplesDir, "ftp-active", "inside.pcap");
  const run = (extra: string[]) => {
    const output = join(scratch, `cli-${extra.join("_").replace(/\W/g, "")}.txt`);
    const result = runCli(["events", capture, "--drain", "--summary", "-o", output, ...extra]);
    assert.equal(result.status, 0, result.stderr);
    return { events: readFileSync(output, "utf8"), summary: result.stderr };
  };
  const one = run([]);
  const two = run(["--jobs", "2"]);
  assert.equal(two.events, one.events);
  const withoutMaxLive = (text: string) =>
    text
      .split("\n")
      .filter((line) => !line.includes("most live at once"))
      .join("\n");
  assert.equal(withoutMaxLive(two.summary), withoutMaxLive(one.summary));
  assert.match(two.summary, /most live at once \(sum over 2 jobs\)/);
  assert.equal(run(["--jobs", "auto"]).events, one.events);
  // report --jobs --summary gives the same accounting (its workers' replays added up).
  const reportSummary = (jobs: string) => {
    const result = runCli([
      "report",
      capture,
      "--drain",
      "--summary",
      "--jobs",
      jobs,
      "-o",
      join(scratch, `cli-report-${jobs}`),
    ]);
    assert.equal(result.status, 0, result.stderr);
    return result.stderr;
  };
  const reportTwo = reportSummary("2");
  assert.equal(withoutMaxLive(reportTwo), withoutMaxLive(reportSummary("1")));
  assert.match(reportTwo, /expectations created +2\n/);

  for (const [extra, message] of [
    [["--jobs", "0"], /--jobs: "0" is not a number of threads/],
    [["--jobs", "2", "--shard", "0/2"], /--jobs and --shard/],
    [["--jobs", "2", "--nat-observe"], /--jobs: observed NAT/],
    [["--jobs", "2", "--format", "json"], /--jobs: a JSON array/],
  ] as const) {
    const result = runCli(["events", capture, "-o", join(scratch, "refused.txt"), ...extra]);
    assert.equal(result.status, 2, `${extra.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
});

/** A classic pcap with every `every`-th record swapped with the one after it. */
function swapRecords(file: Buffer, every: number): Buffer {
  const records: Buffer[] = [];
  let at = 24;
  while (at + 16 <= file.length) {
    const length = 16 + file.readUInt32LE(at + 8);
    records.push(file.subarray(at, at + length));
    at += length;
  }
  for (let i = every; i + 1 < records.length; i += every)
    [records[i], records[i + 1]] = [records[i + 1], records[i]];
  return Buffer.concat([file.subarray(0, 24), ...records]);
}

test("report --jobs: every file is the single run's (samples, a synthetic capture)", async () => {
  const synthetic = await syntheticCapture("synth-report.pcap", 20_000, 1_500);
  const cases: { name: string; args: string[] }[] = [
    { name: "synthetic", args: [synthetic, "--drain"] },
    { name: "synthetic-live", args: [synthetic] },
    ...[
      "ftp-active",
      "tftp-read-nat-masquerade",
      "tcp-port-reuse-after-timewait",
      "icmp-port-unreachable",
    ].map((name) => ({
      name,
      args: [
        join(samplesDir, name, "inside.pcap"),
        "--sysctl",
        join(samplesDir, name, "sysctl.txt"),
        "--drain",
        ...(name.endsWith("-nat-masquerade") ? ["--masquerade", "out0=198.51.100.32"] : []),
      ],
    })),
  ];
  for (const { name, args } of cases) {
    const report = (jobs: string) => {
      const dir = join(scratch, `report-${name}-${jobs}`);
      const result = runCli(["report", ...args, "--jobs", jobs, "-o", dir]);
      assert.equal(result.status, 0, `${name} --jobs ${jobs}: ${result.stderr}`);
      assert.doesNotMatch(result.stderr, /not exactly one run's/, `${name} --jobs ${jobs}`);
      return dir;
    };
    const single = report("1");
    for (const jobs of ["2", "3"]) {
      const dir = report(jobs);
      // The report's files, and nothing else (the workers' scratch directory inside it is gone).
      assert.deepEqual(readdirSync(dir).sort(), [...REPORT_FILES].sort(), `${name} --jobs ${jobs}`);
      for (const file of REPORT_FILES)
        assert.equal(
          readFileSync(join(dir, file), "utf8"),
          readFileSync(join(single, file), "utf8"),
          `${name} --jobs ${jobs}: ${file}`,
        );
    }
  }
});

test("report, table and events --jobs read standard input (every worker gets all of it) as one run does", async () => {
  const synthetic = await syntheticCapture("synth-stdin.pcap", 20_000, 1_500);
  const ftp = join(samplesDir, "ftp-active", "inside.pcap");
  for (const [name, capture] of [
    ["ftp-active", ftp],
    ["synthetic", synthetic],
  ]) {
    const input = readFileSync(capture);
    const run = (args: string[]) => {
      const result = runCli(args, input);
      assert.equal(result.status, 0, `${name} ${args.join(" ")}: ${result.stderr}`);
      return result;
    };
    const reportDir = (jobs: string) => {
      const dir = join(scratch, `stdin-report-${name}-${jobs}`);
      run(["report", "-", "--drain", "--jobs", jobs, "-o", dir]);
      return dir;
    };
    const single = reportDir("1");
    const sharded = reportDir("2");
    for (const file of REPORT_FILES)
      assert.equal(
        readFileSync(join(sharded, file), "utf8"),
        readFileSync(join(single, file), "utf8"),
        `${name} report - --jobs 2: ${file}`,
      );
    for (const command of [
      ["table", "-", "--expect"],
      ["table", "-", "--at", "+1"],
      ["events", "-", "--drain"],
    ])
      assert.equal(
        run([...command, "--jobs", "2"]).stdout,
        run([...command, "--jobs", "1"]).stdout,
        `${name} ${command.join(" ")} --jobs 2`,
      );
  }
});

test("--jobs auto: one worker per CPU but one, none below 4 CPUs", () => {
  assert.deepEqual([1, 2, 3, 4, 8, 16].map(autoJobs), [1, 1, 1, 3, 7, 15]);
});

const LINE_FILES = ["flows.csv", "flows.ndjson", "events.csv", "expectations.csv"] as const;

/** `report --only` the line files, with one thread or written by `jobs` workers as the replay goes. */
async function lineFiles(
  files: string[],
  options: Omit<ReportOptions, "outputDir" | "only">,
  jobs: number,
  rounds: { roundRecords?: number; roundsInFlight?: number } = {},
): Promise<Record<string, string>> {
  const outputDir = mkdtempSync(join(scratch, "line-files-"));
  const only = [...LINE_FILES];
  const written =
    jobs === 1
      ? (await writeReport(files, { ...options, outputDir, only })).files
      : (await writeReportInJobs(files, { ...options, outputDir, only, jobs, ...rounds })).files;
  assert.deepEqual(readdirSync(outputDir).sort(), [...LINE_FILES].sort(), "the files asked for, no others");
  assert.equal(written.length, LINE_FILES.length);
  return Object.fromEntries(LINE_FILES.map((name) => [name, readFileSync(join(outputDir, name), "utf8")]));
}

function assertSameFiles(
  expected: Record<string, string>,
  actual: Record<string, string>,
  what: string,
): void {
  for (const name of LINE_FILES) assert.equal(actual[name], expected[name], `${what}: ${name}`);
}

test("report --jobs: flows, events and expectations written as the replay goes are the single run's (samples)", async () => {
  for (const name of recordedSamples(samplesDir)) {
    const { files, options: recorded } = await recordedSample(name);
    for (const drain of [true, false]) {
      const options = { ...recorded, drain };
      const expected = await lineFiles(files, options, 1);
      assert.ok(expected["flows.csv"].split("\n").length > 2, `${name}: flows`);
      assertSameFiles(
        expected,
        await lineFiles(files, options, 2, { roundRecords: 3 }),
        `${name} drain ${drain}`,
      );
    }
  }
});

test("report --jobs: line files in small rounds, live flows past a window, a time limit, events off", async () => {
  const capture = await syntheticCapture("synth-lines.pcap", 20_000, 1_500);
  for (const drain of [false, true]) {
    const expected = await lineFiles([capture], { drain }, 1);
    assert.ok(expected["flows.csv"].split("\n").length > 1_000, "many flows");
    for (const [jobs, roundRecords, roundsInFlight] of [
      [2, 8192, 3],
      [3, 97, 1],
      [4, 211, 4],
    ])
      assertSameFiles(
        expected,
        await lineFiles([capture], { drain }, jobs, { roundRecords, roundsInFlight }),
        `drain ${drain}, --jobs ${jobs}, rounds of ${roundRecords}`,
      );
  }

  // More flows live at the end than one window of ids (the workers write them a range at a time).
  const manyLive = await syntheticCaptureFile(join(scratch, "many-live-lines.pcap"), {
    packets: 24_000,
    conversations: 12_000,
    live: 12_000,
    seed: 13,
  });
  const live = await lineFiles([manyLive], {}, 1);
  assert.ok(
    live["flows.csv"].split("\n").filter((row) => row.includes(",live,")).length > 9_000,
    "live flows",
  );
  assertSameFiles(live, await lineFiles([manyLive], {}, 3, { roundRecords: 1024 }), "many live");

  const until = { until: { kind: "relative" as const, offsetNs: 2e9 } };
  assertSameFiles(
    await lineFiles([capture], until, 1),
    await lineFiles([capture], until, 2, { roundRecords: 64 }),
    "--until",
  );

  // nf_conntrack_events 0: events.csv lists none (a listener saw none), the flows are whole.
  const quiet = { settings: { "net.netfilter.nf_conntrack_events": 0 }, drain: true };
  const quietSingle = await lineFiles([capture], quiet, 1);
  assert.equal(quietSingle["events.csv"].split("\n").length, 2, "events.csv: the header only");
  assertSameFiles(quietSingle, await lineFiles([capture], quiet, 2, { roundRecords: 500 }), "events off");
});

test("report --jobs --only flows.csv reads standard input once, as one thread does", async () => {
  const capture = await syntheticCapture("synth-stdin-lines.pcap", 6_000, 500);
  const bytes = readFileSync(capture);
  const run = (jobs: string) => {
    const dir = join(scratch, `stdin-lines-${jobs}`);
    const result = runCli(
      ["report", "-", "--only", "flows.csv", "--summary", "--jobs", jobs, "-o", dir],
      bytes,
    );
    assert.equal(result.status, 0, result.stderr);
    return { flows: readFileSync(join(dir, "flows.csv"), "utf8"), summary: result.stderr };
  };
  const one = run("1");
  const two = run("2");
  assert.equal(two.flows, one.flows);
  assert.match(two.summary, /records +6000\n/);
});

test("report --jobs refuses observed NAT in the library too, line files or not (shards are by address pair)", async () => {
  const capture = join(samplesDir, "ftp-active", "inside.pcap");
  for (const only of [["flows.csv" as const], undefined])
    await assert.rejects(
      writeReportInJobs([capture], {
        outputDir: join(scratch, "observed-nat-refused"),
        jobs: 2,
        observedNat: { windowNs: 1e9 },
        ...(only === undefined ? {} : { only }),
      }),
      /not with observed NAT/,
    );
});
