/** `check` holds an ended flow only while its last packet's number is not known yet, not every flow. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicy } from "../../lib/check/policy.js";
import { runCheck } from "../../lib/check/evaluate.js";
import { syntheticCaptureFile } from "../support/synth-file.js";

test("check judges flows as they end: a drain or the end of the input holds no record per connection", async () => {
  const directory = mkdtempSync(join(tmpdir(), "check-memory-"));
  try {
    const capture = await syntheticCaptureFile(join(directory, "synth.pcap"), {
      packets: 20_000,
      conversations: 1_500,
      seed: 5,
    });
    const policy = parsePolicy(
      "limits:\n  rst-ended-connections: 0\n  unreplied-connections: { tcp: 0 }\n  open-at-end: 0\n",
      "policy.yaml",
    );
    for (const drain of [false, true]) {
      const { outcome, replay, flowsHeldAtMost } = await runCheck([capture], policy, { drain });
      const connections = replay.engine.stats.connectionsCreated;
      assert.ok(connections > 1000, `${connections} connections`);
      // Only RST-killed flows (and any ending after one within the same packet) wait for the packet.
      assert.ok(flowsHeldAtMost <= 3, `drain ${drain}: ${flowsHeldAtMost} flows held at once`);
      const rst = outcome.rules.find((rule) => rule.id === "limits.rst-ended-connections");
      assert.ok(rst !== undefined && rst.violations > 0, "RST-ended connections were judged");
      const open = outcome.rules.find((rule) => rule.id === "limits.open-at-end");
      assert.equal(open?.passed, drain, `drain ${drain}: connections open at the end`);
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
