import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { openSync, readSync, closeSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { openCapture } from "../../lib/capture/open.js";
import { forEachRecord } from "../../lib/capture/source.js";
import { corpusAvailable, corpusEntries, repoRoot } from "../support/corpus.js";

const require = createRequire(import.meta.url);
// pcap-parser is an independent reader of classic microsecond pcap, kept only as a reference.
const pcapParser = require("pcap-parser") as {
  parse(path: string): NodeJS.EventEmitter;
};

interface RecordDigest {
  /** Seconds × 10⁶ + microseconds: a microsecond field of 10⁶ or more (seen in the corpus) carries into seconds. */
  microseconds: number;
  caplen: number;
  origlen: number;
  sha1: string;
}

function readWithPcapParser(path: string): Promise<RecordDigest[]> {
  return new Promise((resolve, reject) => {
    const records: RecordDigest[] = [];
    const parser = pcapParser.parse(path);
    parser.on("packet", (packet: { header: Record<string, number>; data: Buffer }) =>
      records.push({
        microseconds: packet.header.timestampSeconds * 1e6 + packet.header.timestampMicroseconds,
        caplen: packet.header.capturedLength,
        origlen: packet.header.originalLength,
        sha1: createHash("sha1").update(packet.data).digest("hex"),
      }),
    );
    parser.on("error", reject);
    parser.on("end", () => resolve(records));
  });
}

async function readWithOurs(path: string): Promise<RecordDigest[]> {
  const source = await openCapture(path);
  const records: RecordDigest[] = [];
  try {
    await forEachRecord(source, (record) =>
      records.push({
        microseconds: record.tsSec * 1e6 + Math.floor(record.tsNsec / 1000),
        caplen: record.caplen,
        origlen: record.origlen,
        sha1: createHash("sha1")
          .update(record.data.subarray(record.offset, record.offset + record.caplen))
          .digest("hex"),
      }),
    );
  } finally {
    await source.close();
  }
  return records;
}

/** Classic microsecond pcap, the only format pcap-parser reads. */
function isMicrosecondPcap(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const magic = Buffer.alloc(4);
    if (readSync(fd, magic, 0, 4, 0) < 4) return false;
    const hex = magic.toString("hex");
    return hex === "a1b2c3d4" || hex === "d4c3b2a1";
  } finally {
    closeSync(fd);
  }
}

function referenceFiles(): string[] {
  const files: string[] = [];
  if (corpusAvailable()) files.push(...corpusEntries().map((entry) => entry.path));
  const samples = join(repoRoot, "samples");
  if (existsSync(samples))
    for (const scenario of readdirSync(samples, { withFileTypes: true }))
      if (scenario.isDirectory())
        for (const name of readdirSync(join(samples, scenario.name)))
          if (name.endsWith(".pcap")) files.push(join(samples, scenario.name, name));
  return files.filter((path) => existsSync(path) && isMicrosecondPcap(path));
}

test("classic pcap: our reader and pcap-parser give identical records", async () => {
  const files = referenceFiles();
  assert.ok(files.length > 100, `expected the corpus' classic pcaps, found ${files.length}`);
  const disagreements: string[] = [];
  let compared = 0;
  for (const path of files) {
    const reference = await readWithPcapParser(path).catch(() => null);
    if (reference === null) continue; // pcap-parser rejects the header (e.g. an odd version): nothing to compare
    const ours = await readWithOurs(path).catch((error: Error) => error);
    if (ours instanceof Error) {
      disagreements.push(`${path}: our reader failed: ${ours.message}`);
      continue;
    }
    // Both readers drop a record the file cuts short, so the counts must match exactly.
    const common = Math.min(reference.length, ours.length);
    if (ours.length !== reference.length)
      disagreements.push(`${path}: we read ${ours.length}, pcap-parser ${reference.length}`);
    for (let i = 0; i < common; i++) {
      if (JSON.stringify(ours[i]) !== JSON.stringify(reference[i])) {
        disagreements.push(
          `${path}: record ${i + 1} differs: ${JSON.stringify(ours[i])} vs ${JSON.stringify(reference[i])}`,
        );
        break;
      }
    }
    compared += common;
  }
  assert.deepEqual(disagreements, []);
  assert.ok(compared > 1000, `compared only ${compared} records`);
});
