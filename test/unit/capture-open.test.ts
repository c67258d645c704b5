import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { openCapture } from "../../lib/capture/open.js";
import { CaptureError } from "../../lib/capture/source.js";
import {
  enhancedPacket,
  frame,
  interfaceDescription,
  pcapBytes,
  readAll,
  sectionHeader,
  writeScratch,
  type PcapSpec,
} from "./capture-fixtures.js";
import { commandAvailable } from "../support/corpus.js";

function spec(count: number): PcapSpec {
  const records = [];
  for (let index = 0; index < count; index++) {
    records.push({ sec: 100 + index, fraction: 10 * index, data: frame(index, 40 + (index % 50)) });
  }
  return { records };
}

function chunked(bytes: Buffer, size: number): Readable {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
  return Readable.from(chunks, { objectMode: false });
}

test("gzip is recognised by its magic, whatever the file name", async () => {
  const plain = pcapBytes(spec(500));
  const expected = await readAll(await openCapture(writeScratch("plain.pcap", plain)));
  const source = await openCapture(writeScratch("compressed-but-named.pcap", gzipSync(plain)), {
    bufferBytes: 256,
  });
  assert.equal(source.compressed, true);
  assert.equal(source.format, "pcap");
  const records = await readAll(source);
  assert.equal(records.length, 500);
  assert.deepEqual(records, expected);
  assert.deepEqual(source.warnings, []);
});

test("gzip pcapng", async () => {
  const bytes = Buffer.concat([
    sectionHeader(),
    interfaceDescription(1, 0),
    enhancedPacket(0, 7_000_001n, frame(1)),
  ]);
  const source = await openCapture(writeScratch("compressed.pcapng.gz", gzipSync(bytes)));
  assert.equal(source.format, "pcapng");
  const records = await readAll(source);
  assert.deepEqual(
    records.map((r) => [r.sec, r.nsec]),
    [[7, 1000]],
  );
});

test('"-" reads a stream in small chunks', async () => {
  const plain = pcapBytes(spec(200));
  const expected = await readAll(await openCapture(writeScratch("for-stdin.pcap", plain)));
  const source = await openCapture("-", { stdin: chunked(plain, 7), bufferBytes: 128 });
  assert.equal(source.name, "<stdin>");
  assert.deepEqual(await readAll(source), expected);
});

test("gzip on a stream", async () => {
  const plain = pcapBytes(spec(300));
  const expected = await readAll(await openCapture(writeScratch("for-gzip-stdin.pcap", plain)));
  const source = await openCapture("-", { stdin: chunked(gzipSync(plain), 1) });
  assert.equal(source.compressed, true);
  assert.deepEqual(await readAll(source), expected);
});

test("cut gzip data gives the records before and a warning", async () => {
  const plain = pcapBytes(spec(300));
  const zipped = gzipSync(plain);
  const path = writeScratch("cut.pcap.gz", zipped.subarray(0, Math.floor(zipped.length / 2)));
  const source = await openCapture(path);
  const records = await readAll(source);
  assert.ok(records.length > 50 && records.length < 300, `${records.length} records`);
  records.forEach((record, index) => assert.equal(record.sec, 100 + index));
  const [damage, ...cut] = source.warnings;
  assert.equal(damage.message, "compressed data ends early or is damaged (unexpected end of file)");
  assert.equal(damage.recordNumber, records.length + 1);
  // A second warning only when the cut fell inside a record rather than between two.
  const endOfLast =
    records.length === 0
      ? 24
      : records[records.length - 1].fileOffset + 16 + records[records.length - 1].caplen;
  assert.ok(damage.offset >= endOfLast);
  assert.equal(cut.length, damage.offset > endOfLast ? 1 : 0);
  if (cut.length === 1) {
    assert.equal(cut[0].offset, endOfLast);
    assert.match(cut[0].message, new RegExp(`^file ends in the middle of .*packet ${records.length + 1} `));
  }
});

async function openError(path: string): Promise<CaptureError> {
  try {
    await openCapture(path);
  } catch (error) {
    assert.ok(error instanceof CaptureError);
    return error;
  }
  assert.fail("expected a CaptureError");
}

test("an empty file", async () => {
  const path = writeScratch("empty.pcap", Buffer.alloc(0));
  const error = await openError(path);
  assert.equal(error.message, `${path}: empty file (byte offset 0)`);
});

test("an unknown magic names the bytes found", async () => {
  const path = writeScratch("text.pcap", Buffer.from("hello world, not a capture"));
  const error = await openError(path);
  assert.equal(error.detail, "not a pcap or pcapng file: magic 0x68656c6c at offset 0");
});

test("a file shorter than a magic number", async () => {
  const error = await openError(writeScratch("three.pcap", Buffer.from([0xd4, 0xc3, 0xb2])));
  assert.equal(error.detail, "file too short: 3 bytes, not even a magic number");
});

test("a pcapng file cut inside its section header", async () => {
  const error = await openError(writeScratch("cut-shb.pcapng", sectionHeader().subarray(0, 20)));
  assert.equal(error.detail, "file ends inside the pcapng section header block (20 of 28 bytes)");
});

test("a pcapng section header with a bad byte-order magic", async () => {
  const bytes = sectionHeader();
  bytes.writeUInt32LE(0x12345678, 8);
  const error = await openError(writeScratch("bad-bom.pcapng", bytes));
  assert.equal(error.detail, "pcapng section header has an unknown byte-order magic 0x78563412");
});

test("close is safe twice", async () => {
  const source = await openCapture(writeScratch("twice.pcap", pcapBytes(spec(1))));
  await source.close();
  await source.close();
});

test(
  "files converted by editcap read the same as the original",
  { skip: commandAvailable("editcap") ? false : "editcap not installed" },
  async () => {
    const original = writeScratch("editcap-source.pcap", pcapBytes(spec(120)));
    const expected = await readAll(await openCapture(original));
    const conversions: [string, string[]][] = [
      ["editcap.pcapng", ["-F", "pcapng"]],
      ["editcap-nsec.pcap", ["-F", "nsecpcap"]],
    ];
    for (const [name, args] of conversions) {
      const converted = writeScratch(name, Buffer.alloc(0));
      const result = spawnSync("editcap", [...args, original, converted]);
      assert.equal(result.status, 0, String(result.stderr));
      const records = await readAll(await openCapture(converted));
      assert.deepEqual(
        records.map(({ fileOffset: _offset, ...rest }) => rest),
        expected.map(({ fileOffset: _offset, ...rest }) => rest),
        name,
      );
    }
  },
);
