/**
 * Golden tests for observed NAT: the router's inside and outside captures replayed together
 * (`pcap-conntrack events inside.pcap outside.pcap --nat-observe`), no NAT rule given. For every
 * MASQUERADE recording our events, reply tuples included, and our expectation events equal the
 * router kernel's, with the tolerances of the other golden tests; for every recording without NAT
 * the two-vantage run tells what the inside capture alone tells.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { replayCaptures, type ReplayResult } from "../../lib/pipeline/replay.js";
import { Verdict } from "../../lib/conntrack/engine.js";
import { formatConntrackEvent } from "../../lib/report/conntrack-text.js";
import { formatExpectEvent } from "../../lib/report/expect-text.js";
import { settingsFromArguments } from "../../cli/commands/events.js";
import {
  compareEventStreams,
  compareExpectStreams,
  parseEventLine,
  parseEventText,
  parseExpectLine,
  type ExpectLine,
} from "./event-comparison.js";
import { NAT_KNOWN_DIFFERENCES, natOptionsFor, recordedSamples } from "./sample-golden.js";
import type { EngineNatOptions } from "../../lib/conntrack/engine.js";

const SAMPLES_DIR = fileURLToPath(new URL("../../../samples", import.meta.url));

interface ScenarioMetadata {
  name: string;
  nat: string;
  kernelHz: number | null;
}

interface Run {
  result: ReplayResult;
  lines: string[];
  unstamped: string[];
  expect: ExpectLine[];
}

async function replay(
  folder: string,
  metadata: ScenarioMetadata,
  files: string[],
  observe: boolean,
  nat: EngineNatOptions | null = null,
) {
  const warnings: string[] = [];
  const settings = await settingsFromArguments(
    { sysctl: join(folder, "sysctl.txt"), hz: metadata.kernelHz ?? undefined },
    (message) => warnings.push(message),
  );
  assert.deepEqual(warnings, []);
  const run: Omit<Run, "result"> = { lines: [], unstamped: [], expect: [] };
  const result = await replayCaptures(
    files.map((file) => join(folder, file)),
    {
      settings,
      observedNat: observe ? {} : null,
      nat,
      drain: true,
      onEvent: (event) => {
        run.lines.push(formatConntrackEvent(event));
        run.unstamped.push(formatConntrackEvent(event, { timestamp: false }));
      },
      onExpectEvent: (event) =>
        run.expect.push({
          timeUs: event.tsSec * 1_000_000 + Math.floor(event.tsNsec / 1000),
          text: formatExpectEvent(event, { timestamp: false }),
          cause: event.cause,
        }),
    },
  );
  assert.deepEqual(result.warnings, [], "the captures read without warnings");
  return { ...run, result };
}

/** Every record is accounted for: each packet seen twice is tracked once. */
function assertReconciles(result: ReplayResult): void {
  const stats = result.observedNat;
  assert.ok(stats !== null && stats !== undefined, "the observed-NAT stage ran");
  assert.ok(stats.pairs > 0, "packets were seen on both sides");
  assert.equal(result.accounting.duplicateSightings, stats.pairs);
  assert.equal(result.accounting.classes.decoded, result.tracked + result.accounting.duplicateSightings);
  assert.equal(result.engine.stats.packets, result.tracked);
  assert.equal(stats.releasedEarly, 0);
  assert.equal(result.engine.stats.timeWentBack, 0, "the engine got the packets in time order");
}

const samples = recordedSamples(SAMPLES_DIR).filter((name) =>
  existsSync(join(SAMPLES_DIR, name, "outside.pcap")),
);

test("recorded samples with both captures are present", { skip: samples.length === 0 }, () => {
  assert.ok(samples.length > 0);
});

for (const name of samples) {
  const folder = join(SAMPLES_DIR, name);
  const metadata = JSON.parse(readFileSync(join(folder, "scenario.json"), "utf8")) as ScenarioMetadata;
  const kernelText = readFileSync(join(folder, "conntrack-events.txt"), "utf8");
  const expectPath = join(folder, "expect-events.txt");
  const kernelExpect = existsSync(expectPath)
    ? readFileSync(expectPath, "utf8")
        .split("\n")
        .filter((line) => line !== "")
        .map(parseExpectLine)
    : [];

  if (metadata.nat !== "none") {
    test(`${name}: inside + outside observed equal the router kernel's events, reply tuples included`, async (t) => {
      const run = await replay(folder, metadata, ["inside.pcap", "outside.pcap"], true);
      assertReconciles(run.result);
      const stats = run.result.observedNat!;
      assert.ok(stats.translatedPairs > 0, "the sightings differ by the translation");
      assert.ok(run.result.engine.stats.nat.observed > 0, "connections got their NAT from observation");

      const comparison = compareEventStreams(parseEventText(kernelText), run.lines.map(parseEventLine));
      t.diagnostic(
        `${comparison.events} kernel events; ${stats.pairs} packets seen twice (${stats.translatedPairs} ` +
          `translated), ${stats.single} once; kernel read up to ` +
          `${(comparison.maxListenerLagUs / 1000).toFixed(3)} ms after ours`,
      );
      const known = NAT_KNOWN_DIFFERENCES[name];
      const firstLines = comparison.differences.map((difference) => difference.split("\n")[0]);
      if (known !== undefined && firstLines.length > 0) {
        // The same race as with the inside capture (see NAT_KNOWN_DIFFERENCES), seen from both sides.
        assert.equal(firstLines.length, known.differences.length, firstLines.join("\n"));
        known.differences.forEach((pattern, i) => assert.match(firstLines[i], pattern));
      } else {
        assert.deepEqual(comparison.differences, [], comparison.differences.join("\n"));
      }

      const expectComparison = compareExpectStreams(kernelExpect, run.expect);
      assert.deepEqual(expectComparison.differences, [], expectComparison.differences.join("\n"));

      // Given the router's rule as well (for what is seen on one side only), observation wins: the
      // same events, and no sequence adjustment modelled on top of the one observed.
      const rules = natOptionsFor(metadata)!;
      const withRules = await replay(folder, metadata, ["inside.pcap", "outside.pcap"], true, {
        ...rules,
        vantage: "arrival",
      });
      assert.deepEqual(withRules.lines, run.lines);
      assert.deepEqual(withRules.expect, run.expect);
    });
    continue;
  }

  test(`${name}: inside + outside observed tell what the inside capture tells (no NAT)`, async () => {
    const observed = await replay(folder, metadata, ["inside.pcap", "outside.pcap"], true);
    const single = await replay(folder, metadata, ["inside.pcap"], false);
    assertReconciles(observed.result);
    assert.equal(observed.result.observedNat!.translatedPairs, 0);
    assert.equal(observed.result.engine.stats.nat.translated, 0);
    assert.deepEqual(observed.unstamped, single.unstamped);
    assert.deepEqual(
      observed.expect.map((line) => line.text),
      single.expect.map((line) => line.text),
    );
    // Untracked packets aside (the outside link's own neighbour discovery), the verdicts are the same.
    const tracked = (result: ReplayResult) =>
      result.engine.stats.verdicts.filter((_count, verdict) => verdict !== Verdict.Ignored);
    assert.deepEqual(tracked(observed.result), tracked(single.result));
    // And the kernel agrees, as it does with the inside capture alone.
    const comparison = compareEventStreams(parseEventText(kernelText), observed.lines.map(parseEventLine));
    assert.deepEqual(comparison.differences, [], comparison.differences.join("\n"));
  });
}
