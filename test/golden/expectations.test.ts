/**
 * Golden tests for expectations: for every recorded sample whose kernel printed expectation events,
 * the real pipeline (as `pcap-conntrack events inside.pcap --sysctl sysctl.txt --drain --expect` runs
 * it) must print the kernel's `conntrack -E expect -o timestamp` lines, text identical after the
 * timestamp, timeout and timestamp within the tolerances the connection-event comparison allows
 * (compareExpectStreams); and in the JSON output every RELATED connection must name its control
 * connection as master.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { replayCaptures } from "../../lib/pipeline/replay.js";
import { formatExpectEvent } from "../../lib/report/expect-text.js";
import {
  createEventFormatter,
  createExpectEventFormatter,
  type EventRecord,
  type ExpectEventRecord,
} from "../../lib/report/event-formats.js";
import { settingsFromArguments } from "../../cli/commands/events.js";
import { compareExpectStreams, parseExpectLine, type ExpectLine } from "./event-comparison.js";
import { natOptionsFor, recordedSamples } from "./sample-golden.js";

const SAMPLES_DIR = fileURLToPath(new URL("../../../samples", import.meta.url));

interface ScenarioMetadata {
  name: string;
  nat: string;
  kernelHz: number | null;
}

function samplesWithExpectations(): string[] {
  return recordedSamples(SAMPLES_DIR).filter((name) => {
    const recorded = join(SAMPLES_DIR, name, "expect-events.txt");
    return existsSync(recorded) && readFileSync(recorded, "utf8").trim() !== "";
  });
}

async function replaySample(folder: string, metadata: ScenarioMetadata) {
  const warnings: string[] = [];
  const settings = await settingsFromArguments(
    { sysctl: join(folder, "sysctl.txt"), hz: metadata.kernelHz ?? undefined },
    (message) => warnings.push(message),
  );
  assert.deepEqual(warnings, [], "the recorded sysctl.txt names only settings the model knows");
  const ours: ExpectLine[] = [];
  const eventsJson = createEventFormatter("json");
  const expectJson = createExpectEventFormatter("json");
  let connectionText = eventsJson.header();
  let expectText = expectJson.header();
  /** Position of each event of either stream in the combined order, by stream. */
  let sequence = 0;
  const connectionOrder: number[] = [];
  const expectOrder: number[] = [];
  const result = await replayCaptures([join(folder, "inside.pcap")], {
    settings,
    nat: natOptionsFor(metadata),
    drain: true,
    onEvent: (event) => {
      connectionText += eventsJson.format(event);
      connectionOrder.push(sequence++);
    },
    onExpectEvent: (event) => {
      ours.push({
        timeUs: event.tsSec * 1_000_000 + Math.floor(event.tsNsec / 1000),
        text: formatExpectEvent(event, { timestamp: false }),
        cause: event.cause,
      });
      expectText += expectJson.format(event);
      expectOrder.push(sequence++);
    },
  });
  assert.deepEqual(result.warnings, [], "the capture reads without warnings");
  return {
    result,
    ours,
    connections: JSON.parse(connectionText + eventsJson.footer()) as EventRecord[],
    expectations: JSON.parse(expectText + expectJson.footer()) as ExpectEventRecord[],
    connectionOrder,
    expectOrder,
  };
}

const samples = samplesWithExpectations();

test(
  "recorded samples with expectation events are present",
  { skip: samples.length === 0 && `none in ${SAMPLES_DIR}` },
  () => {
    assert.ok(samples.length > 0);
  },
);

for (const name of samples) {
  const folder = join(SAMPLES_DIR, name);
  const metadata = JSON.parse(readFileSync(join(folder, "scenario.json"), "utf8")) as ScenarioMetadata;
  test(`${name}: expectation events equal the kernel's, RELATED connections name their master`, async (t) => {
    const kernel = readFileSync(join(folder, "expect-events.txt"), "utf8")
      .split("\n")
      .filter((line) => line !== "")
      .map(parseExpectLine);
    const run = await replaySample(folder, metadata);

    const comparison = compareExpectStreams(kernel, run.ours);
    t.diagnostic(
      `${comparison.events} expectation events; timeouts one tick short: ${comparison.timeoutOneShort}; ` +
        `kernel read up to ${(comparison.maxListenerLagUs / 1000).toFixed(3)} ms after ours; ` +
        `with a GC-expired master up to ${(comparison.maxGcLateUs / 1000).toFixed(3)} ms late`,
    );
    assert.deepEqual(
      comparison.differences,
      [],
      `${name} differs from the kernel:\n${comparison.differences.join("\n")}`,
    );

    // The control connection is the one a helper was attached to; every RELATED one names it.
    const created = run.connections.filter((record) => record.type === "NEW");
    const controlNewAt = run.connectionOrder[run.connections.findIndex((record) => record.helper !== null)];
    const controls = created.filter((record) => record.helper !== null);
    assert.equal(controls.length, 1, "one control connection");
    const control = controls[0];
    assert.equal(control.masterId, null);
    const related = created.filter((record) => record.masterId !== null);
    assert.ok(related.length > 0, "the data connections are RELATED");
    assert.equal(related.length, run.result.engine.stats.expectations.used);
    assert.deepEqual(
      related.map((record) => record.masterId),
      related.map(() => control.id),
    );
    assert.equal(created.length, 1 + related.length, "every other connection is a data connection");
    // The expectation events name the same master, by tuple and by id, also where the master is
    // not confirmed yet (a TFTP request announces the reply before its own entry's NEW).
    assert.equal(run.expectations.length, kernel.length);
    for (const record of run.expectations) {
      assert.equal(record.masterId, control.id, `${record.type} at ${record.time}`);
      assert.deepEqual(record.master, control.original);
      assert.equal(record.helper, control.helper);
    }
    const beforeMasterNew = run.expectOrder.filter((position) => position < controlNewAt).length;
    assert.equal(beforeMasterNew, control.protocol === "udp" ? 1 : 0, "only TFTP announces before its NEW");
    assert.equal(run.result.expectEvents.NEW + run.result.expectEvents.DESTROY, kernel.length);
  });
}

test("the expectation stamp parser reads conntrack's space-padded microseconds", () => {
  assert.deepEqual(parseExpectLine("[1795616309.87756 ]\t    [NEW] 300 proto=6"), {
    timeUs: 1795616309_087756,
    text: "    [NEW] 300 proto=6",
  });
  assert.equal(parseExpectLine("[1795616775.117053]\t[DESTROY] 300").timeUs, 1795616775_117053);
  assert.throws(() => parseExpectLine("    [NEW] 300 proto=6"), /no conntrack -E expect -o timestamp prefix/);
});

const EXPECT_TEXT =
  "300 proto=17 src=203.0.113.47 dst=10.1.2.3 sport=0 dport=50729 mask-src=255.255.255.255 " +
  "mask-dst=255.255.255.255 sport=0 dport=65535 master-src=10.1.2.3 master-dst=203.0.113.47 " +
  "sport=50729 dport=69 class=0 helper=tftp";
const KERNEL_EXPECT = [
  { timeUs: 1795619683_591065, text: `    [NEW] ${EXPECT_TEXT}` },
  { timeUs: 1795619683_591329, text: `[DESTROY] ${EXPECT_TEXT.replace("300 ", "299 ")}` },
];

test("the expectation comparison accepts a timeout one tick short and nothing else", () => {
  const ours = [
    { timeUs: 1795619683_591000, text: `    [NEW] ${EXPECT_TEXT}` },
    { timeUs: 1795619683_591300, text: `[DESTROY] ${EXPECT_TEXT}`, cause: "used" },
  ];
  const agreeing = compareExpectStreams(KERNEL_EXPECT, ours);
  assert.deepEqual(agreeing.differences, []);
  assert.equal(agreeing.timeoutOneShort, 1);
  assert.equal(agreeing.maxListenerLagUs, 65);

  const firstLine = (kernel: ExpectLine[], mine: ExpectLine[]) =>
    compareExpectStreams(kernel, mine).differences.map((difference) => difference.split("\n")[0]);
  // The kernel's one more, two less, or a differing field beside the timeout: all differences.
  const kernelLonger = [
    KERNEL_EXPECT[0],
    { ...KERNEL_EXPECT[1], text: `[DESTROY] ${EXPECT_TEXT.replace("300 ", "301 ")}` },
  ];
  assert.deepEqual(firstLine(kernelLonger, ours), ["expectation event 2: timeout: kernel 301, ours 300"]);
  const twoShort = [
    KERNEL_EXPECT[0],
    { ...KERNEL_EXPECT[1], text: `[DESTROY] ${EXPECT_TEXT.replace("300 ", "298 ")}` },
  ];
  assert.deepEqual(firstLine(twoShort, ours), ["expectation event 2: timeout: kernel 298, ours 300"]);
  const otherPort = [
    { ...KERNEL_EXPECT[0], text: KERNEL_EXPECT[0].text.replace("dport=50729", "dport=50730") },
  ];
  assert.deepEqual(firstLine(otherPort, ours.slice(0, 1)), [
    "expectation event 1: the text beside the timeout",
  ]);
  assert.deepEqual(firstLine(KERNEL_EXPECT, ours.slice(0, 1)), [
    `expectation event 2: missing event, kernel has: ${KERNEL_EXPECT[1].text}`,
  ]);

  // Stamps: ours after the kernel's beyond capture skew, or the kernel's late beyond the read lag
  // unless the expectation went with a master the GC worker found.
  const late = [{ ...ours[0], timeUs: 1795619683_591065 + 3_000 }];
  assert.match(firstLine(KERNEL_EXPECT.slice(0, 1), late)[0], /time: ours 3\.000 ms after the kernel's/);
  const early = [{ ...ours[0], timeUs: 1795619683_591065 - 6_000 }];
  assert.match(firstLine(KERNEL_EXPECT.slice(0, 1), early)[0], /time: kernel 6\.000 ms after ours/);
  const withMaster = [{ ...early[0], cause: "master-destroyed" }];
  const gc = compareExpectStreams(KERNEL_EXPECT.slice(0, 1), withMaster);
  assert.deepEqual(gc.differences, []);
  assert.equal(gc.maxGcLateUs, 6_000);
});
