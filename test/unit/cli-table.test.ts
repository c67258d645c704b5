/** `pcap-conntrack table`: the time argument, and the real CLI on a committed kernel sample. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseTimePoint } from "../../cli/commands/table.js";
import { UsageError } from "../../cli/errors.js";
import { TABLE_CSV_COLUMNS } from "../../lib/report/event-formats.js";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const CLI = join(ROOT, "dist/cli/main.js");
const SAMPLE = join(ROOT, "samples/tcp-client-close");
const PCAP = join(SAMPLE, "inside.pcap");
const SYSCTL = join(SAMPLE, "sysctl.txt");
const skip = !existsSync(PCAP) && "samples/tcp-client-close is not committed";

function run(args: string[], input?: Buffer) {
  const result = spawnSync(process.execPath, [CLI, ...args], { input, encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const TUPLES =
  "src=10.1.2.3 dst=203.0.113.47 sport=59854 dport=8000 packets=6 bytes=338 " +
  "src=203.0.113.47 dst=10.1.2.3 sport=8000 dport=59854 packets=5 bytes=286";

test("--at reads epoch seconds, ISO 8601 and +SECONDS, to the nanosecond", () => {
  assert.deepEqual(parseTimePoint("1764000000.25"), {
    kind: "absolute",
    tsSec: 1764000000,
    tsNsec: 250_000_000,
  });
  assert.deepEqual(parseTimePoint("1764000000"), { kind: "absolute", tsSec: 1764000000, tsNsec: 0 });
  assert.deepEqual(parseTimePoint("2025-11-24T16:00:00.000000123Z"), {
    kind: "absolute",
    tsSec: 1764000000,
    tsNsec: 123,
  });
  assert.deepEqual(parseTimePoint("2025-11-24T17:30:00.5+01:30"), {
    kind: "absolute",
    tsSec: 1764000000,
    tsNsec: 500_000_000,
  });
  assert.deepEqual(parseTimePoint("+2.5"), { kind: "relative", offsetNs: 2_500_000_000 });
  assert.deepEqual(parseTimePoint("+0"), { kind: "relative", offsetNs: 0 });
  for (const bad of ["yesterday", "-3", "2025-13-01T00:00:00Z", "1.2.3", "+", ""])
    assert.throws(() => parseTimePoint(bad), UsageError, bad);
});

test("table: /proc/net/nf_conntrack lines at a given time, epoch and ISO alike", { skip }, () => {
  const expected = `ipv4     2 tcp      6 29 ESTABLISHED ${TUPLES} [ASSURED] mark=0 zone=0 delta-time=0 use=2\n`;
  const epoch = run(["table", PCAP, "--sysctl", SYSCTL, "--at", "1795616635.5"]);
  assert.equal(epoch.status, 0, epoch.stderr);
  assert.equal(epoch.stdout, expected);
  assert.equal(epoch.stderr, "");
  const iso = run(["table", PCAP, "--sysctl", SYSCTL, "--at", "2026-11-25T14:23:55.5Z"]);
  assert.equal(iso.stdout, expected);
});

test("table: the handshake seen 100 µs after the first packet", { skip }, () => {
  const result = run(["table", PCAP, "--sysctl", SYSCTL, "--at", "+0.0001"]);
  assert.equal(
    result.stdout,
    "ipv4     2 tcp      6 4 SYN_RECV src=10.1.2.3 dst=203.0.113.47 sport=59854 dport=8000 packets=1 bytes=60 " +
      "src=203.0.113.47 dst=10.1.2.3 sport=8000 dport=59854 packets=1 bytes=60 mark=0 zone=0 delta-time=0 use=2\n",
  );
});

test("table: --format conntrack lists like conntrack -L, its trailer on stderr", { skip }, () => {
  const atEnd = run(["table", PCAP, "--sysctl", SYSCTL, "--format", "conntrack"]);
  assert.equal(atEnd.status, 0);
  assert.equal(
    atEnd.stdout,
    "tcp      6 2 TIME_WAIT src=10.1.2.3 dst=203.0.113.47 sport=59854 dport=8000 packets=10 bytes=550 " +
      "src=203.0.113.47 dst=10.1.2.3 sport=8000 dport=59854 packets=8 bytes=446 [ASSURED] mark=0 delta-time=2 use=1\n",
  );
  assert.equal(atEnd.stderr, "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.\n");

  // TIME_WAIT (2 s) ran out 2 s after the last packet: nothing is left 3.1 s after the first.
  const later = run(["table", PCAP, "--sysctl", SYSCTL, "--format", "conntrack", "--at", "+3.1"]);
  assert.equal(later.stdout, "");
  assert.equal(later.stderr, "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.\n");
});

test("table: csv and json carry the same entry; - reads standard input", { skip }, () => {
  const csv = run(
    ["table", "-", "--sysctl", SYSCTL, "--at", "1795616635.5", "--format", "csv"],
    readFileSync(PCAP),
  );
  assert.equal(csv.status, 0, csv.stderr);
  const [header, row, end] = csv.stdout.split("\n");
  assert.equal(header, TABLE_CSV_COLUMNS.join(","));
  assert.equal(
    row,
    "tcp,6,29,ESTABLISHED,10.1.2.3,203.0.113.47,59854,8000,,,,,,203.0.113.47,10.1.2.3,8000,59854,,,,,,ASSURED,6,338,5,286,1,,1,",
  );
  // delta-time as conntrack -L computes it (whole seconds of now minus whole seconds of the start,
  // 35 − 34), where /proc divides the difference (0.55 s → 0).
  assert.equal(end, "");
  const json = run(["table", PCAP, "--sysctl", SYSCTL, "--at", "1795616635.5", "--format", "json"]);
  assert.deepEqual(JSON.parse(json.stdout), [
    {
      protocol: "tcp",
      protocolNumber: 6,
      timeout: 29,
      state: "ESTABLISHED",
      original: { src: "10.1.2.3", dst: "203.0.113.47", sport: 59854, dport: 8000 },
      reply: { src: "203.0.113.47", dst: "10.1.2.3", sport: 8000, dport: 59854 },
      flags: ["ASSURED"],
      originalPackets: 6,
      originalBytes: 338,
      replyPackets: 5,
      replyBytes: 286,
      deltaTime: 1,
      helper: null,
      id: 1,
      masterId: null,
    },
  ]);
});

test("table: a bad --at is a usage error (exit 2)", { skip }, () => {
  const result = run(["table", PCAP, "--at", "soon"]);
  assert.equal(result.status, 2);
  assert.equal(result.stdout, "");
  assert.match(result.stderr, /^pcap-conntrack: --at: "soon" is not a time/);
  assert.equal(result.stderr.split("\n").length, 2);
});
