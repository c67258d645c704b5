/** The policy evaluator on hand-made connection records: what each rule looks at. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicy } from "../../lib/check/policy.js";
import { PolicyEvaluator } from "../../lib/check/evaluate.js";
import type { FlowRecord } from "../../lib/report/flows.js";
import type { TupleRecord } from "../../lib/report/event-formats.js";

let nextId = 1;

/** A TCP connection record; `reply` defaults to the inverted original (no NAT). */
function connection(original: TupleRecord, extra: Partial<FlowRecord> = {}): FlowRecord {
  const reply = extra.reply ?? {
    src: original.dst,
    dst: original.src,
    sport: original.dport,
    dport: original.sport,
  };
  return {
    id: nextId++,
    protocol: "tcp",
    protocolNumber: 6,
    family: original.src.includes(":") ? 6 : 4,
    original,
    reply,
    nat: "none",
    firstPacket: "",
    lastPacket: "",
    duration: 0.5,
    history: [{ state: "SYN_SENT", time: "", offset: 0 }],
    historyOmitted: 0,
    finalState: "TIME_WAIT",
    endReason: "timeout",
    endDetail: "timeout in TIME_WAIT",
    endTime: null,
    expiresAt: null,
    expiresIn: null,
    flags: ["SEEN_REPLY", "ASSURED"],
    replyAfter: 0,
    assuredAfter: 0,
    originalPackets: 5,
    originalBytes: 400,
    replyPackets: 4,
    replyBytes: 300,
    helper: null,
    masterId: null,
    communityId: "",
    ...extra,
  };
}

function evaluate(policyText: string, records: FlowRecord[], maxListed?: number) {
  const evaluator = new PolicyEvaluator(parsePolicy(policyText, "p.yaml"), { maxListed });
  evaluator.inputNames = ["in.pcap"];
  for (const record of records) evaluator.addFlow(record, { firstInput: 0, first: 7, lastInput: 0, last: 9 });
  return evaluator.finish(["in.pcap"]);
}

test("the firewall judges the destination after DNAT, as the FORWARD chain sees it", () => {
  const forwarded = connection(
    { src: "192.0.2.1", dst: "198.51.100.32", sport: 50000, dport: 2222 },
    { reply: { src: "10.1.2.9", dst: "192.0.2.1", sport: 22, dport: 50000 }, nat: "dnat" },
  );
  const outcome = evaluate("firewall:\n  deny:\n    - { to: 10.1.2.0/24, port: 22 }\n", [forwarded]);
  const [deny] = outcome.rules;
  assert.equal(deny.passed, false);
  const [offender] = deny.offenders;
  assert.ok(offender.type === "connection");
  assert.deepEqual(offender.firstPacket, { input: "in.pcap", packet: 7 });
  assert.deepEqual(offender.lastPacket, { input: "in.pcap", packet: 9 });
  // The original destination alone does not match.
  const plain = connection({ src: "192.0.2.1", dst: "198.51.100.32", sport: 50000, dport: 2222 });
  assert.equal(evaluate("firewall:\n  deny:\n    - { to: 10.1.2.0/24, port: 22 }\n", [plain]).passed, true);
});

test("RELATED connections follow their master: the firewall does not judge them, the other rules do", () => {
  const data = connection(
    { src: "203.0.113.47", dst: "10.1.2.3", sport: 20, dport: 40000 },
    { flags: ["SEEN_REPLY", "ASSURED", "RELATED"], masterId: 1 },
  );
  const policy = [
    "inside: [10.1.2.0/24]",
    "firewall:",
    "  default: deny",
    "  allow: [{ direction: outbound }]",
    "  deny: [{ direction: inbound }]",
    "bounds:",
    "  - { direction: inbound, max-bytes: 100 }",
  ].join("\n");
  const outcome = evaluate(policy, [data]);
  assert.deepEqual(
    outcome.rules.map((rule) => `${rule.id} ${rule.passed}`),
    ["firewall.default true", "firewall.deny[0] true", "bounds[0] false"],
  );
  const judged = evaluate(policy, [
    connection({ src: "203.0.113.47", dst: "10.1.2.3", sport: 20, dport: 40000 }),
  ]);
  assert.deepEqual(
    judged.rules.map((rule) => `${rule.id} ${rule.passed} ${rule.violations}`),
    // An explicitly denied connection is the deny entry's violation only, not the default's.
    ["firewall.default true 0", "firewall.deny[0] false 1", "bounds[0] false 1"],
  );
  assert.equal(judged.rules[0].summary, "all 0 new connections allowed (1 more matched a deny entry)");
});

test("a limit holds at its maximum and breaks one over it; every offender is counted, --max-listed are listed", () => {
  const refused = () =>
    connection(
      { src: "10.1.2.3", dst: "203.0.113.47", sport: 40000 + nextId, dport: 8001 },
      { flags: ["UNREPLIED"], endReason: "reset", finalState: "CLOSE", endDetail: "RST in CLOSE" },
    );
  const policy = "limits:\n  rst-ended-connections: 2\n";
  assert.equal(evaluate(policy, [refused(), refused()]).passed, true);
  const over = evaluate(policy, [refused(), refused(), refused()], 1);
  const [limit] = over.rules;
  assert.equal(limit.passed, false);
  assert.equal(limit.violations, 3);
  assert.equal(limit.offenders.length, 1);
  assert.equal(limit.summary, "3 connections, at most 2 allowed");
  const none = evaluate(policy, [refused(), refused(), refused()], 0);
  assert.equal(none.rules[0].offenders.length, 0);
  assert.equal(none.rules[0].violations, 3);
});

test("nat: the reply tuple's destination is where the source left as, ports included", () => {
  const masqueraded = connection(
    { src: "10.1.2.3", dst: "203.0.113.47", sport: 40000, dport: 8000 },
    { reply: { src: "203.0.113.47", dst: "198.51.100.32", sport: 8000, dport: 1024 }, nat: "snat" },
  );
  const holds = (expect: string) =>
    evaluate(`nat:\n  - { from: 10.1.2.0/24, leaves-as: '${expect}' }\n`, [masqueraded]).passed;
  assert.equal(holds("198.51.100.32"), true);
  assert.equal(holds("198.51.100.0/24"), true);
  assert.equal(holds("198.51.100.32:1024-2047"), true);
  assert.equal(holds("198.51.100.32:40000"), false);
  assert.equal(holds("198.51.100.33"), false);
  assert.equal(holds("2001:db8::32"), false);
});

test("IPv6 networks, port ranges and protocol lists", () => {
  const v6 = connection({ src: "2001:db8:1::3", dst: "2001:db8:2::47", sport: 50000, dport: 8080 });
  const deny = (entry: string) => !evaluate(`firewall:\n  deny:\n    - ${entry}\n`, [v6]).passed;
  assert.equal(deny("{ from: '2001:db8:1::/64' }"), true);
  assert.equal(deny("{ from: '2001:db8:1::/64', port: 8000-8099 }"), true);
  assert.equal(deny("{ from: '2001:db8:1::/64', port: [80, 443] }"), false);
  assert.equal(deny("{ from: 10.0.0.0/8 }"), false);
  assert.equal(deny("{ from: any }"), false, "any is IPv4's 0.0.0.0/0");
  assert.equal(deny("{ from: any6 }"), true);
  assert.equal(deny("{ protocol: [udp, icmpv6] }"), false);
  assert.equal(deny("{ protocol: [udp, 6] }"), true);
});
