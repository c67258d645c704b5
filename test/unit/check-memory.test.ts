/**
 * `check` holds an ended flow only while its last packet's number is not known yet, not every flow; the
 * packets it names for a connection are its first and its last.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicy } from "../../lib/check/policy.js";
import { runCheck } from "../../lib/check/evaluate.js";
import { syntheticCaptureFile } from "../support/synth-file.js";
import { openCapture } from "../../lib/capture/open.js";
import { forEachRecord } from "../../lib/capture/source.js";
import { PacketDecoder } from "../../lib/decode/decoder.js";
import { IPPROTO_TCP, TCP_RST } from "../../lib/decode/packet.js";

const scratch = mkdtempSync(join(tmpdir(), "check-memory-"));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

/** A synthetic capture of 20 000 packets over 1 500 conversations. */
function synthetic(seed: number): Promise<string> {
  return syntheticCaptureFile(join(scratch, `synth-${seed}.pcap`), {
    packets: 20_000,
    conversations: 1_500,
    seed,
  });
}

test("check judges flows as they end: a drain or the end of the input holds no record per connection", async () => {
  const capture = await synthetic(5);
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
});

test("check names each connection's first and last packet: the last of a RST-ended one is its RST", async () => {
  const capture = await synthetic(6);
  // Every record's TCP flags, by record number (1-based).
  const flags: number[] = [0];
  const source = await openCapture(capture);
  const decoder = new PacketDecoder();
  await forEachRecord(source, (record) => {
    decoder.decode(record);
    flags[record.recordNumber] = decoder.packet.protocol === IPPROTO_TCP ? decoder.packet.tcpFlags : 0;
  });
  await source.close();
  const policy = parsePolicy(
    "limits:\n  rst-ended-connections: 0\n  unreplied-connections: { udp: 0, tcp: 0 }\n",
    "policy.yaml",
  );
  const { outcome } = await runCheck([capture], policy, { drain: true, maxListed: 100_000 });
  let resets = 0;
  let listed = 0;
  for (const rule of outcome.rules)
    for (const offender of rule.offenders) {
      if (offender.type !== "connection") continue;
      listed++;
      assert.ok(offender.firstPacket !== null && offender.lastPacket !== null, `${offender.id}: packets`);
      assert.ok(offender.firstPacket.packet <= offender.lastPacket.packet, `${offender.id}: first <= last`);
      if (offender.endReason !== "reset") continue;
      resets++;
      assert.ok((flags[offender.lastPacket.packet] & TCP_RST) !== 0, `${offender.id}: last packet is a RST`);
    }
  assert.ok(listed > 200 && resets > 30, `${listed} connections listed, ${resets} ended by a RST`);
});
