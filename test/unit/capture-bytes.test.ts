/** The byte layer under the readers: the file input's read-ahead against the plain bytes of the file. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { open } from "node:fs/promises";
import { dirname, join } from "node:path";
import { FileByteInput, MAX_WORKING_BUFFER_BYTES } from "../../lib/capture/bytes.js";
import { openCapture } from "../../lib/capture/open.js";
import { frame, pcapBytes, readAll, writeScratch, type PcapSpec } from "./capture-fixtures.js";

/** A repeatable pseudo-random sequence (xorshift), so a failure can be replayed. */
function randomSource(seed: number): (limit: number) => number {
  let state = seed >>> 0 || 1;
  return (limit) => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % limit;
  };
}

function fileBytes(length: number, seed: number): Buffer {
  const next = randomSource(seed);
  const bytes = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) bytes[i] = next(256);
  return bytes;
}

/**
 * Consumes the file in steps of random size, as a reader does (asks for `wanted` bytes, consumes
 * some), and checks every buffered byte against the file and its input offset.
 */
async function consumeAll(path: string, bytes: Buffer, bufferBytes: number, seed: number, maxWanted: number) {
  const next = randomSource(seed);
  const input = new FileByteInput(await open(path, "r"), bufferBytes);
  let refills = 0;
  let swapsOrGrowths = 0;
  try {
    for (;;) {
      const wanted = 1 + next(maxWanted);
      if (input.available < wanted) {
        const before = input.buffer;
        await input.refill(wanted);
        refills++;
        if (input.buffer !== before) swapsOrGrowths++;
      }
      const position = input.position;
      assert.equal(position, input.bufferInputOffset + input.start);
      if (input.available < wanted) {
        // Only at the end of the file, with everything that was left buffered.
        assert.equal(input.atEnd, true, `short of ${wanted} bytes at ${position} before the end`);
        assert.equal(position + input.available, bytes.length);
        assert.ok(input.buffer.subarray(input.start, input.end).equals(bytes.subarray(position)));
        break;
      }
      assert.ok(
        input.buffer
          .subarray(input.start, input.start + wanted)
          .equals(bytes.subarray(position, position + wanted)),
        `bytes at input offset ${position} (buffer ${bufferBytes}, seed ${seed})`,
      );
      assert.ok(input.buffer.length <= MAX_WORKING_BUFFER_BYTES);
      input.start += 1 + next(wanted);
    }
  } finally {
    await input.close();
  }
  return { refills, swapsOrGrowths };
}

test("file input: every byte arrives in order at its offset, across read-ahead swaps, copies and growth", async () => {
  const small = fileBytes(200_000, 7);
  const large = fileBytes(3_000_000, 8);
  const smallPath = writeScratch("random-small.bin", small);
  const largePath = writeScratch("random-large.bin", large);
  for (const [bufferBytes, maxWanted] of [
    [64, 40], // tails often longer than the 16-byte headroom: the copying path
    [100, 300], // records larger than the buffer: growth, then swaps of grown buffers
    [4096, 3000],
    [65536, 1500],
    [1 << 20, 70_000], // tails longer than the 64 KiB headroom now and then
  ]) {
    const [path, bytes] = bufferBytes < 1 << 20 ? [smallPath, small] : [largePath, large];
    for (const seed of [1, 2, 3]) {
      const { refills, swapsOrGrowths } = await consumeAll(path, bytes, bufferBytes, seed, maxWanted);
      assert.ok(refills > 2 && swapsOrGrowths > 1, `buffer ${bufferBytes}: ${refills} refills`);
    }
  }
});

test("file input: a file that fits in the buffer is read without a second buffer or read-ahead", async () => {
  const bytes = fileBytes(5000, 9);
  const path = writeScratch("small.bin", bytes);
  const input = new FileByteInput(await open(path, "r"), 8192);
  try {
    assert.equal(await input.refill(16), true);
    assert.equal(input.available, 5000);
    assert.equal(input.atEnd, false);
    assert.equal(await input.refill(6000), false);
    assert.equal(input.atEnd, true);
    assert.ok(input.buffer.subarray(input.start, input.end).equals(bytes));
    assert.equal((input as unknown as { spare: Buffer | null }).spare, null);
  } finally {
    await input.close();
  }
});

test("file input: closing with a read-ahead in flight waits for it", async () => {
  const bytes = fileBytes(300_000, 11);
  const path = writeScratch("close.bin", bytes);
  const input = new FileByteInput(await open(path, "r"), 4096);
  await input.refill(10);
  assert.notEqual((input as unknown as { ahead: unknown }).ahead, null, "a read is in flight");
  await input.close();
  await input.close();
});

/** Records of every size around the headroom and the buffer, and their bytes as the reader must give them. */
function mixedCapture(count: number): PcapSpec {
  const next = randomSource(5);
  const records = [];
  for (let i = 0; i < count; i++) {
    const length = i % 97 === 0 ? 70_000 + next(5000) : i % 13 === 0 ? 9000 + next(2000) : 40 + next(1500);
    records.push({ sec: 1_700_000_000 + i, fraction: i, data: frame(i & 0xff, length) });
  }
  return { snaplen: 262144, records };
}

test("pcap through the read-ahead: the same records as one big buffer, and the same truncation warning", async () => {
  const whole = pcapBytes(mixedCapture(3000));
  const path = writeScratch("mixed.pcap", whole);
  const reference = await readAll(await openCapture(path, { bufferBytes: 64 << 20 }));
  assert.equal(reference.length, 3000);
  for (const bufferBytes of [64, 1000, 65536, 1 << 20]) {
    const records = await readAll(await openCapture(path, { bufferBytes }));
    assert.deepEqual(records, reference, `buffer ${bufferBytes}`);
  }
  // Cut inside the last record's data: 2999 records, then a warning at the last record's offset.
  const lastOffset = reference[2999].fileOffset;
  const cutPath = writeScratch("mixed-cut.pcap", whole.subarray(0, lastOffset + 16 + 10));
  for (const bufferBytes of [64, 65536, 1 << 20]) {
    const source = await openCapture(cutPath, { bufferBytes });
    const records = await readAll(source);
    assert.deepEqual(records, reference.slice(0, 2999));
    assert.equal(source.warnings.length, 1);
    assert.equal(source.warnings[0].offset, lastOffset);
    assert.equal(source.warnings[0].recordNumber, 3000);
  }
});

test(
  "a FIFO given as a path (short reads) reads like the file",
  { skip: process.platform === "win32" },
  async () => {
    const whole = pcapBytes(mixedCapture(400));
    const path = writeScratch("fifo-source.pcap", whole);
    const fifo = join(dirname(path), "capture.fifo");
    if (spawnSync("mkfifo", [fifo]).status !== 0) return;
    const reference = await readAll(await openCapture(path));
    const writer = spawn("sh", ["-c", `cat "${path}" > "${fifo}"`]);
    const written = new Promise((resolve) => writer.on("close", resolve));
    const records = await readAll(await openCapture(fifo, { bufferBytes: 4096 }));
    assert.equal(await written, 0);
    assert.deepEqual(records, reference);
  },
);
