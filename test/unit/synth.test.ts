import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { writeSyntheticCapture, type SynthOptions, type SynthSummary } from "../bench/synth.js";
import { openCapture } from "../../lib/capture/open.js";
import { forEachRecord } from "../../lib/capture/source.js";
import { PacketDecoder } from "../../lib/decode/decoder.js";
import { PacketClass } from "../../lib/decode/packet.js";

const directory = mkdtempSync(join(tmpdir(), "synth-test-"));
test.after(() => rmSync(directory, { recursive: true, force: true }));
const SYNTH_CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "bench", "synth.js");

const SMALL: SynthOptions = { packets: 20_000, conversations: 1_000, seed: 7, live: 200 };

async function hashOf(options: SynthOptions): Promise<{ hash: string; summary: SynthSummary }> {
  const hash = createHash("sha256");
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback();
    },
  });
  const summary = await writeSyntheticCapture(sink, options);
  return { hash: hash.digest("hex"), summary };
}

test("same seed gives the same bytes; another seed does not", async () => {
  const first = await hashOf(SMALL);
  const second = await hashOf(SMALL);
  const other = await hashOf({ ...SMALL, seed: 8 });
  assert.equal(first.hash, second.hash);
  assert.notEqual(first.hash, other.hash);
  assert.equal(first.summary.packets, 20_000);
  assert.equal(other.summary.packets, 20_000);
});

test("the CLI writes to stdout the same bytes as the library", async () => {
  const options: SynthOptions = { packets: 3_000, conversations: 300, seed: 3 };
  const { hash } = await hashOf(options);
  const cli = spawnSync(
    process.execPath,
    [SYNTH_CLI, "--packets", "3000", "--conversations", "300", "--seed", "3", "--out", "-"],
    { maxBuffer: 64 << 20 },
  );
  assert.equal(cli.status, 0, cli.stderr.toString());
  assert.equal(createHash("sha256").update(cli.stdout).digest("hex"), hash);
});

test("the CLI refuses impossible requests with a message", () => {
  const cli = spawnSync(process.execPath, [SYNTH_CLI, "--packets", "10", "--conversations", "11"], {
    encoding: "utf8",
  });
  assert.equal(cli.status, 2);
  assert.match(cli.stderr, /--conversations 11 must be within 1\.\.packets \(10\)/);
});

test("tcpdump, tshark and our reader/decoder read it cleanly, with the counts asked", async () => {
  const path = join(directory, "small.pcap");
  const out = createWriteStream(path);
  const summary = await writeSyntheticCapture(out, SMALL);
  assert.equal(summary.conversations, 1_000);
  assert.equal(
    Object.values(summary.kinds).reduce((a, b) => a + b, 0),
    1_000,
  );

  const tcpdump = spawnSync("tcpdump", ["-n", "-r", path, "-w", "/dev/null"], { encoding: "utf8" });
  assert.equal(tcpdump.status, 0);
  assert.equal(
    tcpdump.stderr.trim(),
    "reading from file " + path + ", link-type EN10MB (Ethernet), snapshot length 262144",
  );

  const capinfos = execFileSync("capinfos", ["-M", "-c", "-o", path], { encoding: "utf8" });
  assert.match(capinfos, /Number of packets:\s+20000\n/);
  assert.match(capinfos, /Strict time order:\s+True\n/);

  const fields = spawnSync(
    "tshark",
    [
      ...[
        "-r",
        path,
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
      ],
      ...["-T", "fields", "-E", "separator=|"],
      ...["-e", "tcp.stream", "-e", "udp.stream", "-e", "icmp.type", "-e", "icmpv6.type", "-e", "ip.src"],
      ...["-e", "ipv6.src", "-e", "icmp.ident", "-e", "icmpv6.echo.identifier"],
      ...["-e", "ip.checksum.status", "-e", "tcp.checksum.status", "-e", "udp.checksum.status"],
      ...["-e", "icmp.checksum.status", "-e", "icmpv6.checksum.status", "-e", "tcp.analysis.lost_segment"],
      ...["-e", "tcp.analysis.ack_lost_segment", "-e", "tcp.analysis.out_of_order"],
    ],
    { encoding: "utf8", maxBuffer: 64 << 20 },
  );
  assert.equal(fields.status, 0);
  assert.equal(fields.stderr.replace(/Running as user "root".*\n/, ""), "");
  const tcpStreams = new Set<string>();
  const udpStreams = new Set<string>();
  const echoSessions = new Set<string>();
  let badChecksums = 0;
  let sequenceProblems = 0;
  let rows = 0;
  for (const line of fields.stdout.trimEnd().split("\n")) {
    rows++;
    const f = line.split("|");
    if (f[0]) tcpStreams.add(f[0].split(",")[0]);
    if (f[1]) udpStreams.add(f[1].split(",")[0]);
    if (f[2] === "8" || f[3] === "128") echoSessions.add(`${f[4]}${f[5]}/${f[6]}${f[7]}`);
    for (const status of f.slice(8, 13).join(",").split(","))
      if (status !== "" && status !== "1") badChecksums++;
    if (f[13] || f[14] || f[15]) sequenceProblems++;
  }
  assert.equal(rows, 20_000);
  assert.equal(badChecksums, 0);
  assert.equal(sequenceProblems, 0);
  assert.equal(
    tcpStreams.size,
    summary.kinds["tcp-session"] + summary.kinds["tcp-refused"] + summary.kinds["tcp-unreachable"],
  );
  assert.equal(
    udpStreams.size,
    summary.kinds["udp-dns"] + summary.kinds["udp-stream"] + summary.kinds["udp-closed-port"],
  );
  assert.equal(echoSessions.size, summary.kinds["icmp-echo"]);

  const source = await openCapture(path);
  const decoder = new PacketDecoder();
  let records = 0;
  let decoded = 0;
  let ipv6 = 0;
  let previousNs = -1;
  let outOfOrder = 0;
  await forEachRecord(source, (record) => {
    records++;
    if (decoder.decode(record) === PacketClass.Decoded) decoded++;
    if (decoder.packet.ipVersion === 6) ipv6++;
    const ns = record.tsSec * 1e9 + record.tsNsec;
    if (ns <= previousNs) outOfOrder++;
    previousNs = ns;
  });
  assert.equal(source.warnings.length, 0);
  await source.close();
  assert.equal(records, 20_000);
  assert.equal(decoded, 20_000);
  assert.equal(outOfOrder, 0);
  assert.ok(ipv6 > 1000 && ipv6 < 6000, `IPv6 packets ${ipv6}`);
});

test("pcapng and nanosecond pcap outputs hold the same packets", async () => {
  for (const [format, fileType] of [
    ["pcapng", "pcapng"],
    ["pcap-nsec", "nsecpcap"],
  ] as const) {
    const path = join(directory, `formats.${format}`);
    const summary = await writeSyntheticCapture(createWriteStream(path), {
      ...SMALL,
      packets: 2_000,
      conversations: 100,
      format,
    });
    assert.equal(summary.packets, 2_000);
    const info = execFileSync("capinfos", ["-M", "-T", "-c", "-t", path], { encoding: "utf8" });
    assert.equal(info.trim().split("\n")[1], `${path}\t${fileType}\t2000`);
  }
});

test("one packet per conversation is possible, and the totals still add up", async () => {
  const { summary } = await hashOf({ packets: 500, conversations: 500, seed: 1 });
  assert.equal(summary.packets, 500);
  const { summary: one } = await hashOf({ packets: 1, conversations: 1, seed: 1 });
  assert.equal(one.packets, 1);
});
