import { test } from "node:test";
import assert from "node:assert/strict";
import { openCapture } from "../../lib/capture/open.js";
import type { PcapngReader } from "../../lib/capture/pcapng.js";
import {
  block,
  enhancedPacket,
  frame,
  i64Option,
  interfaceDescription,
  interfaceStatistics,
  obsoletePacket,
  option,
  readAll,
  sectionHeader,
  simplePacket,
  u64Option,
  writeScratch,
} from "./capture-fixtures.js";

const SEC = 1_700_000_000n;

function multiSectionFile(): Buffer {
  return Buffer.concat([
    // Section 0, little-endian: a default (µs) Ethernet interface and a nanosecond raw-IP one.
    sectionHeader(true),
    interfaceDescription(1, 65535, true, [
      option(2, Buffer.from("eth0")),
      option(3, Buffer.from("uplink\0")),
    ]),
    interfaceDescription(101, 262144, true, [option(9, Buffer.from([9]))]),
    enhancedPacket(0, SEC * 1_000_000n + 250_000n, frame(1, 60)),
    enhancedPacket(1, SEC * 1_000_000_000n + 123_456_789n, frame(2, 41), true, 1400),
    block(4, Buffer.from("name resolution block body")), // NRB, skipped
    block(0x0bad, Buffer.alloc(16)), // custom/unknown, skipped
    simplePacket(80, frame(3, 80)), // SPB: interface 0, previous packet's timestamp
    obsoletePacket(0, 2, SEC * 1_000_000n + 900_000n, frame(4, 30)),
    interfaceStatistics(0, SEC * 1_000_000n + 999_999n, [
      u64Option(4, 1000),
      u64Option(5, 3),
      u64Option(6, 990),
      u64Option(7, 7),
      u64Option(8, 980),
    ]),
    // Section 1, big-endian: interfaces restart at 0; binary 2^-20 resolution and an offset.
    sectionHeader(false),
    interfaceDescription(113, 64, false, [
      option(9, Buffer.from([0x80 | 20]), false),
      i64Option(14, 100, false),
    ]),
    enhancedPacket(0, 5n * 1048576n + 524288n, frame(5, 20), false),
    simplePacket(200, frame(6, 200), false), // caplen limited by snaplen 64
  ]);
}

test("multiple sections, byte orders, interfaces, resolutions and block kinds", async () => {
  const path = writeScratch("multi.pcapng", multiSectionFile());
  const source = await openCapture(path, { bufferBytes: 100 });
  const records = await readAll(source);
  assert.equal(source.format, "pcapng");
  assert.deepEqual(
    records.map((r) => [r.number, r.sec, r.nsec, r.caplen, r.origlen, r.linkType, r.interfaceId]),
    [
      [1, 1_700_000_000, 250_000_000, 60, 60, 1, 0],
      [2, 1_700_000_000, 123_456_789, 41, 1400, 101, 1],
      [3, 1_700_000_000, 123_456_789, 80, 80, 1, 0],
      [4, 1_700_000_000, 900_000_000, 30, 30, 1, 0],
      [5, 105, 500_000_000, 20, 20, 113, 2],
      [6, 105, 500_000_000, 64, 200, 113, 2],
    ],
  );
  assert.deepEqual(
    records.map((r) => r.hex),
    [frame(1, 60), frame(2, 41), frame(3, 80), frame(4, 30), frame(5, 20), frame(6, 64)].map((b) =>
      b.toString("hex"),
    ),
  );
  assert.equal(records[0].fileOffset, 28 + 44 + 32);
  assert.deepEqual(source.interfaces, [
    {
      sectionIndex: 0,
      localId: 0,
      linkType: 1,
      snaplen: 65535,
      unitsPerSecond: 1e6,
      tsOffsetSec: 0,
      name: "eth0",
      description: "uplink",
      statistics: {
        tsSec: 1_700_000_000,
        tsNsec: 999_999_000,
        received: 1000,
        interfaceDropped: 3,
        filterAccepted: 990,
        osDropped: 7,
        delivered: 980,
      },
    },
    { sectionIndex: 0, localId: 1, linkType: 101, snaplen: 262144, unitsPerSecond: 1e9, tsOffsetSec: 0 },
    { sectionIndex: 1, localId: 0, linkType: 113, snaplen: 64, unitsPerSecond: 1048576, tsOffsetSec: 100 },
  ]);
  assert.deepEqual(source.warnings, []);
  assert.equal((source as PcapngReader).packetBlockDrops, 2);
  assert.equal((source as PcapngReader).sections, 2);
  // Packet 2 (other interface) is earlier than packet 1; packet 5 (new section) goes back in time.
  assert.equal(source.outOfOrder, 2);
});

test("a packet naming an undefined interface is skipped with a warning, numbering kept", async () => {
  const bytes = Buffer.concat([
    sectionHeader(),
    interfaceDescription(1, 0),
    enhancedPacket(0, 1_000_000n, frame(1)),
    enhancedPacket(3, 2_000_000n, frame(2)),
    enhancedPacket(0, 3_000_000n, frame(3)),
  ]);
  const path = writeScratch("undefined-interface.pcapng", bytes);
  const source = await openCapture(path);
  const records = await readAll(source);
  assert.deepEqual(
    records.map((r) => [r.number, r.sec]),
    [
      [1, 1],
      [3, 3],
    ],
  );
  assert.deepEqual(source.warnings, [
    {
      file: path,
      offset: 28 + 20 + 92,
      recordNumber: 2,
      message: "packet 2 refers to interface 3, which section 0 does not define (it has 1): skipped",
    },
  ]);
});

function twoPacketsThen(damage: Buffer): Buffer {
  return Buffer.concat([
    sectionHeader(),
    interfaceDescription(1, 0),
    enhancedPacket(0, 1_000_000n, frame(1)),
    enhancedPacket(0, 2_000_000n, frame(2)),
    damage,
    enhancedPacket(0, 3_000_000n, frame(3)),
  ]);
}
const DAMAGE_OFFSET = 28 + 20 + 2 * 92;

test("block lengths that cannot be right stop reading with a warning", async () => {
  const cases: [string, Buffer, string][] = [
    [
      "not a multiple of 4",
      Buffer.from([
        6, 0, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 30, 0, 0, 0,
      ]),
      "enhanced packet block claims a total length of 30 bytes (not a multiple of 4): the file is damaged from here on",
    ],
    [
      "too short",
      Buffer.from([0x99, 0, 0, 0, 8, 0, 0, 0, 8, 0, 0, 0]),
      "block of type 0x99 block claims a total length of 8 bytes (less than the minimum 12): the file is damaged from here on",
    ],
    [
      "absurd",
      Buffer.from([6, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0]),
      "enhanced packet block claims a total length of 1073741824 bytes (more than the 16777216 accepted): " +
        "the file is damaged from here on",
    ],
    [
      "trailing length differs",
      Buffer.from([0x99, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0]),
      "block of type 0x99 block's trailing length 20 differs from its leading length 16: the file is damaged from here on",
    ],
  ];
  for (const [label, damage, message] of cases) {
    const path = writeScratch(`damaged-${label.replace(/ /g, "-")}.pcapng`, twoPacketsThen(damage));
    const source = await openCapture(path);
    const records = await readAll(source);
    assert.equal(records.length, 2, label);
    assert.deepEqual(
      source.warnings,
      [{ file: path, offset: DAMAGE_OFFSET, recordNumber: 3, message }],
      label,
    );
  }
});

test("truncation inside a packet block", async () => {
  const whole = twoPacketsThen(Buffer.alloc(0));
  const path = writeScratch("cut.pcapng", whole.subarray(0, DAMAGE_OFFSET + 50));
  const source = await openCapture(path);
  const records = await readAll(source);
  assert.equal(records.length, 2);
  assert.deepEqual(source.warnings, [
    {
      file: path,
      offset: DAMAGE_OFFSET,
      recordNumber: 3,
      message: "file ends in the middle of packet 3 (50 of 92 bytes)",
    },
  ]);
});

test("truncation inside a block header", async () => {
  const whole = twoPacketsThen(Buffer.alloc(0));
  const path = writeScratch("cut-block-header.pcapng", whole.subarray(0, DAMAGE_OFFSET + 6));
  const source = await openCapture(path);
  assert.equal((await readAll(source)).length, 2);
  assert.deepEqual(source.warnings, [
    {
      file: path,
      offset: DAMAGE_OFFSET,
      recordNumber: 3,
      message: "file ends in the middle of a block header (6 of 8 bytes)",
    },
  ]);
});

test("an EPB whose captured length overruns its block is skipped with a warning", async () => {
  const bad = enhancedPacket(0, 5_000_000n, frame(9, 8));
  bad.writeUInt32LE(200, 20);
  const path = writeScratch("overrun.pcapng", twoPacketsThen(bad));
  const source = await openCapture(path);
  const records = await readAll(source);
  assert.deepEqual(
    records.map((r) => r.number),
    [1, 2, 4],
  );
  assert.deepEqual(source.warnings, [
    {
      file: path,
      offset: DAMAGE_OFFSET,
      recordNumber: 3,
      message: "packet 3 claims 200 captured bytes but its block holds only 8: skipped",
    },
  ]);
});
