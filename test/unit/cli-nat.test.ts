/** Configured NAT on the command line: the real CLI on the committed MASQUERADE sample. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { helperOptionsFromArguments } from "../../cli/commands/events.js";
import { UsageError } from "../../cli/errors.js";
import { natOptionsFromArguments } from "../../cli/nat-options.js";
import { kernelEventLines, runCli } from "../support/cli.js";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const SAMPLE = join(ROOT, "samples/tcp-client-close-nat-masquerade");
const PCAP = join(SAMPLE, "inside.pcap");
const SYSCTL = join(SAMPLE, "sysctl.txt");
const skip = !existsSync(PCAP) && "samples/tcp-client-close-nat-masquerade is not committed";
const MASQUERADE_RULES = "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o out0 -j MASQUERADE\nCOMMIT\n";

const run = runCli;

const kernelLines = () => kernelEventLines(SAMPLE);

function withRulesFile<T>(text: string, body: (path: string) => T): T {
  const directory = mkdtempSync(join(tmpdir(), "cli-nat-"));
  try {
    const path = join(directory, "nat.rules");
    writeFileSync(path, text);
    return body(path);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

const EVENTS = ["events", PCAP, "--sysctl", SYSCTL, "--drain", "--no-timestamp"];

test("events --masquerade: the router kernel's events, reply tuples on its outside address", { skip }, () => {
  const result = run([...EVENTS, "--masquerade", "out0=198.51.100.32"]);
  assert.equal(result.stderr, "");
  assert.equal(result.status, 0);
  const kernel = kernelLines();
  assert.equal(kernel.length, 7);
  assert.match(kernel[0], / src=203\.0\.113\.47 dst=198\.51\.100\.32 sport=8000 dport=43872$/);
  assert.deepEqual(result.stdout.split("\n").slice(0, -1), kernel);
});

test("events without NAT options: reply tuples stay the inverted original", { skip }, () => {
  const result = run(EVENTS);
  assert.equal(result.status, 0);
  const first = result.stdout.split("\n")[0];
  assert.match(first, / src=203\.0\.113\.47 dst=10\.1\.2\.3 sport=8000 dport=43872$/);
});

test("events --nat-rules with --interface-address: the same events as --masquerade", { skip }, () => {
  withRulesFile(MASQUERADE_RULES, (rules) => {
    const result = run([...EVENTS, "--nat-rules", rules, "--interface-address", "out0=198.51.100.32"]);
    assert.equal(result.stderr, "");
    assert.equal(result.status, 0);
    assert.deepEqual(result.stdout.split("\n").slice(0, -1), kernelLines());
  });
});

test("table --masquerade: the live entry's reply tuple on the outside address", { skip }, () => {
  const result = run([
    "table",
    PCAP,
    "--sysctl",
    SYSCTL,
    "--at",
    "1795619700.7",
    "--format",
    "conntrack",
    "--masquerade",
    "out0=198.51.100.32",
  ]);
  assert.equal(result.status, 0);
  assert.equal(
    result.stdout,
    "tcp      6 29 ESTABLISHED src=10.1.2.3 dst=203.0.113.47 sport=43872 dport=8000 packets=4 bytes=222 " +
      "src=203.0.113.47 dst=198.51.100.32 sport=8000 dport=43872 packets=3 bytes=170 [ASSURED] mark=0 " +
      "delta-time=0 use=1\n",
  );
});

test("report --masquerade: nat.csv maps the inside endpoint to the outside one", { skip }, () => {
  const directory = mkdtempSync(join(tmpdir(), "cli-nat-report-"));
  try {
    const result = run([
      "report",
      PCAP,
      "--sysctl",
      SYSCTL,
      "--drain",
      "-o",
      directory,
      "--masquerade",
      "out0=198.51.100.32",
    ]);
    assert.equal(result.status, 0, result.stderr);
    const rows = readFileSync(join(directory, "nat.csv"), "utf8").trimEnd().split("\n");
    assert.equal(
      rows[0],
      "protocol,kind,origin,port_choice,inside_address,inside_port,outside_address,outside_port," +
        "remote_address,remote_port,first_seen,last_seen,connections,packets,bytes,original_bytes," +
        "reply_bytes,connection_ids",
    );
    assert.equal(rows.length, 2);
    assert.equal(
      rows[1],
      "tcp,snat,configured,kept,10.1.2.3,43872,198.51.100.32,43872,203.0.113.47,8000," +
        "2026-11-25T15:15:00.614132000Z,2026-11-25T15:15:01.216082000Z,1,16,892,550,342,1",
    );
    const json = JSON.parse(readFileSync(join(directory, "nat.ndjson"), "utf8").trimEnd());
    assert.deepEqual(json.inside, { address: "10.1.2.3", port: 43872 });
    assert.deepEqual(json.outside, { address: "198.51.100.32", port: 43872 });
    assert.equal(json.bytes, json.originalBytes + json.replyBytes);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("a rules file it cannot read: exit code 2, the error at FILE:LINE", { skip }, () => {
  const text = "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o out0 -j MASQUERADE --bogus\nCOMMIT\n";
  withRulesFile(text, (rules) => {
    const result = run([...EVENTS, "--nat-rules", rules]);
    assert.equal(result.status, 2);
    assert.equal(result.stdout, "");
    assert.ok(result.stderr.startsWith(`pcap-conntrack: ${rules}:3: `), result.stderr);
    assert.equal(result.stderr.split("\n").length, 2, "one error, one line");
  });
});

test("a bad --masquerade value: exit code 2 naming the flag", { skip }, () => {
  const result = run([...EVENTS, "--masquerade", "out0"]);
  assert.equal(result.status, 2);
  assert.equal(result.stdout, "");
  assert.match(result.stderr, /^pcap-conntrack: --masquerade out0: /);
});

test("natOptionsFromArguments: none without NAT options, every error named, file rules before flags", () => {
  assert.equal(natOptionsFromArguments({}), undefined);
  assert.equal("nat" in helperOptionsFromArguments({}), false);
  assert.throws(
    () => natOptionsFromArguments({ "nat-vantage": "arrival" }),
    (error) => error instanceof UsageError && error.message.startsWith("--nat-vantage: "),
  );
  assert.throws(
    () => natOptionsFromArguments({ "interface-address": ["out0=198.51.100.32"] }),
    (error) => error instanceof UsageError && error.message.startsWith("--interface-address: "),
  );
  assert.throws(
    () =>
      natOptionsFromArguments(
        { "nat-rules": ["r.txt"], snat: ["10.0.0.0/8=nonsense"] },
        () => "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j NOWHERE\nCOMMIT\n",
      ),
    (error) => {
      assert.ok(error instanceof UsageError);
      const lines = error.message.split("\n");
      assert.equal(lines.length, 2);
      assert.ok(lines[0].startsWith("r.txt:3: "), lines[0]);
      assert.ok(lines[1].startsWith("--snat 10.0.0.0/8=nonsense: "), lines[1]);
      return true;
    },
  );
  const nat = natOptionsFromArguments(
    {
      "nat-rules": ["r.txt"],
      masquerade: ["out1=192.0.2.9"],
      "interface-address": ["out0=198.51.100.32"],
      "nat-vantage": "arrival",
    },
    () => MASQUERADE_RULES,
  );
  assert.ok(nat !== undefined);
  assert.equal(nat.vantage, "arrival");
  const postrouting = nat.rules.chains.get("POSTROUTING")!.rules;
  assert.deepEqual(
    postrouting.map((rule) => rule.origin),
    ["r.txt:3", "--masquerade out1=192.0.2.9"],
  );
  assert.deepEqual([...nat.rules.interfaceAddresses.keys()].sort(), ["out0", "out1"]);
  assert.equal(natOptionsFromArguments({ masquerade: ["out0=198.51.100.32"] })?.vantage, "inside");
});

test("--nat-rules reads iptables-save and ip6tables-save files; --nat-rules6 forces IPv6", () => {
  const files: Record<string, string> = {
    "v4.rules":
      "# Generated by iptables-save v1.8.9 on Tue Nov 25 16:00:00 2026\n*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o out0 -j MASQUERADE\nCOMMIT\n",
    "v6.rules":
      "# Generated by ip6tables-save v1.8.9 on Tue Nov 25 16:00:00 2026\n*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s 2001:db8:1::/64 -o out0 -j MASQUERADE\nCOMMIT\n",
    "bare6.rules": "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o out0 -j MASQUERADE\nCOMMIT\n",
  };
  const nat = natOptionsFromArguments(
    {
      "nat-rules": ["v4.rules", "v6.rules"],
      "nat-rules6": ["bare6.rules"],
      "interface-address": ["out0=198.51.100.32", "out0=2001:db8:2::32"],
    },
    (path) => files[path],
  );
  assert.ok(nat !== undefined);
  const postrouting = nat.rules.chains.get("POSTROUTING")!.rules;
  assert.deepEqual(
    postrouting.map((rule) => [rule.origin, rule.family]),
    [
      ["v4.rules:4", 4],
      ["v6.rules:4", 6],
      ["bare6.rules:3", 6],
    ],
  );
  assert.throws(
    () =>
      natOptionsFromArguments({ "nat-rules": ["v4-with-v6.rules"] }, () =>
        files["v4.rules"].replace("-o out0", "-s 2001:db8:1::/64 -o out0"),
      ),
    (error) =>
      error instanceof UsageError &&
      /v4-with-v6\.rules:4: .*IPv6 address in an IPv4 table/.test(error.message),
  );
});
