import { test } from "node:test";
import assert from "node:assert/strict";
import { PacketAccounting } from "../../lib/pipeline/accounting.js";
import { PacketClass } from "../../lib/decode/packet.js";
import { parseDurationNs } from "../../cli/options.js";

test("every record lands in one class and the totals reconcile per input and overall", () => {
  const accounting = new PacketAccounting(2);
  accounting.count(0, PacketClass.Decoded, "");
  accounting.count(0, PacketClass.Decoded, "");
  accounting.count(0, PacketClass.Malformed, "ipv4 header length below 20");
  accounting.count(1, PacketClass.Truncated, "tcp header cut");
  accounting.count(1, PacketClass.NonIp, "");
  accounting.count(1, PacketClass.Malformed, "ipv4 header length below 20");
  assert.equal(accounting.recordsOf(0), 3);
  assert.equal(accounting.recordsOf(1), 3);
  assert.equal(accounting.records, 6);
  assert.deepEqual(accounting.classes, {
    decoded: 2,
    fragment: 0,
    "non-ip": 1,
    "unsupported-link": 0,
    truncated: 1,
    malformed: 2,
  });
  assert.deepEqual(accounting.reasons, {
    "malformed: ipv4 header length below 20": 2,
    "truncated: tcp header cut": 1,
  });
  const sum = Object.values(accounting.classes).reduce((a, b) => a + b, 0);
  assert.equal(sum, accounting.records);
});

test("durations accept units and reject nonsense", () => {
  assert.equal(parseDurationNs("0", "w"), 0);
  assert.equal(parseDurationNs("200ms", "w"), 200e6);
  assert.equal(parseDurationNs("1.5", "w"), 1.5e9);
  assert.equal(parseDurationNs("250us", "w"), 250e3);
  assert.throws(
    () => parseDurationNs("soon", "reorder-window"),
    /--reorder-window: "soon" is not a duration/,
  );
});
