/** `check` policies: what a policy file says, and precise errors (line, column, field) when it is wrong. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PolicyError, parsePolicy, type PolicyProblem } from "../../lib/check/policy.js";
import { repoRoot } from "../support/corpus.js";

function problemsOf(text: string, file = "policy.yaml"): PolicyProblem[] {
  try {
    parsePolicy(text, file);
  } catch (error) {
    assert.ok(error instanceof PolicyError, `not a PolicyError: ${error}`);
    return [...error.problems];
  }
  assert.fail("the policy was accepted");
}

test("a policy of every kind: one rule per limit, deny entry, default, requirement, NAT expectation, bound", () => {
  const policy = parsePolicy(
    [
      "name: everything",
      "inside: [10.1.2.0/24, 2001:db8:1::/64]",
      "limits:",
      "  orphaned-replies: 0",
      "  invalid-packets: { tcp: 0, all: 2 }",
      "firewall:",
      "  default: deny",
      "  allow:",
      "    - { protocol: tcp, port: [21, 8000-8010], direction: outbound }",
      "  deny:",
      "    - { name: no ssh, protocol: tcp, port: 22 }",
      "require:",
      "  - { protocol: udp, to: 203.0.113.47, port: 9000, reach: replied, at-least: 2 }",
      "nat:",
      "  - { from: 10.1.2.3, leaves-as: '198.51.100.32:1024-65535' }",
      "bounds:",
      "  - { protocol: tcp, max-duration: 1500ms, max-bytes: 64KiB, min-packets: 3 }",
    ].join("\n"),
    "all.yaml",
  );
  assert.equal(policy.name, "everything");
  assert.equal(policy.inside.length, 2);
  assert.deepEqual(
    policy.rules.map((rule) => `${rule.id}@${rule.location.line}`),
    [
      "limits.orphaned-replies@4",
      "limits.invalid-packets.tcp@5",
      "limits.invalid-packets@5",
      "firewall.default@7",
      "firewall.deny[0]@11",
      "require[0]@13",
      "nat[0]@15",
      "bounds[0]@17",
    ],
  );
  const limit = policy.rules[2];
  assert.ok(limit.kind === "limit" && limit.protocol === null && limit.max === 2);
  const fallback = policy.rules[3];
  assert.ok(fallback.kind === "default-deny");
  assert.deepEqual(fallback.allow[0].ports, [
    [21, 21],
    [8000, 8010],
  ]);
  assert.equal(fallback.allow[0].direction, "outbound");
  assert.equal(policy.rules[4].name, "no ssh");
  const require = policy.rules[5];
  assert.ok(require.kind === "require" && require.reach === "replied" && require.atLeast === 2);
  const nat = policy.rules[6];
  assert.ok(nat.kind === "nat" && nat.side === "source");
  assert.deepEqual(nat.expect.ports, [1024, 65535]);
  const bounds = policy.rules[7];
  assert.ok(bounds.kind === "bounds");
  assert.equal(bounds.maxDuration, 1.5);
  assert.equal(bounds.maxBytes, 65536);
  assert.equal(bounds.minPackets, 3);
  assert.equal(bounds.maxPackets, null);
});

test("a JSON policy reads the same, with line numbers too", () => {
  const policy = parsePolicy(
    '{\n  "limits": {\n    "unreplied-connections": { "udp": 1 }\n  }\n}\n',
    "p.json",
  );
  assert.equal(policy.rules.length, 1);
  assert.equal(policy.rules[0].id, "limits.unreplied-connections.udp");
  assert.equal(policy.rules[0].location.line, 3);
  const [problem] = problemsOf('{\n  "limits": {\n    "orphans": "none"\n  }\n}\n', "p.json");
  assert.deepEqual(
    { line: problem.line, column: problem.column, path: problem.path },
    { line: 3, column: 16, path: "limits.orphans" },
  );
  assert.match(problem.message, /"none", expected a whole number/);
});

test("every problem is named by line, column and field path", () => {
  const problems = problemsOf(
    [
      "limits:", //                                   1
      "  invalid-packet: 0", //                       2 typo
      "  orphans: -1", //                             3 negative
      "firewall:", //                                 4
      "  default: deny", //                           5
      "  allow:", //                                  6
      "    - protocol: tcp", //                       7
      "      to: 203.0.113.300", //                   8 bad address
      "      port: 80-70", //                         9 bad range
      "    - { protocol: icmp, port: 22 }", //        10 ICMP has no ports
      "    - { direction: outbound }", //             11 no inside
      "require:", //                                  12
      "  - reach: establishd", //                     13
      "nat:", //                                      14
      "  - { from: 10.1.2.3, leaves-as: '198.51.100.32:99999' }", // 15
      "  - { from: 10.1.2.3 }", //                    16 neither leaves-as nor forwarded-to
      "bounds:", //                                   17
      "  - { max-duration: soon }", //                18
      "  - { protocol: tcp }", //                     19 no bound
      "  - { min-bytes: 2kB, max-bytes: 1kB }", //    20 min over max
    ].join("\n"),
  );
  const where = problems.map((problem) => `${problem.line}:${problem.column} ${problem.path}`);
  assert.deepEqual(where, [
    "2:3 limits.invalid-packet",
    "3:12 limits.orphans",
    "8:11 firewall.allow[0].to",
    "9:13 firewall.allow[0].port",
    "10:31 firewall.allow[1].port",
    "11:20 firewall.allow[2].direction",
    "13:12 require[0].reach",
    "15:34 nat[0].leaves-as",
    "16:5 nat[1]",
    "18:21 bounds[0].max-duration",
    "19:5 bounds[1]",
    "20:18 bounds[2].min-bytes",
  ]);
  const text = (path: string) => problems.find((problem) => problem.path === path)!.message;
  assert.match(text("limits.invalid-packet"), /unknown field \(did you mean invalid-packets\?\)/);
  assert.match(text("firewall.allow[0].to"), /"203\.0\.113\.300" is not an IPv4 or IPv6 address/);
  assert.match(text("firewall.allow[1].port"), /icmp has no ports/);
  assert.match(text("firewall.allow[2].direction"), /needs `inside:`/);
  assert.match(text("require[0].reach"), /"establishd", expected one of seen, replied, established, assured/);
  assert.match(text("nat[1]"), /give one of leaves-as .* and forwarded-to/);
  assert.match(text("bounds[2].min-bytes"), /is more than max-bytes/);
});

test("the error message names the file, line, column and field of each problem", () => {
  assert.throws(
    () => parsePolicy("limits:\n  orphans: many\n", "ci/policy.yaml"),
    (error: Error) => {
      assert.equal(
        error.message,
        'ci/policy.yaml:2:12: limits.orphans: is "many", expected a whole number of at least 0',
      );
      return true;
    },
  );
});

test("YAML syntax errors, duplicate keys, empty and pointless policies are refused", () => {
  const [syntax] = problemsOf("limits:\n  orphans: [1\n");
  assert.equal(syntax.path, "(syntax)");
  assert.ok(syntax.line >= 2);
  const [duplicate] = problemsOf("limits:\n  orphans: 0\n  orphans: 1\n");
  assert.equal(duplicate.line, 3);
  assert.match(duplicate.message, /unique/);
  assert.match(problemsOf("")[0].message, /empty/);
  assert.match(problemsOf("name: nothing\n")[0].message, /asserts nothing/);
  const [top] = problemsOf("limit:\n  orphans: 0\n");
  assert.match(top.message, /did you mean limits\?/);
  const [allowOnly] = problemsOf("firewall:\n  allow:\n    - { port: 80 }\n");
  assert.equal(allowOnly.path, "firewall.allow");
  assert.match(allowOnly.message, /only matter with `default: deny`/);
  const [version] = problemsOf("version: 2\nlimits: { orphans: 0 }\n");
  assert.equal(version.path, "version");
});

test("every policy in samples/policies/ reads", () => {
  const directory = join(repoRoot, "samples/policies");
  const files = readdirSync(directory).filter((name) => /\.(ya?ml|json)$/.test(name));
  assert.ok(files.length >= 3, "samples/policies/ holds the documented examples");
  for (const name of files) {
    const policy = parsePolicy(readFileSync(join(directory, name), "utf8"), name);
    assert.ok(policy.rules.length > 0, `${name} has rules`);
  }
});
