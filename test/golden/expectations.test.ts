/**
 * Golden tests for expectations: for every recorded sample whose kernel printed expectation events,
 * the real pipeline (as `pcap-conntrack events inside.pcap --sysctl sysctl.txt --drain --expect` runs
 * it) must print the kernel's `conntrack -E expect -o timestamp` lines, text identical after the
 * timestamp and timestamps within the tolerances the connection-event comparison allows; and in the
 * JSON output every RELATED connection must name its control connection as master.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
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
import { TOLERANCES } from "./event-comparison.js";

const SAMPLES_DIR =
  process.env.PCAP_CONNTRACK_SAMPLES ?? fileURLToPath(new URL("../../../samples", import.meta.url));

interface ScenarioMetadata {
  nat: string;
  kernelHz: number | null;
}

interface TimedLine {
  /** Microseconds since the epoch. */
  timeUs: number;
  /** The line after the `[sec.usec]\t` prefix. */
  text: string;
  /** Ours only: why a DESTROY happened. */
  cause?: string;
}

/**
 * conntrack 1.4.7 prints an expectation's stamp as `[%-8ld.%-6ld]`: the microseconds are a number
 * left-aligned in six columns, so `[1795616309.87756 ]` is .087756 s (its leading zero is lost).
 */
function parseExpectLine(line: string): TimedLine {
  const match = /^\[(\d+) *\.(\d+) *\]\t(.*)$/.exec(line);
  if (!match) throw new Error(`no conntrack -E expect -o timestamp prefix: ${line}`);
  return { timeUs: Number(match[1]) * 1_000_000 + Number(match[2]), text: match[3] };
}

function samplesWithExpectations(): string[] {
  if (!existsSync(SAMPLES_DIR)) return [];
  return readdirSync(SAMPLES_DIR, { withFileTypes: true })
    .filter((entry) => {
      const folder = join(SAMPLES_DIR, entry.name);
      const recorded = join(folder, "expect-events.txt");
      return (
        entry.isDirectory() &&
        existsSync(join(folder, "scenario.json")) &&
        existsSync(recorded) &&
        readFileSync(recorded, "utf8").trim() !== ""
      );
    })
    .map((entry) => entry.name)
    .sort();
}

async function replaySample(folder: string, metadata: ScenarioMetadata) {
  const warnings: string[] = [];
  const settings = await settingsFromArguments(
    { sysctl: join(folder, "sysctl.txt"), hz: metadata.kernelHz ?? undefined },
    (message) => warnings.push(message),
  );
  assert.deepEqual(warnings, [], "the recorded sysctl.txt names only settings the model knows");
  const ours: TimedLine[] = [];
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
  if (metadata.nat !== "none") {
    test(
      `${name}: expectation events equal the kernel's`,
      { skip: `NAT ${metadata.nat}: expectations through NAT belong to the NAT issue` },
      () => {},
    );
    continue;
  }

  test(`${name}: expectation events equal the kernel's, RELATED connections name their master`, async (t) => {
    const kernel = readFileSync(join(folder, "expect-events.txt"), "utf8")
      .split("\n")
      .filter((line) => line !== "")
      .map(parseExpectLine);
    const run = await replaySample(folder, metadata);

    assert.deepEqual(
      run.ours.map((line) => line.text),
      kernel.map((line) => line.text),
      "the same expectation lines in the same order",
    );
    let maxLagUs = 0;
    run.ours.forEach((line, i) => {
      const lagUs = kernel[i].timeUs - line.timeUs;
      assert.ok(
        -lagUs <= TOLERANCES.syncEarlyUs,
        `line ${i + 1}: ours ${(-lagUs / 1000).toFixed(3)} ms after the kernel's: ${line.text}`,
      );
      // A master that died of old age is found by the GC worker, which takes its expectations along.
      const allowedUs = line.cause === "master-destroyed" ? TOLERANCES.gcLateUs : TOLERANCES.listenerLagUs;
      assert.ok(
        lagUs <= allowedUs,
        `line ${i + 1}: kernel ${(lagUs / 1000).toFixed(3)} ms after ours (allowed ${allowedUs / 1000} ms): ${line.text}`,
      );
      maxLagUs = Math.max(maxLagUs, lagUs);
    });
    t.diagnostic(
      `${kernel.length} expectation events; kernel read up to ${(maxLagUs / 1000).toFixed(3)} ms after ours`,
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
    // The expectation events name the same master, by tuple, and by id once it has one (a TFTP
    // request announces the reply before its own entry is confirmed and numbered).
    assert.equal(run.expectations.length, kernel.length);
    for (const [i, record] of run.expectations.entries()) {
      const confirmed = run.expectOrder[i] > controlNewAt;
      assert.equal(record.masterId, confirmed ? control.id : null, `${record.type} at ${record.time}`);
      assert.deepEqual(record.master, control.original);
      assert.equal(record.helper, control.helper);
    }
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
