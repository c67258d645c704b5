/**
 * Hand-made hostile captures and inputs, each with what it must produce: absurd lengths, zero-length
 * and huge pcapng blocks, IPv6 extension header chains, overlapping fragments, ICMP errors nested in
 * ICMP errors, FTP commands with huge numbers and thousands of commas, floods beyond the table, the
 * fragment memory and the reorder window, NAT rules that jump deep or exponentially, and outputs that
 * cannot be written. Work stays bounded by the input, state by the limits, and every record is counted.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { PcapngWriter } from "../../lib/capture/writer.js";
import { openCapture } from "../../lib/capture/open.js";
import { reorderSource, type ReorderedSource } from "../../lib/capture/reorder.js";
import { forEachRecord } from "../../lib/capture/source.js";
import { collectCaptureStatistics } from "../../lib/pipeline/capture-stats.js";
import { replayCaptures } from "../../lib/pipeline/replay.js";
import { Verdict } from "../../lib/conntrack/engine.js";
import { parseNatRules } from "../../lib/conntrack/nat/iptables.js";
import { ConntrackEngine } from "../../lib/conntrack/engine.js";
import { DEFAULT_FRAGMENT_MEMORY_LIMIT, FRAGMENT_OVERHEAD_BYTES } from "../../lib/decode/defrag.js";
import { ethernet, extensionHeader, icmp, ipv4, ipv6, tcp } from "../unit/packet-builders.js";
import { makeTcp } from "../unit/conntrack-fixtures.js";
import { formatExpectEvent } from "../../lib/report/expect-text.js";
import { runCli } from "../support/cli.js";
import { framesPcapFile, type Frame } from "../support/frames-file.js";
import { repoRoot } from "../support/corpus.js";

const scratch = mkdtempSync(join(tmpdir(), "pcc-hostile-"));
process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));

function collect(): { sink: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk));
      callback();
    },
  });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

/** A classic pcap of `frames` (link type `linkType`) in the scratch directory. */
function pcapFile(name: string, frames: readonly Frame[], linkType = 1): Promise<string> {
  return framesPcapFile(join(scratch, name), frames, linkType);
}

async function pcapngBytes(frames: readonly Frame[]): Promise<Buffer> {
  const { sink, bytes } = collect();
  const writer = new PcapngWriter(sink, { interfaces: [{ linkType: 1 }] });
  for (const { bytes: frame, ts } of frames) {
    const sec = Math.floor(ts);
    const wait = writer.writeRecord(sec, Math.round((ts - sec) * 1e9), frame, 0, frame.length);
    if (wait) await wait;
  }
  await writer.close();
  return bytes();
}

const T0 = 1_764_000_000;
const CLIENT = "10.1.2.3";
const SERVER = "203.0.113.47";

function tcpFrame(fields: Parameters<typeof tcp>[0], payload: number[] = [], src = CLIENT, dst = SERVER) {
  return ethernet(0x0800, ipv4({ src, dst, protocol: 6 }, tcp(fields, payload)));
}

/** `seconds` of work for one run is plenty for inputs this size; more means unbounded work. */
function assertQuick(started: bigint, what: string, seconds = 10): void {
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  assert.ok(elapsed < seconds, `${what} took ${elapsed.toFixed(1)} s`);
}

function classSum(classes: Record<string, number>): number {
  return Object.values(classes).reduce((a, b) => a + b, 0);
}

// ------------------------------------------------------------------------------------ capture files

test("pcap: a record claiming 4 GiB ends the file with a warning naming its offset and number", async () => {
  const good = Array.from({ length: 3 }, (_, k) => ({ bytes: tcpFrame({ seq: k }), ts: T0 + k }));
  const path = await pcapFile("absurd-caplen.pcap", good);
  const bytes = readFileSync(path);
  const badAt = bytes.length;
  const header = Buffer.alloc(16);
  header.writeUInt32LE(T0 + 4, 0);
  header.writeUInt32LE(0xfffffff0, 8);
  header.writeUInt32LE(0xfffffff0, 12);
  writeFileSync(path, Buffer.concat([bytes, header, Buffer.alloc(4096, 0x41)]));

  const statistics = await collectCaptureStatistics([path]);
  assert.equal(statistics.records, 3);
  assert.equal(statistics.classes.decoded, 3);
  assert.equal(statistics.warnings.length, 1);
  const [warning] = statistics.warnings;
  assert.equal(warning.offset, badAt);
  assert.equal(warning.recordNumber, 4);
  assert.match(warning.message, /packet 4 claims 4294967280 captured bytes/);

  const cli = runCli(["stats", path]);
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stderr, new RegExp(`absurd-caplen\\.pcap: .*\\(byte offset ${badAt}, packet 4\\)`));
});

test("pcap: an absurd original length is kept as a record's, not allocated", async () => {
  const frame = tcpFrame({ flags: 0x02 });
  const path = await pcapFile("absurd-origlen.pcap", [{ bytes: frame, ts: T0 }]);
  const bytes = readFileSync(path);
  bytes.writeUInt32LE(0xffffffff, 24 + 12);
  writeFileSync(path, bytes);
  const statistics = await collectCaptureStatistics([path]);
  assert.equal(statistics.records, 1);
  assert.deepEqual(statistics.warnings, []);
});

test("pcapng: zero-length and huge-length blocks end the file at their offset; every record before counts", async () => {
  const frames = [0, 1].map((k) => ({ bytes: tcpFrame({ seq: k }), ts: T0 + k }));
  const good = await pcapngBytes(frames);
  for (const [name, length, why] of [
    ["zero", 0, /total length of 0 bytes \(less than the minimum 12\)/],
    ["huge", 0xfffffff0, /total length of 4294967280 bytes \(more than the 16777216 accepted\)/],
    ["odd", 13, /total length of 13 bytes \(not a multiple of 4\)/],
  ] as const) {
    const block = Buffer.alloc(12);
    block.writeUInt32LE(6, 0);
    block.writeUInt32LE(length, 4);
    const path = join(scratch, `block-${name}.pcapng`);
    writeFileSync(path, Buffer.concat([good, block, good.subarray(0, 64)]));
    const statistics = await collectCaptureStatistics([path]);
    assert.equal(statistics.records, 2, name);
    assert.equal(statistics.warnings.length, 1, name);
    assert.equal(statistics.warnings[0].offset, good.length, name);
    assert.equal(statistics.warnings[0].recordNumber, 3, name);
    assert.match(statistics.warnings[0].message, why);
  }
});

test("pcapng: packet blocks too short for their fields are skipped with a warning, reading goes on", async () => {
  const frames = [0, 1].map((k) => ({ bytes: tcpFrame({ seq: k }), ts: T0 + k }));
  const good = await pcapngBytes(frames);
  const shortBlock = (type: number, length: number): Buffer => {
    const block = Buffer.alloc(length);
    block.writeUInt32LE(type, 0);
    block.writeUInt32LE(length, 4);
    block.writeUInt32LE(length, length - 4);
    return block;
  };
  // A 12-byte simple packet block would have a captured length of -4; a 16-byte enhanced one has no fields.
  // The two packet blocks again, after the damage: reading goes on to them.
  const tail = good.subarray((await pcapngBytes([])).length);
  const path = join(scratch, "short-blocks.pcapng");
  writeFileSync(path, Buffer.concat([good, shortBlock(3, 12), shortBlock(6, 16), shortBlock(2, 28), tail]));
  const statistics = await collectCaptureStatistics([path]);
  assert.deepEqual(
    statistics.warnings.map((w) => [w.recordNumber, w.message.replace(/ block of.*/, "")]),
    [
      [3, "packet 3: simple packet"],
      [4, "packet 4: enhanced packet"],
      [5, "packet 5: packet"],
    ],
  );
  assert.equal(statistics.records, 4);
  for (const input of statistics.inputs) assert.equal(classSum(input.classes), input.records);
});

test("pcapng: a flood of interface blocks keeps 65 536 interfaces, not one per block", async () => {
  const good = await pcapngBytes([{ bytes: tcpFrame({}), ts: T0 }]);
  const header = await pcapngBytes([]);
  const idb = header.subarray(28); // the writer's one interface description block, after the SHB
  const packet = good.subarray(header.length);
  const onInterface = (id: number): Buffer => {
    const block = Buffer.from(packet);
    block.writeUInt32LE(id, 8);
    return block;
  };
  const path = join(scratch, "interface-flood.pcapng");
  const idbs = Buffer.alloc(idb.length * 70_000);
  for (let k = 0; k < 70_000; k++) idb.copy(idbs, k * idb.length);
  writeFileSync(path, Buffer.concat([header.subarray(0, 28), idbs, onInterface(69_999), onInterface(0)]));
  const statistics = await collectCaptureStatistics([path]);
  assert.equal(statistics.inputs[0].interfaces.length, 65_536);
  assert.equal(statistics.records, 1);
  assert.deepEqual(
    statistics.warnings.map((w) => w.recordNumber),
    [1, 1],
  );
  assert.match(statistics.warnings[0].message, /^interface 65536 of section 0 is one more than the 65536/);
  assert.match(statistics.warnings[1].message, /^packet 1 refers to interface 69999 of section 0, one past/);
});

test("pcapng: an interface name with terminal escapes is printed as \\xNN, never sent to the terminal", async () => {
  const { sink, bytes } = collect();
  const writer = new PcapngWriter(sink, {
    interfaces: [{ linkType: 1, name: "eth0\u001b[2J\u001b]0;owned\u0007" }],
  });
  await writer.close();
  const path = join(scratch, "escape-name.pcapng");
  writeFileSync(path, bytes());
  const text = runCli(["stats", path]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /snaplen \d+ eth0\\x1b\[2J\\x1b\]0;owned\\x07\n/);
  assert.ok(!text.stdout.includes("\u001b"));
  // JSON escapes them itself.
  const json = runCli(["stats", path, "--format", "json"]);
  assert.equal(JSON.parse(json.stdout).inputs[0].interfaces[0].name, "eth0\u001b[2J\u001b]0;owned\u0007");
});

// ----------------------------------------------------------------------------------- IP and ICMP

test("IPv6: a chain of 2000 extension headers (and one pointing at itself) is malformed, quickly", async () => {
  const chain = (count: number, type: number): number[] => {
    const out: number[] = [];
    for (let k = 0; k < count; k++) out.push(...extensionHeader(k + 1 < count ? type : 6, 0, 8));
    return out;
  };
  const frames: Frame[] = [
    // Destination options after destination options, 2000 deep: 16 000 bytes of headers.
    { bytes: ethernet(0x86dd, ipv6({ nextHeader: 60 }, [...chain(2000, 60), ...tcp({})])), ts: T0 },
    // One hop-by-hop header that names hop-by-hop again (a "loop" by next-header value).
    { bytes: ethernet(0x86dd, ipv6({ nextHeader: 0 }, [0, 0, 0, 0, 0, 0, 0, 0])), ts: T0 + 1 },
    // A routing header whose length runs past the payload.
    { bytes: ethernet(0x86dd, ipv6({ nextHeader: 43 }, [6, 255, 0, 0, 0, 0, 0, 0])), ts: T0 + 2 },
  ];
  const path = await pcapFile("ipv6-chains.pcap", frames);
  const started = process.hrtime.bigint();
  const statistics = await collectCaptureStatistics([path]);
  assertQuick(started, "three IPv6 packets");
  assert.equal(statistics.records, 3);
  assert.equal(statistics.classes.malformed, 3);
  assert.deepEqual(Object.keys(statistics.reasons).sort(), [
    "malformed: ipv6 extension header beyond the payload",
    "malformed: ipv6 extension header chain too long",
  ]);
  assert.equal(statistics.reasons["malformed: ipv6 extension header chain too long"], 1);
});

test("fragments: overlapping pieces drop their datagram, identical ones are duplicates; all counted", async () => {
  const payload = Array.from({ length: 48 }, (_, k) => k);
  const datagram = [0x13, 0x88, 0x00, 0x35, 0x00, 56, 0, 0, ...payload]; // UDP 5000 → 53
  const piece = (id: number, from: number, to: number, more: boolean) =>
    ethernet(
      0x0800,
      ipv4(
        { protocol: 17, id, fragmentOffset: from, moreFragments: more },
        Buffer.from(datagram.slice(from, to)),
      ),
    );
  const frames: Frame[] = [
    // Datagram 1: [0,24) then [16,40) overlaps (RFC 5722 for IPv6, Linux drops IPv4 overlaps too).
    { bytes: piece(1, 0, 24, true), ts: T0 },
    { bytes: piece(1, 16, 40, true), ts: T0 + 0.1 },
    { bytes: piece(1, 40, 56, false), ts: T0 + 0.2 },
    // Datagram 2: [0,24) twice, then the rest: the duplicate is dropped, the datagram completes.
    { bytes: piece(2, 0, 24, true), ts: T0 + 0.3 },
    { bytes: piece(2, 0, 24, true), ts: T0 + 0.4 },
    { bytes: piece(2, 24, 56, false), ts: T0 + 0.5 },
  ];
  const path = await pcapFile("overlap.pcap", frames);
  const statistics = await collectCaptureStatistics([path]);
  const fragments = (statistics.decoder as { fragments: Record<string, number> }).fragments;
  assert.equal(statistics.records, 6);
  assert.equal(classSum(statistics.classes), 6);
  assert.equal(statistics.classes.decoded, 1, "datagram 2, with its last fragment");
  assert.equal(fragments.datagramsReassembled, 1);
  assert.equal(fragments.overlaps, 1);
  assert.equal(fragments.duplicates, 1);
  assert.equal(fragments.datagramsDropped, 1);
});

test("fragments: a flood of first fragments never completed stays within the reassembly memory", async () => {
  const data = Buffer.alloc(1400, 0x55);
  const frames: Frame[] = [];
  // 4 MiB / (1400 + 576 + 256) ≈ 1880 queues fit; 3000 are offered.
  for (let id = 0; id < 3000; id++) {
    frames.push({
      bytes: ethernet(0x0800, ipv4({ protocol: 17, id, moreFragments: true }, data)),
      ts: T0 + id * 0.001,
    });
  }
  const path = await pcapFile("fragment-flood.pcap", frames);
  const statistics = await collectCaptureStatistics([path]);
  const fragments = (statistics.decoder as { fragments: Record<string, number> }).fragments;
  assert.equal(statistics.records, 3000);
  assert.equal(statistics.classes.fragment, 3000);
  assert.ok(fragments.refusedForMemory > 1000, `refused ${fragments.refusedForMemory}`);
  assert.equal(fragments.queued + fragments.refusedForMemory, 3000);
  assert.ok(fragments.peakBytesHeld <= DEFAULT_FRAGMENT_MEMORY_LIMIT + 1400 + FRAGMENT_OVERHEAD_BYTES + 256);
  // At the end of the input every queue is dropped as timed out: nothing is kept.
  assert.equal(fragments.queues, 0);
  assert.equal(fragments.bytesHeld, 0);
});

test("ICMP errors nested 30 deep in ICMP errors: decoded, related to nothing, INVALID", async () => {
  let inner: Buffer = ipv4({ src: CLIENT, dst: SERVER, protocol: 6 }, tcp({ srcPort: 40000, dstPort: 80 }));
  for (let depth = 0; depth < 30; depth++) {
    inner = ipv4({ src: SERVER, dst: CLIENT, protocol: 1 }, icmp(3, 3, [0, 0, 0, 0], inner));
  }
  const frames: Frame[] = [
    { bytes: tcpFrame({ srcPort: 40000, dstPort: 80, flags: 0x02 }), ts: T0 },
    { bytes: ethernet(0x0800, inner), ts: T0 + 0.1 },
  ];
  const path = await pcapFile("nested-icmp.pcap", frames);
  const verdicts: number[] = [];
  const reasons: string[] = [];
  const result = await replayCaptures([path], {
    onPacket: (_record, _class, _packet, verdict, reason) => {
      verdicts.push(verdict);
      reasons.push(reason);
    },
  });
  assert.equal(result.records, 2);
  assert.equal(result.tracked, 2);
  assert.deepEqual(verdicts, [Verdict.New, Verdict.Invalid]);
  // The quoted error names no connection (an error type has no reply to invert): INVALID.
  assert.equal(reasons[1], "icmp: error for no tracked connection");
  assert.equal(result.engine.liveConnections, 1);
});

// ------------------------------------------------------------------------------------------- FTP

test("FTP: huge numbers wrap as in the kernel; thousands of commas and endless fields drop their packet", async () => {
  let clientSeq = 1000;
  let serverSeq = 50000;
  let ts = T0;
  const frames: Frame[] = [];
  const send = (fromClient: boolean, flags: number, text = "") => {
    const payload = Array.from(Buffer.from(text, "latin1"));
    const seq = fromClient ? clientSeq : serverSeq;
    const ack = fromClient ? serverSeq : clientSeq;
    const fields = fromClient
      ? { srcPort: 40000, dstPort: 21, seq, ack, flags }
      : { srcPort: 21, dstPort: 40000, seq, ack, flags };
    const [src, dst] = fromClient ? [CLIENT, SERVER] : [SERVER, CLIENT];
    frames.push({ bytes: tcpFrame(fields, payload, src, dst), ts: (ts += 0.01) });
    const advance = payload.length + (flags & 0x02 ? 1 : 0);
    if (fromClient) clientSeq += advance;
    else serverSeq += advance;
  };
  send(true, 0x02);
  send(false, 0x12);
  send(true, 0x10);
  send(false, 0x18, "220 ready\r\n");
  send(true, 0x18, "USER anonymous\r\n");
  // u32 numbers wrap: 10^400 - 1 is 0xffffffff, so the port is 0xff01 (the kernel's try_number too).
  send(true, 0x18, `PORT 10,1,2,3,${"9".repeat(400)},1\r\n`);
  const malformed = [
    `PORT ${",".repeat(5000)}\r\n`,
    `PORT ${Array(3000).fill("10").join(",")}\r\n`,
    `EPRT |1|${"1.".repeat(3000)}1|80|\r\n`,
    `EPRT |2|${":".repeat(4000)}|99999999999|\r\n`,
  ];
  // After a dropped segment the next one is not read (it does not start at a remembered line end):
  // a NOOP between them lets each hostile command be read.
  for (const text of malformed) {
    send(true, 0x18, text);
    send(true, 0x18, "NOOP\r\n");
  }
  send(false, 0x18, `227 Entering Passive Mode (${"9".repeat(8000)})\r\n`);
  send(false, 0x18, "200 ok\r\n");
  // A 16-bit port of 8000 nines wraps to 65535 (get_port's u16), so this one is an expectation too.
  send(false, 0x18, `229 Entering Extended Passive Mode (|||${"9".repeat(8000)}|)\r\n`);
  const path = await pcapFile("ftp-hostile.pcap", frames);
  const expected: string[] = [];
  const started = process.hrtime.bigint();
  const result = await replayCaptures([path], {
    drain: true,
    onExpectEvent: (event) => {
      if (event.type === "NEW") expected.push(formatExpectEvent(event, { timestamp: false }));
    },
  });
  assertQuick(started, `an FTP session of ${frames.length} packets`);
  const helpers = result.engine.stats.helpers;
  assert.equal(result.records, frames.length);
  assert.equal(result.tracked, frames.length);
  assert.equal(helpers.commands, 2);
  assert.equal(expected.length, 2);
  assert.match(expected[0], / src=203\.0\.113\.47 dst=10\.1\.2\.3 sport=0 dport=65281 /);
  assert.match(expected[1], / src=10\.1\.2\.3 dst=203\.0\.113\.47 sport=0 dport=65535 /);
  assert.equal(helpers.malformedDrops, malformed.length + 1);
  assert.equal(result.engine.stats.verdicts[Verdict.Dropped], malformed.length + 1);
  assert.equal(helpers.partialDrops, 0);
});

// ------------------------------------------------------------------------------------------ limits

test("a SYN flood beyond nf_conntrack_max: the table holds at most the limit, every SYN accounted for", async () => {
  const frames: Frame[] = [];
  for (let k = 0; k < 1000; k++) {
    frames.push({
      bytes: tcpFrame({ srcPort: 1024 + k, dstPort: 80, flags: 0x02, seq: k }),
      ts: T0 + k * 1e-4,
    });
  }
  const path = await pcapFile("syn-flood.pcap", frames);
  const result = await replayCaptures([path], { settings: { "net.netfilter.nf_conntrack_max": 100 } });
  const stats = result.engine.stats;
  assert.equal(result.tracked, 1000);
  assert.ok(stats.maxLive <= 100, `max live ${stats.maxLive}`);
  assert.equal(result.engine.liveConnections, 100);
  // Each SYN past the limit either evicted an unassured entry (early_drop) or was dropped.
  assert.equal(stats.earlyDrops + stats.tableFullDrops, 900);
  assert.equal(stats.connectionsCreated, 1000 - stats.tableFullDrops);
  assert.equal(stats.verdicts[Verdict.New] + stats.verdicts[Verdict.Dropped], 1000);

  // The command line's summary accounts for them: evicted entries among the killed, refused SYNs dropped.
  const cli = runCli(["events", path, "--timeout", "nf_conntrack_max=100", "--summary", "-o", "/dev/null"]);
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stderr, new RegExp(`\\n    dropped +${stats.tableFullDrops}\\n`));
  assert.match(cli.stderr, new RegExp(`\\n    killed +${stats.connectionsKilled}\\n`));
  assert.equal(stats.connectionsKilled, stats.earlyDrops);
  assert.match(cli.stderr, /\n {4}most live at once +100\n/);
});

test("a reorder window flood: held records stay within the slots and bytes, each delivered once, in order", async () => {
  // Every record is within the hour's window of the newest: all of them would wait for it.
  const frames: Frame[] = [];
  for (let k = 0; k < 2000; k++) frames.push({ bytes: tcpFrame({ seq: k }), ts: T0 + k * 0.001 });
  const path = await pcapFile("reorder-flood.pcap", frames);
  for (const [maxHeldRecords, maxHeldBytes] of [
    [64, 1 << 20],
    [65536, 4096],
  ]) {
    const source = reorderSource(await openCapture(path), {
      windowNs: 3600e9,
      maxHeldRecords,
      maxHeldBytes,
    }) as ReorderedSource;
    const numbers: number[] = [];
    await forEachRecord(source, (record) => numbers.push(record.recordNumber));
    await source.close();
    assert.deepEqual(
      numbers,
      frames.map((_, k) => k + 1),
    );
    // All but what the slots or the arena hold are released before their time, and counted.
    const held = Math.min(maxHeldRecords, Math.floor(maxHeldBytes / frames[0].bytes.length));
    assert.ok(source.releasedEarly >= 2000 - held, `released early ${source.releasedEarly} (${held} held)`);
    assert.equal(source.lateBeyondWindow, 0);
  }
});

test("records out of time order: --summary and summary.json say what the reorder window did", async () => {
  // 0.001 is late within the 10 ms window; 0.2 comes after 0.5 was released: beyond it.
  const times = [0, 0.003, 0.001, 0.5, 0.6, 0.2];
  const frames: Frame[] = times.map((offset, k) => ({ bytes: tcpFrame({ seq: k }), ts: T0 + offset }));
  const path = await pcapFile("out-of-order.pcap", frames);
  const result = runCli(["events", path, "--reorder-window", "10ms", "--summary", "-o", "/dev/null"]);
  assert.equal(result.status, 0, result.stderr);
  const value = (label: string) => new RegExp(`^\\s+${label}\\s+(\\d+)$`, "m").exec(result.stderr)?.[1];
  assert.equal(value("records out of time order \\(as read\\)"), "2");
  assert.equal(value("put back in order \\(--reorder-window\\)"), "1");
  assert.equal(value("later than the window \\(left as read\\)"), "1");
  assert.equal(value("released early \\(window memory full\\)"), "0");
  const directory = join(scratch, "out-of-order-report");
  const report = runCli(["report", path, "--reorder-window", "10ms", "-o", directory]);
  assert.equal(report.status, 0, report.stderr);
  const summary = JSON.parse(readFileSync(join(directory, "summary.json"), "utf8"));
  assert.deepEqual(summary.capture.order, {
    outOfOrder: 2,
    reorderWindowNs: 10e6,
    reordered: 1,
    lateBeyondWindow: 1,
    releasedEarly: 0,
  });
});

// --------------------------------------------------------------------------------------- NAT rules

test("NAT rules: 50 000 chains jumping one into the next read without exhausting the stack", () => {
  const n = 50_000;
  const lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"];
  for (let k = 0; k < n; k++) lines.push(`:C${k} - [0:0]`);
  lines.push("-A POSTROUTING -j C0");
  for (let k = 0; k + 1 < n; k++) lines.push(`-A C${k} -j C${k + 1}`);
  lines.push(`-A C${n - 1} -j C0`);
  lines.push("COMMIT");
  const { errors } = parseNatRules(lines.join("\n"), "deep.rules");
  // The last jump closes the circle: reported as a loop, not a crash.
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /^chains jump in a loop: C0 -> C1 -> /);
  assert.equal(errors[0].origin, "deep.rules:0");
});

test(
  "NAT rules: chains that each jump twice to the next are walked once per chain (no 2^40 walk)",
  { timeout: 60_000 },
  () => {
    const text = readFileSync(
      join(repoRoot, "test", "fuzz", "regressions", "nat-rules-exponential-jumps.bin"),
      "utf8",
    );
    const { rules, errors } = parseNatRules(text, "exp.rules");
    assert.deepEqual(errors, []);
    const engine = new ConntrackEngine({ nat: { rules, vantage: "inside", outInterface: "out0" } });
    const started = process.hrtime.bigint();
    assert.equal(
      engine.process(makeTcp({ src: CLIENT, dst: SERVER, sport: 4000, dport: 80, flags: "S", ts: 1 })),
      Verdict.New,
    );
    assertQuick(started, "one NAT lookup", 5);
  },
);

// ------------------------------------------------------------------------------------------ outputs

const SAMPLE = join(repoRoot, "samples", "ping", "inside.pcap");

test("outputs: an existing file or report is replaced only with --force", () => {
  const directory = mkdtempSync(join(scratch, "force-"));
  const output = join(directory, "stats.txt");
  writeFileSync(output, "precious\n");
  for (const command of [
    ["stats", SAMPLE, "-o", output],
    ["events", SAMPLE, "-o", output],
    ["table", SAMPLE, "-o", output],
    ["events", SAMPLE, "-o", join(directory, "new.txt"), "--expect-output", output],
  ]) {
    const refused = runCli(command);
    assert.equal(refused.status, 2, command.join(" "));
    assert.equal(refused.stderr, `pcap-conntrack: ${output}: exists; pass --force to replace it\n`);
    assert.equal(readFileSync(output, "utf8"), "precious\n");
    assert.deepEqual(readdirSync(directory), ["stats.txt"], "nothing else made");
  }
  const forced = runCli(["stats", SAMPLE, "-o", output, "--force"]);
  assert.equal(forced.status, 0, forced.stderr);
  assert.match(readFileSync(output, "utf8"), /records/);

  const report = join(directory, "report");
  assert.equal(runCli(["report", SAMPLE, "-o", report]).status, 0);
  const again = runCli(["report", SAMPLE, "-o", report]);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /holds a report already \(flows\.csv, .*\); pass --force to replace it\n$/);
  assert.equal(runCli(["report", SAMPLE, "-o", report, "--force"]).status, 0);
  // An empty directory is no report: written without --force.
  const empty = join(directory, "empty");
  mkdirSync(empty);
  assert.equal(runCli(["report", SAMPLE, "-o", empty]).status, 0);
});

test("outputs: a path through a file, a full device and a read-only directory end in one line, exit 2", () => {
  const directory = mkdtempSync(join(scratch, "fail-"));
  const file = join(directory, "plain");
  writeFileSync(file, "x");
  const throughFile = runCli(["events", SAMPLE, "-o", join(file, "events.txt")]);
  assert.equal(throughFile.status, 2);
  assert.equal(
    throughFile.stderr,
    `pcap-conntrack: ${join(file, "events.txt")}: a part of the path is not a directory\n`,
  );

  if (existsSync("/dev/full")) {
    const full = runCli(["events", SAMPLE, "-o", "/dev/full"]);
    assert.equal(full.status, 2);
    assert.equal(full.stderr, "pcap-conntrack: /dev/full: no space left on device\n");
  }

  // Permission denied: as root nothing is, so the command runs as nobody (uid 65534) then.
  const locked = join(directory, "locked");
  mkdirSync(locked);
  chmodSync(locked, 0o555);
  chmodSync(directory, 0o755);
  const asRoot = process.getuid?.() === 0;
  const denied = spawnSync(
    process.execPath,
    [join(repoRoot, "dist", "cli", "main.js"), "stats", SAMPLE, "-o", join(locked, "stats.txt")],
    { encoding: "utf8", ...(asRoot ? { uid: 65534, gid: 65534 } : {}) },
  );
  assert.equal(denied.status, 2, denied.stderr);
  assert.equal(denied.stderr, `pcap-conntrack: ${join(locked, "stats.txt")}: permission denied\n`);
  assert.deepEqual(readdirSync(locked), []);
});

test("outputs: a disk that fills up leaves neither the output nor its temporary file", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("mounting a tmpfs needs root");
  const mountPoint = mkdtempSync(join(scratch, "tiny-"));
  if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=16k", "tmpfs", mountPoint]).status !== 0) {
    return t.skip("cannot mount a tmpfs here");
  }
  try {
    const frames: Frame[] = [];
    for (let k = 0; k < 500; k++)
      frames.push({ bytes: tcpFrame({ srcPort: 1024 + k, flags: 0x02 }), ts: T0 + k });
    const big = await pcapFile("many-connections.pcap", frames);
    const output = join(mountPoint, "events.csv");
    const result = runCli(["events", big, "--format", "json", "--drain", "-o", output]);
    const report = runCli(["report", big, "--drain", "-o", join(mountPoint, "report")]);
    assert.equal(result.status, 2, result.stderr);
    assert.equal(result.stderr, `pcap-conntrack: ${output}: no space left on device\n`);
    assert.deepEqual(
      readdirSync(mountPoint).filter((name) => name !== "report"),
      [],
    );
    assert.equal(report.status, 2, report.stderr);
    assert.match(report.stderr, /report: no space left on device\n$/);
    assert.deepEqual(
      readdirSync(join(mountPoint, "report")).filter((name) => name.includes(".partial-")),
      [],
      "no temporary report file left behind",
    );
  } finally {
    spawnSync("umount", [mountPoint]);
  }
});

test("outputs: a report that cannot be completed leaves the previous report as it was", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("mounting a tmpfs needs root");
  const mountPoint = mkdtempSync(join(scratch, "small-"));
  if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", mountPoint]).status !== 0) {
    return t.skip("cannot mount a tmpfs here");
  }
  try {
    const directory = join(mountPoint, "report");
    const first = runCli(["report", SAMPLE, "--drain", "-o", directory]);
    assert.equal(first.status, 0, first.stderr);
    const before = new Map(readdirSync(directory).map((name) => [name, readFileSync(join(directory, name))]));
    const frames: Frame[] = [];
    for (let k = 0; k < 3000; k++)
      frames.push({ bytes: tcpFrame({ srcPort: 1024 + (k % 60000), flags: 0x02 }), ts: T0 + k });
    const big = await pcapFile("fills-the-disk.pcap", frames);
    const second = runCli(["report", big, "--drain", "--force", "-o", directory]);
    assert.equal(second.status, 2, second.stderr);
    assert.match(second.stderr, /no space left on device\n$/);
    const after = readdirSync(directory);
    assert.deepEqual(after.sort(), [...before.keys()].sort(), "no temporary file left, none missing");
    for (const name of after)
      assert.ok(readFileSync(join(directory, name)).equals(before.get(name)!), `${name} is the previous one`);
  } finally {
    spawnSync("umount", [mountPoint]);
  }
});

test("settings: a 400-digit value in --sysctl or --timeout is a usage error, exit 2, not an internal one", () => {
  const huge = "9".repeat(400);
  const sysctl = join(scratch, "huge-sysctl.txt");
  writeFileSync(sysctl, `net.netfilter.nf_conntrack_tcp_timeout_established = ${huge}\n`);
  const fromFile = runCli(["events", SAMPLE, "--sysctl", sysctl]);
  assert.equal(fromFile.status, 2);
  assert.match(
    fromFile.stderr,
    /^pcap-conntrack: .*huge-sysctl\.txt: line 1: value is not a non-negative integer/,
  );
  const fromFlag = runCli(["events", SAMPLE, "--timeout", `tcp_timeout_established=${huge}`]);
  assert.equal(fromFlag.status, 2);
  assert.match(fromFlag.stderr, /^pcap-conntrack: --timeout: ".*" is not NAME=SECONDS\n$/);
});
