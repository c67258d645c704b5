/**
 * `check` over the recorded samples: every rule kind holding on a scenario where it should, and
 * broken on one where it must be, with the offending connections and their packet numbers.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parsePolicy } from "../../lib/check/policy.js";
import { runCheck, type CheckOutcome, type RuleResult } from "../../lib/check/evaluate.js";
import { replayCaptures } from "../../lib/pipeline/replay.js";
import { IPPROTO_TCP, TCP_RST, TCP_SYN } from "../../lib/decode/packet.js";
import {
  helperOptionsFromArguments,
  settingsFromArguments,
  type SettingsArguments,
} from "../../cli/commands/events.js";
import { repoRoot } from "../support/corpus.js";

const SAMPLES = join(repoRoot, "samples");
const POLICIES = join(SAMPLES, "policies");
const MASQUERADE = ["out0=198.51.100.32"];

function samplePresent(name: string): boolean {
  return existsSync(join(SAMPLES, name, "inside.pcap"));
}

interface RunOptions extends SettingsArguments {
  drain?: boolean;
  maxListed?: number;
}

/** Checks a sample's inside capture under the router's sysctl settings; `policy` is YAML or a policy file name. */
async function check(sample: string, policy: string, options: RunOptions = {}): Promise<CheckOutcome> {
  const { drain = true, maxListed, ...settingsArguments } = options;
  const directory = join(SAMPLES, sample);
  const text = policy.includes("\n") ? policy : readFileSync(join(POLICIES, policy), "utf8");
  const settings = await settingsFromArguments(
    { sysctl: join(directory, "sysctl.txt"), ...settingsArguments },
    () => undefined,
  );
  const { outcome } = await runCheck([join(directory, "inside.pcap")], parsePolicy(text, "policy.yaml"), {
    settings,
    ...helperOptionsFromArguments(settingsArguments),
    drain,
    maxListed,
  });
  return outcome;
}

function rule(outcome: CheckOutcome, id: string): RuleResult {
  const found = outcome.rules.find((candidate) => candidate.id === id);
  assert.ok(found, `no rule ${id} in ${outcome.rules.map((r) => r.id).join(", ")}`);
  return found;
}

function failedIds(outcome: CheckOutcome): string[] {
  return outcome.rules.filter((candidate) => !candidate.passed).map((candidate) => candidate.id);
}

/** Record numbers of the packets `want` picks, read by a separate replay. */
async function recordNumbers(
  sample: string,
  want: (flags: number, srcPort: number, dstPort: number) => boolean,
): Promise<number[]> {
  const numbers: number[] = [];
  await replayCaptures([join(SAMPLES, sample, "inside.pcap")], {
    onPacket: (record, _class, packet, verdict) => {
      if (
        verdict >= 0 &&
        packet.protocol === IPPROTO_TCP &&
        want(packet.tcpFlags, packet.srcPort, packet.dstPort)
      )
        numbers.push(record.recordNumber);
    },
  });
  return numbers;
}

const skipUnless = (...names: string[]) => {
  const missing = names.filter((name) => !samplePresent(name));
  return missing.length > 0 && `samples not recorded: ${missing.join(", ")}`;
};

test(
  "lab-client.yaml holds on the clean scenarios",
  { skip: skipUnless("tcp-client-close", "ping", "ftp-passive", "tftp-read") },
  async () => {
    for (const sample of [
      "tcp-client-close",
      "ping",
      "ping-ipv6",
      "udp-request-response",
      "ftp-passive",
      "tftp-read",
    ]) {
      if (!samplePresent(sample)) continue;
      const outcome = await check(sample, "lab-client.yaml");
      assert.deepEqual(
        failedIds(outcome),
        [],
        `${sample}: ${JSON.stringify(outcome.rules.filter((r) => !r.passed))}`,
      );
      assert.equal(outcome.passed, true);
      assert.equal(outcome.rules.length, 7);
    }
  },
);

test(
  "deny entry: the SSH attempt is denied, named by the packet that opened it",
  { skip: skipUnless("ssh-syn-unanswered", "tcp-client-close") },
  async () => {
    const outcome = await check("ssh-syn-unanswered", "lab-client.yaml");
    assert.deepEqual(failedIds(outcome), ["limits.unreplied-connections.tcp", "firewall.deny[0]"]);
    const deny = rule(outcome, "firewall.deny[0]");
    assert.equal(deny.violations, 1);
    const [offender] = deny.offenders;
    assert.ok(offender.type === "connection");
    assert.equal(offender.original.dport, 22);
    const syns = await recordNumbers(
      "ssh-syn-unanswered",
      (flags, _s, dport) => (flags & TCP_SYN) !== 0 && dport === 22,
    );
    assert.ok(syns.length >= 2, "the client retransmitted its SYN");
    assert.deepEqual(offender.firstPacket, {
      input: join(SAMPLES, "ssh-syn-unanswered/inside.pcap"),
      packet: syns[0],
    });
    assert.equal(offender.lastPacket?.packet, syns[syns.length - 1]);
    assert.equal(rule(await check("tcp-client-close", "lab-client.yaml"), "firewall.deny[0]").passed, true);
  },
);

test(
  "default deny: RELATED FTP data connections follow their control connection; without helpers they are judged",
  { skip: skipUnless("ftp-active-nat-none") },
  async () => {
    const withHelpers = await check("ftp-active-nat-none", "lab-client.yaml");
    assert.equal(rule(withHelpers, "firewall.default").passed, true);
    assert.equal(rule(withHelpers, "firewall.default").summary, "all 1 new connection allowed");
    const withoutHelpers = await check("ftp-active-nat-none", "lab-client.yaml", { helpers: false });
    const fallback = rule(withoutHelpers, "firewall.default");
    assert.equal(fallback.passed, false);
    assert.equal(fallback.violations, 2);
    for (const offender of fallback.offenders) {
      assert.ok(offender.type === "connection");
      assert.equal(offender.original.sport, 20, "the server's active-mode data connections");
      assert.equal(offender.why, "no allow entry matches");
    }
  },
);

test(
  "default deny: a UDP flow to a port no allow entry names",
  { skip: skipUnless("udp-unanswered") },
  async () => {
    const outcome = await check("udp-unanswered", "lab-client.yaml");
    assert.deepEqual(failedIds(outcome), ["firewall.default"]);
  },
);

test(
  "limits: RST-ended connections, refused (killed at once) and aborted (CLOSE until its timeout)",
  { skip: skipUnless("tcp-refused", "tcp-reset-midstream", "tcp-client-close") },
  async () => {
    const refused = rule(await check("tcp-refused", "echo-service.yaml"), "limits.rst-ended-connections");
    assert.equal(refused.passed, false);
    assert.equal(refused.summary, "1 connection, at most 0 allowed");
    const [offender] = refused.offenders;
    assert.ok(offender.type === "connection");
    const syn = await recordNumbers("tcp-refused", (flags) => (flags & TCP_SYN) !== 0);
    const rst = await recordNumbers("tcp-refused", (flags) => (flags & TCP_RST) !== 0);
    assert.equal(offender.firstPacket?.packet, syn[0]);
    assert.equal(offender.lastPacket?.packet, rst[0], "the RST that killed it is its last packet");
    const aborted = await check("tcp-reset-midstream", "echo-service.yaml");
    assert.deepEqual(failedIds(aborted), ["limits.rst-ended-connections"]);
    assert.equal((await check("tcp-client-close", "echo-service.yaml")).passed, true);
  },
);

test(
  "limits: unreplied connections per protocol",
  { skip: skipUnless("udp-unanswered", "udp-request-response") },
  async () => {
    const policy = "limits:\n  unreplied-connections: { udp: 0, tcp: 0 }\n";
    const unanswered = await check("udp-unanswered", policy);
    assert.deepEqual(failedIds(unanswered), ["limits.unreplied-connections.udp"]);
    assert.equal(rule(unanswered, "limits.unreplied-connections.udp").violations, 1);
    assert.equal((await check("udp-request-response", policy)).passed, true);
  },
);

test(
  "limits: connections still open at the end, unless drained",
  { skip: skipUnless("ssh-syn-unanswered") },
  async () => {
    const policy = "limits:\n  open-at-end: 0\n";
    const open = rule(await check("ssh-syn-unanswered", policy, { drain: false }), "limits.open-at-end");
    assert.equal(open.passed, false);
    const [offender] = open.offenders;
    assert.ok(offender.type === "connection" && offender.endReason === "live");
    assert.match(offender.why, /still live at the end/);
    assert.equal((await check("ssh-syn-unanswered", policy, { drain: true })).passed, true);
  },
);

test(
  "limits: INVALID packets and orphaned replies, counted in full, listed up to --max-listed",
  { skip: skipUnless("tcp-midstream-pickup") },
  async () => {
    const policy = "limits:\n  invalid-packets: { tcp: 0, udp: 0 }\n  orphaned-replies: 0\n  orphans: 20\n";
    const strict = await check("tcp-midstream-pickup", policy, { timeout: ["tcp_loose=0"], maxListed: 3 });
    assert.deepEqual(failedIds(strict), ["limits.invalid-packets.tcp", "limits.orphaned-replies"]);
    const invalid = rule(strict, "limits.invalid-packets.tcp");
    assert.equal(invalid.violations, strict.totals.invalidPackets);
    assert.ok(invalid.violations > 3);
    assert.equal(invalid.offenders.length, 3);
    assert.deepEqual(
      invalid.offenders.map((offender) => offender.type === "packet" && offender.packet),
      [1, 2, 3],
    );
    assert.match(invalid.offenders[0].why, /with no connection/);
    assert.equal(rule(strict, "limits.orphans").passed, true, "within its limit of 20");
    // Mid-stream pick-up on (the router's setting): the same packets are tracked.
    assert.equal((await check("tcp-midstream-pickup", policy)).passed, true);
  },
);

test(
  "require: established, replied, at-least",
  { skip: skipUnless("tcp-client-close", "tcp-refused", "udp-unanswered") },
  async () => {
    assert.equal((await check("tcp-client-close", "echo-service.yaml")).passed, true);
    const refused = rule(
      await check("tcp-refused", "require:\n  - { protocol: tcp, port: 8001, reach: established }\n"),
      "require[0]",
    );
    assert.equal(refused.passed, false);
    assert.equal(refused.summary, "1 matching connection, 0 established (at least 1 required)");
    assert.match(refused.offenders[0].why, /^not established \(CLOSE, UNREPLIED\)/);
    const twice = rule(
      await check("tcp-client-close", "require:\n  - { to: 203.0.113.47, port: 8000, at-least: 2 }\n"),
      "require[0]",
    );
    assert.equal(twice.passed, false);
    const replied = "require:\n  - { protocol: udp, port: [9000, 9001], reach: replied }\n";
    assert.equal(rule(await check("udp-unanswered", replied), "require[0]").passed, false);
    assert.equal(rule(await check("udp-request-response", replied), "require[0]").passed, true);
    const none = rule(await check("udp-request-response", "require:\n  - { protocol: tcp }\n"), "require[0]");
    assert.equal(none.summary, "no connection matches");
  },
);

test(
  "nat: the lab leaves as the router's address only with the router's rule",
  { skip: skipUnless("tcp-client-close-nat-masquerade") },
  async () => {
    const sample = "tcp-client-close-nat-masquerade";
    assert.equal((await check(sample, "masquerade.yaml", { masquerade: MASQUERADE })).passed, true);
    const without = await check(sample, "masquerade.yaml");
    assert.deepEqual(failedIds(without), ["nat[0]"]);
    const [offender] = rule(without, "nat[0]").offenders;
    assert.match(offender.why, /^left as 10\.1\.2\.3:\d+, expected 198\.51\.100\.32$/);
    const wrongPorts = await check(
      sample,
      "nat:\n  - { from: 10.1.2.3, leaves-as: '198.51.100.32:1-1023' }\n",
      {
        masquerade: MASQUERADE,
      },
    );
    assert.equal(wrongPorts.passed, false, "MASQUERADE kept the client's high port");
    const nothing = await check(sample, "nat:\n  - { from: 10.9.9.9, leaves-as: 198.51.100.32 }\n", {
      masquerade: MASQUERADE,
    });
    assert.equal(rule(nothing, "nat[0]").summary, "0 matching connections (at least 1 required)");
  },
);

test(
  "nat: destination NAT, forwarded-to the reply tuple's source",
  { skip: skipUnless("tcp-client-close") },
  async () => {
    const policy = "nat:\n  - { to: 203.0.113.47, port: 8000, forwarded-to: '10.9.9.9:80' }\n";
    assert.equal(
      (await check("tcp-client-close", policy, { dnat: ["tcp:203.0.113.47:8000=10.9.9.9:80"] })).passed,
      true,
    );
    const without = rule(await check("tcp-client-close", policy), "nat[0]");
    assert.equal(without.passed, false);
    assert.match(without.offenders[0].why, /^forwarded to 203\.0\.113\.47:8000, expected 10\.9\.9\.9:80$/);
  },
);

test("bounds: duration, bytes and packets", { skip: skipUnless("tcp-server-close") }, async () => {
  assert.equal(rule(await check("tcp-server-close", "echo-service.yaml"), "bounds[0]").passed, true);
  const tight = rule(
    await check("tcp-server-close", "bounds:\n  - { protocol: tcp, max-duration: 100ms, min-bytes: 1MB }\n"),
    "bounds[0]",
  );
  assert.equal(tight.passed, false);
  assert.match(tight.offenders[0].why, /^duration 0\.\d+ s > 0\.1 s, bytes \d+ < 1000000$/);
  const packets = rule(
    await check(
      "tcp-server-close",
      "bounds:\n  - { protocol: udp, max-packets: 1 }\n  - { max-packets: 2 }\n",
    ),
    "bounds[1]",
  );
  assert.equal(packets.passed, false);
});
