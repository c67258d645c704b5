/** `pcap-conntrack check` as CI runs it: exit codes, the readable summary, JSON and JUnit XML. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { escapeXml, formatCheckJunit } from "../../lib/check/output.js";
import type { CheckOutcome } from "../../lib/check/evaluate.js";
import { runCli } from "../support/cli.js";
import { repoRoot } from "../support/corpus.js";

const sample = (name: string) => join("samples", name);
const POLICIES = join(repoRoot, "samples/policies");
const skip = !existsSync(join(repoRoot, "samples/tcp-refused/inside.pcap")) && "samples not recorded";

function inDirectory<T>(body: (directory: string) => T): T {
  const directory = mkdtempSync(join(tmpdir(), "check-cli-"));
  try {
    return body(directory);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** Runs `check` on a sample's inside capture under its sysctl settings, from the repository root. */
function check(name: string, ...args: string[]) {
  const directory = sample(name);
  const previous = process.cwd();
  process.chdir(repoRoot);
  try {
    return runCli([
      "check",
      join(directory, "inside.pcap"),
      "--sysctl",
      join(directory, "sysctl.txt"),
      ...args,
    ]);
  } finally {
    process.chdir(previous);
  }
}

interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

/**
 * A strict reader for the XML subset JUnit reports use (declaration, elements, attributes, text,
 * the five predefined entities and numeric references); throws on anything not well-formed.
 */
function parseXml(xml: string): XmlElement {
  let at = 0;
  const fail = (what: string): never => assert.fail(`not well-formed at offset ${at}: ${what}`);
  const checkText = (text: string): string => {
    if (/[<]/.test(text)) fail("raw < in text");
    const invalid = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.exec(text);
    if (invalid) fail("bare &");
    // eslint-disable-next-line no-control-regex -- XML 1.0 forbids these characters
    if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(text)) fail("control character");
    return text.replace(
      /&(amp|lt|gt|quot|apos);/g,
      (_, name: string) => ({ amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" })[name]!,
    );
  };
  const declaration = /^<\?xml version="1\.0" encoding="UTF-8"\?>\n/.exec(xml);
  if (!declaration) fail("no XML declaration");
  at = declaration![0].length;
  const element = (): XmlElement => {
    const open = /^<([A-Za-z_][\w.-]*)((?:\s+[A-Za-z_][\w.-]*="[^"<]*")*)\s*(\/?)>/.exec(xml.slice(at));
    if (!open) fail("expected a start tag");
    at += open![0].length;
    const attributes: Record<string, string> = {};
    for (const match of open![2].matchAll(/([A-Za-z_][\w.-]*)="([^"]*)"/g)) {
      if (match[1] in attributes) fail(`attribute ${match[1]} twice`);
      attributes[match[1]] = checkText(match[2]);
    }
    const node: XmlElement = { name: open![1], attributes, children: [], text: "" };
    if (open![3] === "/") return node;
    for (;;) {
      const next = xml.indexOf("<", at);
      if (next < 0) fail(`${node.name} not closed`);
      node.text += checkText(xml.slice(at, next));
      at = next;
      if (xml.startsWith("</", at)) {
        const close = /^<\/([A-Za-z_][\w.-]*)\s*>/.exec(xml.slice(at));
        if (!close || close[1] !== node.name) fail(`</${close?.[1]}> closes <${node.name}>`);
        at += close![0].length;
        return node;
      }
      node.children.push(element());
    }
  };
  const root = element();
  if (xml.slice(at).trim() !== "") fail("content after the root element");
  return root;
}

test("exit 0 when every rule holds, with the summary on standard output", { skip }, () => {
  const result = check("tcp-client-close", "--drain", "--policy", join(POLICIES, "echo-service.yaml"));
  assert.equal(result.stderr, "");
  assert.equal(result.status, 0, result.stderr);
  assert.match(
    result.stdout,
    /^check .*echo-service\.yaml \(TCP echo service\) over samples\/tcp-client-close\/inside\.pcap: 1 connection,/,
  );
  assert.match(result.stdout, /\nall 4 rules hold\n$/);
});

test("exit 1 when a rule is violated, naming the rule, the connection and its packets", { skip }, () => {
  const result = check("tcp-refused", "--drain", "--policy", join(POLICIES, "echo-service.yaml"));
  assert.equal(result.status, 1, result.stderr);
  assert.match(
    result.stdout,
    /^FAIL {2}limits\.rst-ended-connections: at most 0 connections ended by a RST: 1 connection, at most 0 allowed$/m,
  );
  assert.match(
    result.stdout,
    /^ {8}connection 1 tcp 10\.1\.2\.3:\d+ > 203\.0\.113\.47:8001, packets 3–4 of samples\/tcp-refused\/inside\.pcap, CLOSE UNREPLIED: ended by a RST/m,
  );
  assert.match(
    result.stdout,
    /\n3 of 4 rules violated: require\[0\], limits\.rst-ended-connections, limits\.unreplied-connections\.tcp\n$/,
  );
});

test("exit 2 for a bad policy, naming file, line, column and field; nothing is replayed", { skip }, () => {
  inDirectory((directory) => {
    const policy = join(directory, "policy.yaml");
    writeFileSync(
      policy,
      "limits:\n  orphans: 0\nfirewall:\n  deny:\n    - { protocol: tcp, port: 70000 }\n",
    );
    const result = check("tcp-client-close", "--policy", policy);
    assert.equal(result.status, 2, result.stderr);
    assert.equal(result.stdout, "");
    assert.equal(
      result.stderr,
      `pcap-conntrack: bad policy:\n${policy}:5:30: firewall.deny[0].port: "70000" is not a port or range (0-65535, e.g. 443 or 8000-8099)\n`,
    );
    const json = join(directory, "policy.json");
    writeFileSync(json, '{\n  "limits": {\n    "orphans": 0,\n  }\n}\n');
    const syntax = check("tcp-client-close", "--policy", json);
    assert.equal(syntax.status, 2, syntax.stderr);
    assert.match(syntax.stderr, new RegExp(`${json.replace(/[.\\/]/g, "\\$&")}:\\d+:\\d+: \\(syntax\\): `));
  });
});

test("exit 2 for a missing policy, an unreadable capture, or no --policy", { skip }, () => {
  const missing = check("tcp-client-close", "--policy", "no-such-policy.yaml");
  assert.equal(missing.status, 2, missing.stderr);
  assert.match(missing.stderr, /no-such-policy\.yaml: no such file or directory/);
  const noCapture = runCli(["check", "no-such.pcap", "--policy", join(POLICIES, "echo-service.yaml")]);
  assert.equal(noCapture.status, 2, noCapture.stderr);
  assert.match(noCapture.stderr, /no-such\.pcap/);
  const noPolicy = check("tcp-client-close");
  assert.equal(noPolicy.status, 2, noPolicy.stderr);
  assert.match(noPolicy.stderr, /Missing required argument: policy/);
});

test(
  "--junit writes well-formed JUnit XML, one test case per rule, failures with their connections",
  { skip },
  () => {
    inDirectory((directory) => {
      const junit = join(directory, "junit.xml");
      const result = check(
        "tcp-refused",
        "--drain",
        "--policy",
        join(POLICIES, "lab-client.yaml"),
        "--junit",
        junit,
      );
      assert.equal(result.status, 1, result.stderr);
      const root = parseXml(readFileSync(junit, "utf8"));
      assert.equal(root.name, "testsuites");
      const [suite] = root.children;
      assert.equal(suite.name, "testsuite");
      assert.equal(suite.attributes.name, "lab client");
      const cases = suite.children.filter((child) => child.name === "testcase");
      assert.equal(cases.length, 7, "one test case per rule");
      assert.equal(suite.attributes.tests, "7");
      assert.equal(root.attributes.tests, "7");
      const failed = cases.filter((child) => child.children.some((grand) => grand.name === "failure"));
      assert.equal(suite.attributes.failures, String(failed.length));
      assert.deepEqual(
        failed.map((child) => child.attributes.name.split(":")[0]),
        ["limits.rst-ended-connections", "limits.unreplied-connections.tcp", "firewall.default"],
      );
      const failure = failed[0].children.find((child) => child.name === "failure")!;
      assert.equal(failure.attributes.message, "1 connection, at most 0 allowed");
      assert.match(failure.text, /connection 1 tcp 10\.1\.2\.3:\d+ > 203\.0\.113\.47:8001, packets 3–4 of /);
      assert.equal(failed[0].attributes.line, "17");
      assert.equal(failed[0].attributes.classname, "pcap-conntrack.check.limit");
    });
  },
);

test("JUnit XML escapes what packets and policies may carry", () => {
  const outcome: CheckOutcome = {
    policy: { file: "a&b.yaml", name: 'quote " <and> \u0001 control' },
    inputs: ["in.pcap"],
    passed: false,
    totals: { connections: 0, orphans: 1, invalidPackets: 1 },
    rules: [
      {
        id: "limits.orphans",
        name: "at most 0 <orphans> & 'more'",
        kind: "limit",
        location: { line: 2, column: 3 },
        passed: false,
        summary: "1 packet, at most 0 allowed",
        violations: 1,
        offenders: [
          {
            type: "packet",
            input: "x]]>.pcap",
            packet: 7,
            time: "",
            protocol: "tcp",
            src: "10.0.0.1",
            dst: "10.0.0.2",
            sport: 1,
            dport: 2,
            kind: "invalid",
            why: "tcp: <bad> & \u0000 worse",
          },
        ],
      },
    ],
  };
  const root = parseXml(formatCheckJunit(outcome, new Date(0)));
  const [suite] = root.children;
  assert.equal(suite.attributes.name, 'quote " <and> \ufffd control');
  const testcase = suite.children.find((child) => child.name === "testcase")!;
  assert.equal(testcase.attributes.name, "limits.orphans: at most 0 <orphans> & 'more'");
  assert.match(
    testcase.children[0].text,
    /packet 7 of x\]\]>\.pcap: tcp 10\.0\.0\.1:1 > 10\.0\.0\.2:2: tcp: <bad> & \ufffd worse/,
  );
  assert.equal(escapeXml("\ud800"), "\ufffd");
});

test("--format json: the outcome for scripts; -o writes it to a file", { skip }, () => {
  inDirectory((directory) => {
    const output = join(directory, "outcome.json");
    const result = check(
      "tcp-client-close-nat-masquerade",
      "--drain",
      "--policy",
      join(POLICIES, "masquerade.yaml"),
      "--format",
      "json",
      "-o",
      output,
    );
    assert.equal(result.status, 1, "without --masquerade the lab leaves as itself");
    assert.equal(result.stdout, "");
    const outcome = JSON.parse(readFileSync(output, "utf8")) as CheckOutcome;
    assert.equal(outcome.passed, false);
    const nat = outcome.rules.find((rule) => rule.id === "nat[0]")!;
    assert.equal(nat.passed, false);
    assert.equal(nat.offenders[0].type, "connection");
    const masqueraded = check(
      "tcp-client-close-nat-masquerade",
      "--drain",
      "--masquerade",
      "out0=198.51.100.32",
      "--policy",
      join(POLICIES, "masquerade.yaml"),
      "--format",
      "json",
    );
    assert.equal(masqueraded.status, 0, masqueraded.stderr);
    assert.equal((JSON.parse(masqueraded.stdout) as CheckOutcome).passed, true);
  });
});

test(
  "--nat-observe: NAT expectations against the translation the inside and outside captures show",
  { skip },
  () => {
    const directory = sample("tcp-client-close-nat-masquerade");
    const previous = process.cwd();
    process.chdir(repoRoot);
    try {
      const args = ["check", join(directory, "inside.pcap"), join(directory, "outside.pcap")];
      const policy = [
        "--policy",
        join(POLICIES, "masquerade.yaml"),
        "--sysctl",
        join(directory, "sysctl.txt"),
      ];
      const observed = runCli([...args, ...policy, "--drain", "--nat-observe"]);
      assert.equal(observed.stderr, "");
      assert.equal(observed.status, 0, observed.stdout);
      const merged = runCli([...args, ...policy, "--drain"]);
      assert.equal(
        merged.status,
        1,
        "without --nat-observe the two sightings are two connections, one untranslated",
      );
    } finally {
      process.chdir(previous);
    }
  },
);

test("--help shows examples and the exit codes", () => {
  const result = runCli(["check", "--help"]);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /--policy/);
  assert.match(result.stdout, /--junit/);
  assert.match(result.stdout, /Examples:/);
  assert.match(result.stdout, /Exit codes: 0 every rule holds; 1 a rule is violated; 2 /);
});
