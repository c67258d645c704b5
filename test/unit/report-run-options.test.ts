/**
 * summary.json's `options` names the NAT device and the helpers the replay ran with: the NAT rules
 * read back as iptables-save reads them (the text parses to the same rules), their origins, the
 * vantage and the interface addresses.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { natRulesFromFlags, parseNatRules } from "../../lib/conntrack/nat/index.js";
import { writeReport } from "../../lib/pipeline/report.js";
import { DEFAULT_HELPER_PORTS } from "../../lib/pipeline/replay.js";
import {
  describeHelperSettings,
  describeNatSettings,
  type NatRuleDescription,
} from "../../lib/report/run-options.js";
import { repoRoot } from "../support/corpus.js";

const RULES = [
  "-A PREROUTING -i out0 -p udp --dport 53 -j DNAT --to-destination 10.1.2.3",
  "-A PREROUTING ! -s 192.168.0.0/255.255.0.255 -p tcp --dport 80 -j REDIRECT --to-ports 3128",
  "-A PREROUTING -d 198.51.100.32/32 -p tcp -m multiport --dports 8080,8443:8444 -j DNAT --to-destination 10.1.2.4:80-81 --persistent",
  "-A POSTROUTING -j SOURCES",
  "-A POSTROUTING -o out0 -j MASQUERADE --to-ports 20000-29999 --random-fully",
  "-A SOURCES -s 10.1.0.0/16 ! -d 10.0.0.0/8 -o out+ ! -p icmp -j SNAT --to-source 198.51.100.32-198.51.100.40:2000-3000 --random",
  "-A SOURCES -p tcp --sport 1024:65535 -g DONE",
  "-A DONE -j RETURN",
];

function rulesFile(lines: readonly string[]): string {
  return [
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    ":INPUT ACCEPT [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":POSTROUTING ACCEPT [0:0]",
    ":SOURCES - [0:0]",
    ":DONE - [0:0]",
    ...lines,
    "COMMIT",
    "",
  ].join("\n");
}

test("each NAT rule is named in iptables-save syntax that reads back to the same rule", () => {
  const parsed = parseNatRules(rulesFile(RULES), "nat.rules");
  assert.deepEqual(parsed.errors, []);
  const described = describeNatSettings({ rules: parsed.rules, vantage: "arrival" })!;
  assert.equal(described.vantage, "arrival");
  const byOrigin = (a: NatRuleDescription, b: NatRuleDescription): number =>
    Number(a.origin.split(":")[1]) - Number(b.origin.split(":")[1]);
  const texts = [...described.rules].sort(byOrigin).map((rule) => `-A ${rule.chain} ${rule.rule}`);
  assert.equal(texts[0], RULES[0]);
  assert.equal(texts[3], RULES[3]);
  assert.equal(texts[6], RULES[6]);
  assert.equal(texts.length, RULES.length);
  const again = parseNatRules(rulesFile(texts), "again.rules");
  assert.deepEqual(again.errors, []);
  const withoutOrigins = (rules: typeof parsed.rules) =>
    [...rules.chains.values()].map((chain) => chain.rules.map(({ origin: _origin, ...rule }) => rule));
  assert.deepEqual(withoutOrigins(again.rules), withoutOrigins(parsed.rules));
  assert.deepEqual(
    describeNatSettings({ rules: again.rules })!.rules.map((rule) => rule.rule),
    described.rules.map((rule) => rule.rule),
  );
});

test("flag rules keep their flag as origin; interface addresses are listed; no NAT is null", () => {
  const flags = natRulesFromFlags({
    masquerade: ["out0=198.51.100.32"],
    snat: ["udp:2001:db8:1::/48=[2001:db8::1]:1000"],
    interfaceAddress: ["in0=10.1.2.1", "in0=2001:db8:1::1"],
  });
  assert.deepEqual(flags.errors, []);
  const described = describeNatSettings({ rules: flags.rules })!;
  assert.equal(described.vantage, "inside");
  // In chain order: the flags append --snat rules before --masquerade ones.
  assert.deepEqual(described.rules, [
    {
      chain: "POSTROUTING",
      rule: "-s 2001:db8:1::/48 -p udp -j SNAT --to-source [2001:db8::1]:1000",
      origin: "--snat udp:2001:db8:1::/48=[2001:db8::1]:1000",
    },
    { chain: "POSTROUTING", rule: "-o out0 -j MASQUERADE", origin: "--masquerade out0=198.51.100.32" },
  ]);
  assert.deepEqual(described.interfaceAddresses, {
    out0: ["198.51.100.32"],
    in0: ["10.1.2.1", "2001:db8:1::1"],
  });
  assert.equal(describeNatSettings(undefined), null);
  assert.deepEqual(describeHelperSettings({ helperPorts: { ftp: [21, 2121] } }, DEFAULT_HELPER_PORTS), {
    enabled: true,
    ports: { ftp: [21, 2121], tftp: [69] },
    ftpLoose: false,
  });
  assert.deepEqual(describeHelperSettings({ helpers: false, ftpLoose: true }, DEFAULT_HELPER_PORTS), {
    enabled: false,
    ports: { ftp: [], tftp: [] },
    ftpLoose: true,
  });
});

const SAMPLE = join(repoRoot, "samples/ping-nat-masquerade/inside.pcap");
test("summary.json's options name the NAT and helper settings", { skip: !existsSync(SAMPLE) }, async () => {
  const out = mkdtempSync(join(tmpdir(), "run-options-"));
  try {
    const { rules } = natRulesFromFlags({ masquerade: ["out0=198.51.100.32"] });
    const { summary } = await writeReport([SAMPLE], {
      outputDir: out,
      nat: { rules, vantage: "inside" },
      ftpLoose: true,
      describeOptions: { timeouts: ["icmp_timeout=10"] },
    });
    const options = summary.options as Record<string, unknown>;
    assert.deepEqual(options.timeouts, ["icmp_timeout=10"]);
    assert.deepEqual(options.helpers, { enabled: true, ports: { ftp: [21], tftp: [69] }, ftpLoose: true });
    assert.deepEqual(options.nat, {
      vantage: "inside",
      rules: [
        { chain: "POSTROUTING", rule: "-o out0 -j MASQUERADE", origin: "--masquerade out0=198.51.100.32" },
      ],
      interfaceAddresses: { out0: ["198.51.100.32"] },
    });
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
