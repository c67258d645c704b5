import { test } from "node:test";
import assert from "node:assert/strict";
import { openCapture } from "../../lib/capture/open.js";
import { CaptureError } from "../../lib/capture/source.js";
import { frame, pcapBytes, readAll, writeScratch, type PcapSpec } from "./capture-fixtures.js";

const variants = [
  { magic: 0xa1b2c3d4, format: "pcap", nanosPerFraction: 1000, headerBytes: 16 },
  { magic: 0xa1b23c4d, format: "pcap-nsec", nanosPerFraction: 1, headerBytes: 16 },
  { magic: 0xa1b2cd34, format: "pcap-modified", nanosPerFraction: 1000, headerBytes: 24 },
] as const;

for (const variant of variants) {
  for (const littleEndian of [true, false]) {
    test(`${variant.format}, ${littleEndian ? "little" : "big"}-endian`, async () => {
      const spec: PcapSpec = {
        magic: variant.magic,
        littleEndian,
        snaplen: 1500,
        linkField: 0x14000071, // LINUX_SLL with FCS bits above
        records: [
          { sec: 1_700_000_000, fraction: 123_456, data: frame(1, 60), origlen: 1514 },
          { sec: 1_700_000_001, fraction: 999_999, data: frame(2, 42) },
          { sec: 1_700_000_000, fraction: 5, data: frame(3, 0) },
        ],
      };
      const path = writeScratch(`${variant.format}-${littleEndian}.pcap`, pcapBytes(spec));
      const source = await openCapture(path);
      assert.equal(source.format, variant.format);
      assert.equal(source.compressed, false);
      assert.deepEqual(source.interfaces, [
        {
          sectionIndex: 0,
          localId: 0,
          linkType: 113,
          snaplen: 1500,
          unitsPerSecond: variant.nanosPerFraction === 1 ? 1e9 : 1e6,
          tsOffsetSec: 0,
        },
      ]);
      const records = await readAll(source);
      const recordBytes = variant.headerBytes;
      assert.deepEqual(
        records.map((r) => [
          r.number,
          r.sec,
          r.nsec,
          r.caplen,
          r.origlen,
          r.linkType,
          r.interfaceId,
          r.fileOffset,
        ]),
        [
          [1, 1_700_000_000, 123_456 * variant.nanosPerFraction, 60, 1514, 113, 0, 24],
          [2, 1_700_000_001, 999_999 * variant.nanosPerFraction, 42, 42, 113, 0, 24 + recordBytes + 60],
          [3, 1_700_000_000, 5 * variant.nanosPerFraction, 0, 0, 113, 0, 24 + 2 * recordBytes + 102],
        ],
      );
      assert.equal(records[0].hex, frame(1, 60).toString("hex"));
      assert.equal(records[1].hex, frame(2, 42).toString("hex"));
      assert.equal(source.outOfOrder, 1);
      assert.deepEqual(source.warnings, []);
    });
  }
}

function manyRecords(count: number, size: (index: number) => number): PcapSpec {
  const records = [];
  for (let index = 0; index < count; index++) {
    records.push({ sec: 1000 + index, fraction: index, data: frame(index, size(index)) });
  }
  return { records };
}

test("a tiny working buffer refills and grows without splitting records", async () => {
  const spec = manyRecords(50, (index) => (index % 7 === 0 ? 700 : 10 + index));
  const path = writeScratch("refill.pcap", pcapBytes(spec));
  const records = await readAll(await openCapture(path, { bufferBytes: 64 }));
  assert.equal(records.length, 50);
  records.forEach((record, index) => {
    assert.equal(record.number, index + 1);
    assert.equal(record.sec, 1000 + index);
    assert.equal(record.hex, spec.records[index].data.toString("hex"));
  });
});

test("a sub-second field past one second carries into the seconds", async () => {
  const path = writeScratch(
    "carry.pcap",
    pcapBytes({ records: [{ sec: 10, fraction: 2_500_000, data: frame(1) }] }),
  );
  const source = await openCapture(path);
  const [record] = await readAll(source);
  assert.deepEqual([record.sec, record.nsec], [12, 500_000_000]);
  assert.deepEqual(source.warnings, [
    {
      file: path,
      offset: 24,
      recordNumber: 1,
      message: "packet 1 has a sub-second field of 2500000, not below 1000000: carried into the seconds",
    },
  ]);
});

test("truncation inside a record body keeps the records before and says where", async () => {
  const whole = pcapBytes(manyRecords(3, () => 100));
  // Header 24 + two records of 116; cut 40 bytes into the third record (16 header + 24 data).
  const path = writeScratch("cut-body.pcap", whole.subarray(0, 24 + 2 * 116 + 40));
  const source = await openCapture(path, { bufferBytes: 128 });
  const records = await readAll(source);
  assert.equal(records.length, 2);
  assert.deepEqual(source.warnings, [
    {
      file: path,
      offset: 24 + 2 * 116,
      recordNumber: 3,
      message: "file ends in the middle of packet 3 (40 of 116 bytes)",
    },
  ]);
});

test("truncation inside a record header", async () => {
  const whole = pcapBytes(manyRecords(3, () => 100));
  const path = writeScratch("cut-header.pcap", whole.subarray(0, 24 + 116 + 5));
  const source = await openCapture(path);
  const records = await readAll(source);
  assert.equal(records.length, 1);
  assert.deepEqual(source.warnings, [
    {
      file: path,
      offset: 24 + 116,
      recordNumber: 2,
      message: "file ends in the middle of the header of packet 2 (5 of 16 bytes)",
    },
  ]);
});

test("truncation inside the file header is an error", async () => {
  const path = writeScratch("cut-file-header.pcap", pcapBytes(manyRecords(1, () => 10)).subarray(0, 20));
  await assert.rejects(openCapture(path), (error: unknown) => {
    assert.ok(error instanceof CaptureError);
    assert.equal(error.detail, "file ends inside the pcap file header (20 of 24 bytes)");
    return true;
  });
});

test("an absurd captured length stops reading without allocating", async () => {
  const spec = manyRecords(3, () => 50);
  spec.records[1].caplen = 0x7fff_fff0;
  const path = writeScratch("absurd.pcap", pcapBytes(spec));
  const source = await openCapture(path);
  const records = await readAll(source);
  assert.equal(records.length, 1);
  assert.deepEqual(source.warnings, [
    {
      file: path,
      offset: 24 + 66,
      recordNumber: 2,
      message:
        "packet 2 claims 2147483632 captured bytes, more than the 524288 this file allows: " +
        "the file is damaged from here on",
    },
  ]);
});

test("a captured length above the snaplen but within reason is read", async () => {
  const spec = manyRecords(2, () => 3000);
  spec.snaplen = 1500;
  const records = await readAll(await openCapture(writeScratch("over-snaplen.pcap", pcapBytes(spec))));
  assert.deepEqual(
    records.map((r) => r.caplen),
    [3000, 3000],
  );
});
