/**
 * The golden comparison of a folder of kernel recordings: for each sample (samples/<scenario>/:
 * inside.pcap, sysctl.txt, conntrack-events.txt, scenario.json), our events under the router's
 * settings against the kernel's own `conntrack -E -o timestamp` lines. Used for the committed samples
 * and for recordings made afresh on the machine running the tests.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { replayCaptures } from "../../lib/pipeline/replay.js";
import { formatConntrackEvent } from "../../lib/report/conntrack-text.js";
import { settingsFromArguments } from "../../cli/commands/events.js";
import { compareEventStreams, parseEventLine, parseEventText, type Comparison } from "./event-comparison.js";

interface ScenarioMetadata {
  name: string;
  nat: string;
  kernelHz: number | null;
}

export function recordedSamples(samplesDir: string): string[] {
  if (!existsSync(samplesDir)) return [];
  return readdirSync(samplesDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(samplesDir, entry.name, "scenario.json")))
    .map((entry) => entry.name)
    .sort();
}

/** Our events for a sample, as `pcap-conntrack events inside.pcap --sysctl sysctl.txt --drain` prints them. */
async function ourEventLines(directory: string, metadata: ScenarioMetadata): Promise<string[]> {
  const warnings: string[] = [];
  const settings = await settingsFromArguments(
    { sysctl: join(directory, "sysctl.txt"), hz: metadata.kernelHz ?? undefined },
    (message) => warnings.push(message),
  );
  assert.deepEqual(warnings, [], "the recorded sysctl.txt names only settings the model knows");
  const lines: string[] = [];
  const result = await replayCaptures([join(directory, "inside.pcap")], {
    settings,
    drain: true,
    onEvent: (event) => lines.push(formatConntrackEvent(event)),
  });
  assert.deepEqual(result.warnings, [], "the capture reads without warnings");
  return lines;
}

function describe(comparison: Comparison): string {
  return (
    `${comparison.connections} connections, ${comparison.events} kernel events; ` +
    `timeouts one tick short: ${comparison.timeoutOneShort}; ` +
    `kernel NEW/UPDATE read up to ${(comparison.maxListenerLagUs / 1000).toFixed(3)} ms after ours; ` +
    `GC DESTROY up to ${(comparison.maxGcLateUs / 1000).toFixed(3)} ms late`
  );
}

/** Registers one test per recorded sample in `samplesDir` (NAT samples: skipped, the NAT issue's). */
export function registerSampleTests(samplesDir: string): void {
  const samples = recordedSamples(samplesDir);

  test(
    "recorded kernel samples are present",
    { skip: samples.length === 0 && `none in ${samplesDir} yet` },
    () => {
      assert.ok(samples.length > 0);
    },
  );

  for (const name of samples) {
    const directory = join(samplesDir, name);
    const metadata = JSON.parse(readFileSync(join(directory, "scenario.json"), "utf8")) as ScenarioMetadata;
    if (metadata.nat !== "none") {
      test(
        `${name}: events equal the kernel's`,
        { skip: `NAT ${metadata.nat}: the NAT issue's sample` },
        () => {},
      );
      continue;
    }
    test(`${name}: events equal the kernel's`, async (t) => {
      const kernel = parseEventText(readFileSync(join(directory, "conntrack-events.txt"), "utf8"));
      const ours = (await ourEventLines(directory, metadata)).map(parseEventLine);
      const comparison = compareEventStreams(kernel, ours);
      t.diagnostic(describe(comparison));
      assert.ok(kernel.length > 0, "the recording holds events");
      assert.deepEqual(
        comparison.differences,
        [],
        `${name} differs from the kernel:\n${comparison.differences.join("\n")}`,
      );
    });
  }
}
