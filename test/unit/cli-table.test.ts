/** `pcap-conntrack table`: the time argument, and the real CLI on a committed kernel sample. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { parseTimePoint, writeTable } from "../../cli/commands/table.js";
import { ChunkedWriter, replayCaptures } from "../../lib/pipeline/replay.js";
import { syntheticCaptureFile } from "../support/synth-file.js";
import { UsageError } from "../../cli/errors.js";
import { TABLE_CSV_COLUMNS } from "../../lib/report/event-formats.js";
import { kernelEventLines, runCli } from "../support/cli.js";
import { ethernet, ipv4, tcp } from "./packet-builders.js";
import { framesPcapFile, type Frame } from "../support/frames-file.js";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const SAMPLE = join(ROOT, "samples/tcp-client-close");
const PCAP = join(SAMPLE, "inside.pcap");
const SYSCTL = join(SAMPLE, "sysctl.txt");
const skip = !existsSync(PCAP) && "samples/tcp-client-close is not committed";

const run = runCli;

const kernelLines = () => kernelEventLines(SAMPLE);

/** The client's port, as the kernel printed it. */
function clientPort(): number {
  return Number(/sport=(\d+)/.exec(kernelLines()[0])![1]);
}

/**
 * Between the last data segment's ACK (…10.098824) and the client's FIN (…10.299050): by then 8
 * packets (446 bytes) out, 5 (290) back, as tcpdump lists them; 0.5 s after the SYN (…09.697818).
 */
const MID_CONNECTION = "1795619610.2";
const MID_CONNECTION_ISO = "2026-11-25T15:13:30.2Z";

function tuplesMidConnection(): string {
  const port = clientPort();
  return (
    `src=10.1.2.3 dst=203.0.113.47 sport=${port} dport=8000 packets=8 bytes=446 ` +
    `src=203.0.113.47 dst=10.1.2.3 sport=8000 dport=${port} packets=5 bytes=290`
  );
}

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
  const expected = `ipv4     2 tcp      6 29 ESTABLISHED ${tuplesMidConnection()} [ASSURED] mark=0 zone=0 delta-time=0 use=2\n`;
  const epoch = run(["table", PCAP, "--sysctl", SYSCTL, "--at", MID_CONNECTION]);
  assert.equal(epoch.status, 0, epoch.stderr);
  assert.equal(epoch.stdout, expected);
  assert.equal(epoch.stderr, "");
  const iso = run(["table", PCAP, "--sysctl", SYSCTL, "--at", MID_CONNECTION_ISO]);
  assert.equal(iso.stdout, expected);
});

test("table: the handshake seen 110 µs after the first packet", { skip }, () => {
  // The first packet is the client's ARP request (…09.697791); the SYN-ACK follows 104 µs after it,
  // the client's ACK 119 µs after it.
  const result = run(["table", PCAP, "--sysctl", SYSCTL, "--at", "+0.00011"]);
  const port = clientPort();
  assert.equal(
    result.stdout,
    `ipv4     2 tcp      6 4 SYN_RECV src=10.1.2.3 dst=203.0.113.47 sport=${port} dport=8000 packets=1 bytes=60 ` +
      `src=203.0.113.47 dst=10.1.2.3 sport=8000 dport=${port} packets=1 bytes=60 mark=0 zone=0 delta-time=0 use=2\n`,
  );
});

test("table: --format conntrack lists like conntrack -L, its trailer on stderr", { skip }, () => {
  const atEnd = run(["table", PCAP, "--sysctl", SYSCTL, "--format", "conntrack"]);
  assert.equal(atEnd.status, 0);
  // The tuples and counters the kernel printed when it destroyed the entry; delta-time as conntrack
  // -L computes it (…10 − …09).
  const destroy = kernelLines().find((line) => line.startsWith("[DESTROY]"))!;
  const kernelTuples = /TIME_WAIT (src=.*) \[ASSURED\]/.exec(destroy)![1];
  assert.equal(atEnd.stdout, `tcp      6 2 TIME_WAIT ${kernelTuples} [ASSURED] mark=0 delta-time=1 use=1\n`);
  assert.equal(atEnd.stderr, "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.\n");

  // TIME_WAIT (2 s) ran out 2 s after the last packet, 2.605376 s after the first (the ARP request):
  // nothing is left 2.61 s after the first.
  const later = run(["table", PCAP, "--sysctl", SYSCTL, "--format", "conntrack", "--at", "+2.61"]);
  assert.equal(later.stdout, "");
  assert.equal(later.stderr, "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.\n");
});

test("table: csv and json carry the same entry; - reads standard input", { skip }, () => {
  const csv = run(
    ["table", "-", "--sysctl", SYSCTL, "--at", MID_CONNECTION, "--format", "csv"],
    readFileSync(PCAP),
  );
  assert.equal(csv.status, 0, csv.stderr);
  const [header, row, end] = csv.stdout.split("\n");
  assert.equal(header, TABLE_CSV_COLUMNS.join(","));
  const port = clientPort();
  assert.equal(
    row,
    `tcp,6,29,ESTABLISHED,10.1.2.3,203.0.113.47,${port},8000,,,,,,203.0.113.47,10.1.2.3,8000,${port},,,,,,ASSURED,8,446,5,290,1,,1,`,
  );
  // delta-time as conntrack -L computes it (whole seconds of now minus whole seconds of the start,
  // 10 − 09), where /proc divides the difference (0.5 s → 0).
  assert.equal(end, "");
  const json = run(["table", PCAP, "--sysctl", SYSCTL, "--at", MID_CONNECTION, "--format", "json"]);
  assert.deepEqual(JSON.parse(json.stdout), [
    {
      protocol: "tcp",
      protocolNumber: 6,
      timeout: 29,
      state: "ESTABLISHED",
      original: { src: "10.1.2.3", dst: "203.0.113.47", sport: port, dport: 8000 },
      reply: { src: "203.0.113.47", dst: "10.1.2.3", sport: 8000, dport: port },
      flags: ["ASSURED"],
      originalPackets: 8,
      originalBytes: 446,
      replyPackets: 5,
      replyBytes: 290,
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

test("table: a large table is written in steps that wait for the output to drain", async () => {
  const directory = mkdtempSync(join(tmpdir(), "table-test-"));
  try {
    const file = await syntheticCaptureFile(join(directory, "many.pcap"), {
      packets: 40_000,
      conversations: 20_000,
      seed: 4,
      live: 20_000,
    });
    const result = await replayCaptures([file], {});
    let written = 0;
    let mostBuffered = 0;
    const out = new Writable({
      highWaterMark: 16 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        written += chunk.length;
        mostBuffered = Math.max(mostBuffered, out.writableLength);
        setImmediate(callback);
      },
    });
    const writer = new ChunkedWriter(out);
    const count = await writeTable(result, "proc", writer);
    await writer.finish();
    assert.equal(count, result.engine.liveConnections);
    assert.ok(written > 2_000_000, `only ${written} bytes`);
    // Without the waits the whole table would sit in the stream's buffer at once.
    assert.ok(mostBuffered < 600_000, `${mostBuffered} bytes buffered at once`);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("table --jobs: every format, at several times, is the single thread's table (ids across shards too)", async () => {
  const directory = mkdtempSync(join(tmpdir(), "table-jobs-test-"));
  try {
    const synthetic = await syntheticCaptureFile(join(directory, "synth.pcap"), {
      packets: 6_000,
      conversations: 900,
      seed: 5,
    });
    // An FTP control connection and its data connections (master ids), and traffic over many hosts.
    for (const file of [join(ROOT, "samples/ftp-active/inside.pcap"), synthetic]) {
      for (const format of ["proc", "conntrack", "csv", "json"]) {
        for (const at of [[], ["--at", "+2"]]) {
          const args = ["table", file, "--format", format, ...at];
          const single = runCli(args);
          assert.equal(single.status, 0, single.stderr);
          assert.ok(single.stdout.length > 0);
          for (const jobs of format === "csv" ? ["2", "3"] : ["2"]) {
            const sharded = runCli([...args, "--jobs", jobs]);
            assert.equal(sharded.status, 0, sharded.stderr);
            assert.equal(sharded.stdout, single.stdout, `${args.join(" ")} --jobs ${jobs}`);
            assert.equal(sharded.stderr, single.stderr);
          }
        }
      }
    }
    // --summary: one run's accounting (records once, the engines' counts added), but for the most
    // live at once, the workers' sum.
    for (const file of [join(ROOT, "samples/ftp-active/inside.pcap"), synthetic]) {
      const single = runCli(["table", file, "--summary", "--at", "+2"]);
      const sharded = runCli(["table", file, "--summary", "--at", "+2", "--jobs", "3"]);
      assert.equal(sharded.status, 0, sharded.stderr);
      assert.equal(sharded.stdout, single.stdout);
      const mostLive = /most live at once/;
      const lines = (text: string): string[] => text.split("\n").filter((line) => !mostLive.test(line));
      assert.deepEqual(lines(sharded.stderr), lines(single.stderr), file);
      assert.match(sharded.stderr, /most live at once \(sum over 3 jobs\)/);
      assert.match(sharded.stderr, /^table at /);
      assert.match(sharded.stderr, /packets tracked \(decoded\)\s+[1-9]/);
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

/**
 * FTP control connections between `sessions` host pairs, interleaved, each announcing data connections
 * with PORT (some twice: the ftp helper keeps one expectation per master, so the first is evicted and
 * the ids of one shard skip); no data connection follows, so the expectations stay live.
 */
async function ftpSessionsCapture(path: string, sessions: number): Promise<string> {
  const frames: Frame[] = [];
  let ts = 1_764_000_000;
  const peers = Array.from({ length: sessions }, (_, i) => ({
    client: `10.9.${i}.7`,
    server: `198.51.100.${10 + i}`,
    clientSeq: 1000,
    serverSeq: 50000,
  }));
  const send = (i: number, fromClient: boolean, flags: number, text = ""): void => {
    const peer = peers[i];
    const payload = Array.from(Buffer.from(text, "latin1"));
    const seq = fromClient ? peer.clientSeq : peer.serverSeq;
    const ack = fromClient ? peer.serverSeq : peer.clientSeq;
    const fields = fromClient
      ? { srcPort: 40000 + i, dstPort: 21, seq, ack, flags }
      : { srcPort: 21, dstPort: 40000 + i, seq, ack, flags };
    const [src, dst] = fromClient ? [peer.client, peer.server] : [peer.server, peer.client];
    frames.push({
      bytes: ethernet(0x0800, ipv4({ src, dst, protocol: 6 }, tcp(fields, payload))),
      ts: (ts += 0.01),
    });
    const advance = payload.length + (flags & 0x02 ? 1 : 0);
    if (fromClient) peer.clientSeq += advance;
    else peer.serverSeq += advance;
  };
  const port = (i: number, dataPort: number): string =>
    `PORT ${peers[i].client.replaceAll(".", ",")},${dataPort >> 8},${dataPort & 0xff}\r\n`;
  const steps: ((i: number) => void)[] = [
    (i) => send(i, true, 0x02),
    (i) => send(i, false, 0x12),
    (i) => send(i, true, 0x10),
    (i) => send(i, false, 0x18, "220 ready\r\n"),
    (i) => send(i, true, 0x18, "USER anonymous\r\n"),
    (i) => send(i, true, 0x18, port(i, 30000 + i)),
    (i) => (i % 3 === 0 ? send(i, true, 0x18, port(i, 31000 + i)) : undefined),
  ];
  for (const step of steps) for (let i = 0; i < sessions; i++) step(i);
  return framesPcapFile(path, frames);
}

test("table --jobs --expect: the live expectations, in every format, as one thread lists them", async () => {
  const directory = mkdtempSync(join(tmpdir(), "table-jobs-expect-"));
  try {
    const capture = await ftpSessionsCapture(join(directory, "ftp-sessions.pcap"), 12);
    for (const format of ["proc", "conntrack", "csv", "json"]) {
      const args = ["table", capture, "--expect", "--format", format];
      const single = runCli(args);
      assert.equal(single.status, 0, single.stderr);
      if (format === "csv") {
        const rows = single.stdout.trim().split("\n").slice(1);
        assert.equal(rows.length, 12, "one live expectation a session");
      }
      for (const jobs of ["2", "3"]) {
        const sharded = runCli([...args, "--jobs", jobs]);
        assert.equal(sharded.status, 0, sharded.stderr);
        assert.equal(sharded.stdout, single.stdout, `${format} --jobs ${jobs}`);
        assert.equal(sharded.stderr, single.stderr);
      }
    }
    // The shards' own ids differ from one run's (so the merge numbered them).
    const json = JSON.parse(runCli(["table", capture, "--expect", "--format", "json"]).stdout) as {
      id: number;
      masterId: number;
    }[];
    const shard = JSON.parse(
      runCli(["table", capture, "--expect", "--format", "json", "--shard", "1/3"]).stdout,
    ) as { id: number; masterId: number }[];
    assert.ok(shard.length > 0 && shard.length < json.length);
    assert.ok(
      shard.some(
        (entry) => !json.some((other) => other.id === entry.id && other.masterId === entry.masterId),
      ),
    );
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
