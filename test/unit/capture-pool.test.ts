/**
 * Inputs with a ByteBufferPool (what `--jobs` reads through): a buffer records were read from is never
 * written again while the reader goes on — every record's bytes are still in place at the end, for
 * plain and compressed files, pcap and pcapng, standard input, small buffers (many refills, records cut
 * across them) and records larger than the buffer; and every buffer taken is released by the end.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createReadStream, existsSync, readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import type { ByteBufferPool } from "../../lib/capture/bytes.js";
import { openCapture } from "../../lib/capture/open.js";
import { forEachRecord } from "../../lib/capture/source.js";
import { frame, pcapBytes, writeScratch } from "./capture-fixtures.js";
import { repoRoot } from "../support/corpus.js";

class RecordingPool implements ByteBufferPool {
  readonly held = new Set<Buffer>();
  taken = 0;
  take(size: number): Buffer {
    this.taken++;
    const buffer = Buffer.alloc(size);
    this.held.add(buffer);
    return buffer;
  }
  release(buffer: Buffer): void {
    assert.ok(this.held.delete(buffer), "released once, and only what was taken");
  }
}

async function checkInPlace(path: string, bufferBytes: number, stdin = false): Promise<number> {
  const pool = new RecordingPool();
  const source = await openCapture(stdin ? "-" : path, {
    pool,
    bufferBytes,
    ...(stdin ? { stdin: createReadStream(path) } : {}),
  });
  const kept: { data: Buffer; offset: number; copy: Buffer }[] = [];
  await forEachRecord(source, (record) => {
    assert.ok(pool.held.has(record.data), "records point into pool buffers");
    kept.push({
      data: record.data,
      offset: record.offset,
      copy: Buffer.from(record.data.subarray(record.offset, record.offset + record.caplen)),
    });
  });
  await source.close();
  kept.forEach((record, index) =>
    assert.ok(
      record.data.subarray(record.offset, record.offset + record.copy.length).equals(record.copy),
      `record ${index + 1} overwritten (${path}, buffer ${bufferBytes})`,
    ),
  );
  assert.equal(pool.held.size, 0, "every buffer released by the end");
  return kept.length;
}

test("pool inputs keep every record's bytes in place (files, gzip, stdin, pcapng, small buffers)", async () => {
  const samples = ["ftp-active", "tftp-read", "ping-ipv6"].map((name) =>
    join(repoRoot, "samples", name, "inside.pcap"),
  );
  const records: Buffer[] = [];
  for (let i = 0; i < 400; i++) records.push(frame(i, 60 + ((i * 37) % 1400)));
  const synthetic = writeScratch(
    "pool.pcap",
    pcapBytes({ records: records.map((data, i) => ({ sec: 1_700_000_000 + i, fraction: 0, data })) }),
  );
  const gzipped = writeScratch("pool.pcap.gz", gzipSync(readFileSync(synthetic)));
  for (const bufferBytes of [256, 1500, 4096, 1 << 20]) {
    assert.equal(await checkInPlace(synthetic, bufferBytes), 400);
    assert.equal(await checkInPlace(gzipped, bufferBytes), 400);
    assert.equal(await checkInPlace(synthetic, bufferBytes, true), 400);
    for (const sample of samples) assert.ok((await checkInPlace(sample, bufferBytes)) > 5);
  }
  // pcapng from the public corpus, where it is present.
  const corpus = join(repoRoot, "..", "shared", "corpus", "tcpdump-tests");
  if (existsSync(corpus)) {
    const pcapngs = readdirSync(corpus)
      .filter((name) => name.endsWith(".pcapng"))
      .slice(0, 20);
    for (const name of pcapngs)
      for (const bufferBytes of [512, 1 << 20]) {
        try {
          await checkInPlace(join(corpus, name), bufferBytes);
        } catch (error) {
          // Damaged corpus files are the robustness tests' business; overwritten bytes are ours.
          if (error instanceof assert.AssertionError) throw error;
        }
      }
  }
});
