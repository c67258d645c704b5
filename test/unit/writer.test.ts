import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { PcapWriter, PcapngWriter, type CaptureWriter } from "../../lib/capture/writer.js";
import { openCapture } from "../../lib/capture/open.js";
import { forEachRecord, type CaptureRecord } from "../../lib/capture/source.js";

const directory = mkdtempSync(join(tmpdir(), "writer-test-"));
test.after(() => rmSync(directory, { recursive: true, force: true }));

/** A minimal Ethernet/IPv4/UDP frame whose last payload byte is `tag`. */
function udpFrame(tag: number): Buffer {
  const frame = Buffer.alloc(14 + 20 + 8 + 4);
  frame.writeUInt16BE(0x0800, 12);
  frame[14] = 0x45;
  frame.writeUInt16BE(32, 16);
  frame[22] = 64;
  frame[23] = 17;
  frame.writeUInt32BE(0x0a000001, 26);
  frame.writeUInt32BE(0x0a000002, 30);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += frame.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  frame.writeUInt16BE(~sum & 0xffff, 24);
  frame.writeUInt16BE(1000, 34);
  frame.writeUInt16BE(2000, 36);
  frame.writeUInt16BE(12, 38);
  frame[45] = tag;
  return frame;
}

function tshark(file: string, fields: string[]): string[][] {
  const out = execFileSync("tshark", ["-r", file, "-T", "fields", ...fields.flatMap((f) => ["-e", f])], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  return out
    .trim()
    .split("\n")
    .map((line) => line.split("\t"));
}

function capinfos(file: string): Record<string, string> {
  const out = execFileSync("capinfos", ["-M", "-T", "-c", "-t", "-E", "-l", "-u", file], {
    encoding: "utf8",
  });
  const [header, row] = out.trim().split("\n");
  const names = header.replace(/^#/, "").split("\t");
  const values = row.split("\t");
  return Object.fromEntries(names.map((name, i) => [name.trim(), values[i]]));
}

async function writeFile(
  path: string,
  make: (out: Writable) => CaptureWriter,
  body: (w: CaptureWriter) => void,
) {
  const writer = make(createWriteStream(path));
  body(writer);
  await writer.close();
}

async function readAll(path: string): Promise<{ rows: number[][]; warnings: number; interfaces: number }> {
  const source = await openCapture(path);
  const rows: number[][] = [];
  await forEachRecord(source, (r: CaptureRecord) => {
    rows.push([
      r.tsSec,
      r.tsNsec,
      r.caplen,
      r.origlen,
      r.linkType,
      r.interfaceId,
      r.data[r.offset + r.caplen - 1],
    ]);
  });
  const result = { rows, warnings: source.warnings.length, interfaces: source.interfaces.length };
  await source.close();
  return result;
}

for (const byteOrder of ["little", "big"] as const) {
  for (const nanosecond of [false, true]) {
    test(`pcap ${byteOrder}-endian ${nanosecond ? "ns" : "us"}: tshark, capinfos and our reader agree`, async () => {
      const path = join(directory, `p-${byteOrder}-${nanosecond}.pcap`);
      await writeFile(
        path,
        (out) => new PcapWriter(out, { byteOrder, nanosecond, snaplen: 44, chunkBytes: 4096 }),
        (w) => {
          for (let i = 0; i < 300; i++)
            w.writeRecord(1_700_000_000 + i, 123_456_789, udpFrame(i & 0xff), 0, 46);
        },
      );
      const info = capinfos(path);
      assert.equal(info["Number of packets"], "300");
      assert.equal(info["File type"], nanosecond ? "nsecpcap" : "pcap");
      assert.equal(info["File encapsulation"], "ether");
      const frames = tshark(path, ["frame.time_epoch", "frame.cap_len", "frame.len", "udp.srcport"]);
      assert.equal(frames.length, 300);
      assert.deepEqual(frames[299], [
        nanosecond ? "1700000299.123456789" : "1700000299.123456000",
        "44",
        "46",
        "1000",
      ]);
      const read = await readAll(path);
      assert.equal(read.warnings, 0);
      assert.equal(read.rows.length, 300);
      // Cut to the snaplen of 44: the last captured byte is payload byte 1, which is 0.
      assert.deepEqual(read.rows[7], [
        1_700_000_007,
        nanosecond ? 123_456_789 : 123_456_000,
        44,
        46,
        1,
        0,
        0,
      ]);
    });
  }
}

test("pcapng: interfaces with tsresol/tsoffset, EPB, SPB, ISB, two sections of each byte order", async () => {
  const path = join(directory, "multi.pcapng");
  await writeFile(
    path,
    (out) =>
      new PcapngWriter(out, {
        userApplication: "writer.test",
        interfaces: [
          { linkType: 1, name: "eth0" },
          { linkType: 1, name: "eth1", tsResolution: { base: 10, exponent: 9 } },
          { linkType: 1, name: "eth2", tsResolution: { base: 2, exponent: 20 }, tsOffsetSec: 1_600_000_000 },
        ],
        chunkBytes: 4096,
      }),
    (writer) => {
      const w = writer as PcapngWriter;
      for (let i = 0; i < 90; i++)
        w.writeRecord(1_700_000_000, 500_000_001 + i, udpFrame(i), 0, 46, 46, i % 3);
      w.writeSimplePacket(udpFrame(200), 0, 46);
      w.writeInterfaceStatistics(1, 1_700_000_001, 0, { received: 91, osDropped: 2 });
      w.startSection({ byteOrder: "big", interfaces: [{ linkType: 1, snaplen: 40, name: "be0" }] });
      w.writeRecord(1_700_000_002, 999_999_999, udpFrame(201), 0, 46);
      w.writeRecord(4_294_967_296 + 5, 7_000, udpFrame(202), 0, 46);
    },
  );
  const info = capinfos(path);
  assert.equal(info["Number of packets"], "93");
  assert.equal(info["File type"], "pcapng");
  const frames = tshark(path, ["frame.time_epoch", "frame.interface_name", "frame.cap_len"]);
  assert.equal(frames.length, 93);
  assert.deepEqual(frames[0], ["1700000000.500000000", "eth0", "46"]);
  assert.deepEqual(frames[1], ["1700000000.500000002", "eth1", "46"]);
  // 2^-20 s units: 500000003 ns is 524288.003 units, kept as 524288 units = exactly 0.5 s.
  assert.equal(frames[2][0], "1700000000.500000000");
  assert.equal(frames[2][1], "eth2");
  // tshark 4.0 names a later section's interfaces after the first section's, so only time and length.
  assert.deepEqual([frames[92][0], frames[92][2]], ["4294967301.000007000", "40"]);
  const plain = execFileSync("capinfos", [path], { encoding: "utf8" });
  assert.match(plain, /Number of interfaces in file: 4\n/);
  assert.match(plain, /Interface #3 info:\n\s+Name = be0\n/);

  const read = await readAll(path);
  assert.equal(read.warnings, 0);
  assert.equal(read.rows.length, 93);
  assert.equal(read.interfaces, 4);
  assert.deepEqual(read.rows[1], [1_700_000_000, 500_000_002, 46, 46, 1, 1, 1]);
  assert.deepEqual(read.rows[2], [1_700_000_000, 500_000_000, 46, 46, 1, 2, 2]);
  assert.deepEqual(read.rows[91], [1_700_000_002, 999_999_000, 40, 46, 1, 3, 12]);
  assert.deepEqual(read.rows[92], [4_294_967_301, 7_000, 40, 46, 1, 3, 12]);
  // ISB statistics reach the interface.
  const source = await openCapture(path);
  await forEachRecord(source, () => {});
  assert.equal(source.interfaces[1].statistics?.received, 91);
  assert.equal(source.interfaces[1].statistics?.osDropped, 2);
  await source.close();
});

test("writer waits on a slow stream instead of buffering without bound", async () => {
  let pendingCallbacks = 0;
  let maxPending = 0;
  let bytes = 0;
  const slow = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _encoding, callback) {
      pendingCallbacks++;
      maxPending = Math.max(maxPending, pendingCallbacks);
      bytes += chunk.length;
      setTimeout(() => {
        pendingCallbacks--;
        callback();
      }, 1);
    },
  });
  const writer = new PcapWriter(slow, { chunkBytes: 4096 });
  const frame = udpFrame(1);
  let waits = 0;
  for (let i = 0; i < 2000; i++) {
    const wait = writer.writeRecord(1, 0, frame, 0, frame.length);
    if (wait) {
      waits++;
      await wait;
    }
  }
  await writer.close();
  assert.equal(bytes, 24 + 2000 * (16 + 46));
  assert.equal(writer.bytesWritten, bytes);
  assert.ok(waits > 10, `expected the writer to ask for waits, got ${waits}`);
  assert.equal(maxPending, 1);
});

test("a stream error surfaces on the next write or close, not as a crash", async () => {
  const failing = new Writable({
    write(_chunk, _encoding, callback) {
      callback(new Error("disk full"));
    },
  });
  const writer = new PcapWriter(failing, { chunkBytes: 4096 });
  const frame = udpFrame(1);
  await assert.rejects(async () => {
    for (let i = 0; i < 1000; i++) {
      const wait = writer.writeRecord(1, 0, frame, 0, frame.length);
      if (wait) await wait;
    }
    await writer.close();
  }, /disk full/);
});

test("bad arguments are refused with a clear error", () => {
  const writer = new PcapWriter(new Writable({ write: (_c, _e, cb) => cb() }));
  const frame = udpFrame(1);
  assert.throws(() => writer.writeRecord(1, 1_000_000_000, frame, 0, 46), /nanoseconds/);
  assert.throws(() => writer.writeRecord(1, 0, frame, 40, 10), /outside a buffer of 46/);
  assert.throws(() => writer.writeRecord(2 ** 32, 0, frame, 0, 46), /do not fit classic pcap/);
  assert.throws(() => writer.writeRecord(1, 0, frame, 0, 46, 46, 1), /one interface/);
  const ng = new PcapngWriter(new Writable({ write: (_c, _e, cb) => cb() }));
  assert.throws(() => ng.writeRecord(1, 0, frame, 0, 46, 46, 1), /interface 1 is not described/);
});

test("pcap header bytes are exactly as libpcap writes them", async () => {
  const path = join(directory, "header.pcap");
  await writeFile(
    path,
    (out) => new PcapWriter(out, { byteOrder: "big", nanosecond: true, linkType: 101, snaplen: 65535 }),
    () => {},
  );
  assert.equal(readFileSync(path).toString("hex"), "a1b23c4d0002000400000000000000000000ffff00000065");
});
