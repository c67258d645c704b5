import { test } from "node:test";
import assert from "node:assert/strict";
import { PacketDecoder } from "../../lib/decode/decoder.js";
import { PacketClass } from "../../lib/decode/packet.js";
import { ipv4HeaderChecksumValid } from "../../lib/decode/checksum.js";
import { ethernet, fragmentHeader, ipv4, ipv6, record, udp } from "./packet-builders.js";

/** A UDP datagram of `size` payload bytes (pattern i & 0xff) and its IP payload (UDP header included). */
function udpPayload(size: number): number[] {
  return udp(
    5000,
    6000,
    Array.from({ length: size }, (_, i) => i & 0xff),
  );
}

interface Piece {
  offset: number;
  length: number;
  more: boolean;
}

function v4Fragment(data: number[], piece: Piece, id = 77, extra: Parameters<typeof ipv4>[0] = {}) {
  return ethernet(
    0x0800,
    ipv4(
      { protocol: 17, id, fragmentOffset: piece.offset, moreFragments: piece.more, ...extra },
      data.slice(piece.offset, piece.offset + piece.length),
    ),
  );
}

function v6Fragment(data: number[], piece: Piece, id = 0x01020304) {
  return ethernet(
    0x86dd,
    ipv6({ nextHeader: 44 }, [
      ...fragmentHeader(17, piece.offset, piece.more, id),
      ...data.slice(piece.offset, piece.offset + piece.length),
    ]),
  );
}

const data = udpPayload(1200 - 8); // 1200 bytes of IP payload
const pieces: Piece[] = [
  { offset: 0, length: 480, more: true },
  { offset: 480, length: 480, more: true },
  { offset: 960, length: 240, more: false },
];

function feed(decoder: PacketDecoder, frames: Buffer[], tsSec = 1000): PacketClass[] {
  return frames.map((frame, i) => decoder.decode(record(1, frame, { tsSec, recordNumber: i + 1 })));
}

function assertReassembledUdp(decoder: PacketDecoder, ipVersion: number) {
  const packet = decoder.packet;
  assert.equal(packet.reassembled, true);
  assert.equal(packet.ipVersion, ipVersion);
  assert.equal(packet.protocol, 17);
  assert.equal(packet.srcPort, 5000);
  assert.equal(packet.dstPort, 6000);
  assert.equal(packet.udpLength, 1200);
  assert.equal(packet.payloadLength, 1192);
  assert.equal(packet.payloadCaptured, 1192);
  assert.equal(packet.buf, decoder.defragmenter.output);
  for (let i = 0; i < 1192; i++) assert.equal(packet.buf[packet.payloadOffset + i], i & 0xff);
}

test("IPv4 fragments in order", () => {
  const decoder = new PacketDecoder();
  const classes = feed(
    decoder,
    pieces.map((p) => v4Fragment(data, p)),
  );
  assert.deepEqual(classes, [PacketClass.Fragment, PacketClass.Fragment, PacketClass.Decoded]);
  assertReassembledUdp(decoder, 4);
  const packet = decoder.packet;
  assert.equal(packet.ipLength, 20 + 1200);
  assert.equal(packet.moreFragments, false);
  assert.equal(packet.fragmentOffset, 0);
  assert.equal(packet.ipChecksumValid, true);
  assert.equal(ipv4HeaderChecksumValid(packet.buf, 0, 20), true);
  const stats = decoder.stats.defrag;
  assert.equal(stats.fragments, 3);
  assert.equal(stats.datagramsReassembled, 1);
  assert.equal(stats.queues, 0);
  assert.equal(stats.bytesHeld, 0);
});

test("IPv4 fragments out of order, first fragment last", () => {
  const decoder = new PacketDecoder();
  const order = [pieces[2], pieces[1], pieces[0]];
  const classes = feed(
    decoder,
    order.map((p) => v4Fragment(data, p, 78, { dontFragment: false })),
  );
  assert.deepEqual(classes, [PacketClass.Fragment, PacketClass.Fragment, PacketClass.Decoded]);
  assertReassembledUdp(decoder, 4);
  assert.equal(decoder.packet.ipId, 78);
});

test("IPv4 exact duplicate is dropped alone; the datagram still completes", () => {
  const decoder = new PacketDecoder();
  const frames = [pieces[0], pieces[1], pieces[1], pieces[2]].map((p) => v4Fragment(data, p));
  const classes = feed(decoder, frames);
  assert.deepEqual(classes, [
    PacketClass.Fragment,
    PacketClass.Fragment,
    PacketClass.Fragment,
    PacketClass.Decoded,
  ]);
  assert.equal(decoder.stats.defrag.duplicates, 1);
  assertReassembledUdp(decoder, 4);
  // A fragment inside one run (0..960 is one run) is a duplicate too.
  const inner = new PacketDecoder();
  feed(
    inner,
    [pieces[0], pieces[1], { offset: 240, length: 240, more: true }, pieces[2]].map((p) =>
      v4Fragment(data, p),
    ),
  );
  assert.equal(inner.stats.defrag.duplicates, 1);
  assert.equal(inner.stats.defrag.datagramsReassembled, 1);
});

test("IPv4 overlapping fragment drops the whole datagram", () => {
  const decoder = new PacketDecoder();
  const frames = [pieces[0], { offset: 400, length: 480, more: true }, pieces[1], pieces[2]].map((p) =>
    v4Fragment(data, p),
  );
  const classes = feed(decoder, frames);
  assert.deepEqual(classes, [
    PacketClass.Fragment,
    PacketClass.Fragment,
    PacketClass.Fragment,
    PacketClass.Fragment,
  ]);
  const stats = decoder.stats.defrag;
  assert.equal(stats.overlaps, 1);
  assert.equal(stats.datagramsDropped, 1);
  assert.equal(stats.datagramsReassembled, 0);
  // pieces[1] and pieces[2] started a new queue, which waits for a first fragment.
  assert.equal(stats.queues, 1);
});

test("fragments of different datagrams (ids, protocols) do not mix", () => {
  const decoder = new PacketDecoder();
  const classes = feed(decoder, [
    v4Fragment(data, pieces[0], 1),
    v4Fragment(data, pieces[0], 2),
    v4Fragment(data, pieces[1], 1),
    v4Fragment(data, pieces[2], 2, { protocol: 6 }),
    v4Fragment(data, pieces[2], 1),
  ]);
  assert.deepEqual(classes.slice(-1), [PacketClass.Decoded]);
  assert.equal(decoder.stats.defrag.queues, 2);
});

test("IPv4 timeout is measured in capture time from the first fragment", () => {
  const decoder = new PacketDecoder();
  decoder.decode(record(1, v4Fragment(data, pieces[0]), { tsSec: 1000 }));
  decoder.decode(record(1, v4Fragment(data, pieces[1]), { tsSec: 1029, tsNsec: 900_000_000 }));
  assert.equal(
    decoder.decode(record(1, v4Fragment(data, pieces[2]), { tsSec: 1030, tsNsec: 1 })),
    PacketClass.Fragment,
  );
  const stats = decoder.stats.defrag;
  assert.equal(stats.datagramsTimedOut, 1);
  assert.equal(stats.datagramsReassembled, 0);
  assert.equal(stats.queues, 1);
  decoder.finish();
  assert.equal(stats.datagramsTimedOut, 2);
  assert.equal(stats.queues, 0);
  assert.equal(stats.bytesHeld, 0);

  const patient = new PacketDecoder({ ipv4TimeoutSeconds: 120 });
  patient.decode(record(1, v4Fragment(data, pieces[0]), { tsSec: 1000 }));
  patient.decode(record(1, v4Fragment(data, pieces[1]), { tsSec: 1050 }));
  assert.equal(patient.decode(record(1, v4Fragment(data, pieces[2]), { tsSec: 1100 })), PacketClass.Decoded);
});

test("IPv4 inconsistent ends and data-less fragments", () => {
  const decoder = new PacketDecoder();
  feed(decoder, [v4Fragment(data, pieces[2]), v4Fragment(data, { offset: 960, length: 200, more: false })]);
  assert.equal(decoder.stats.defrag.inconsistentEnds, 1);
  assert.equal(decoder.stats.defrag.datagramsDropped, 1);
  const empty = new PacketDecoder();
  const cls = empty.decode(record(1, v4Fragment(data, { offset: 8, length: 4, more: true })));
  assert.equal(cls, PacketClass.Malformed);
  assert.equal(empty.packet.reason, "ipv4 fragment holds no data");
  // A non-last fragment is cut to a multiple of 8: the next one starting there completes it.
  const odd = new PacketDecoder();
  const classes = feed(odd, [
    v4Fragment(data, { offset: 0, length: 485, more: true }),
    v4Fragment(data, { offset: 480, length: 720, more: false }),
  ]);
  assert.deepEqual(classes, [PacketClass.Fragment, PacketClass.Decoded]);
  assertReassembledUdp(odd, 4);
});

test("a datagram over 65535 bytes is refused", () => {
  const decoder = new PacketDecoder();
  const big = Array.from({ length: 1000 }, () => 0);
  const classes = feed(decoder, [
    v4Fragment(big, { offset: 0, length: 1000, more: true }),
    ethernet(
      0x0800,
      ipv4({ protocol: 17, id: 77, fragmentOffset: 65000, moreFragments: false }, big.slice(0, 600)),
    ),
  ]);
  assert.deepEqual(classes, [PacketClass.Fragment, PacketClass.Fragment]);
  // Not complete (1000..65000 is missing): nothing refused yet.
  assert.equal(decoder.stats.defrag.datagramsTooLarge, 0);
  const filler: Buffer[] = [];
  for (let offset = 1000; offset < 65000; offset += 1480) {
    const length = Math.min(1480, 65000 - offset);
    filler.push(
      ethernet(
        0x0800,
        ipv4({ protocol: 17, id: 77, fragmentOffset: offset, moreFragments: true }, Array(length).fill(1)),
      ),
    );
  }
  const last = feed(decoder, filler);
  assert.equal(last[last.length - 1], PacketClass.Fragment);
  assert.equal(decoder.stats.defrag.datagramsTooLarge, 1);
  assert.equal(decoder.stats.defrag.queues, 0);
});

test("memory bound: fragments are refused while the bytes held exceed the limit", () => {
  const decoder = new PacketDecoder({ memoryLimitBytes: 5000 });
  const classes: PacketClass[] = [];
  for (let id = 0; id < 10; id++) classes.push(decoder.decode(record(1, v4Fragment(data, pieces[0], id))));
  assert.ok(classes.every((c) => c === PacketClass.Fragment));
  const stats = decoder.stats.defrag;
  assert.ok(stats.refusedForMemory > 0);
  assert.equal(stats.queues + stats.refusedForMemory, 10);
  assert.ok(stats.bytesHeld <= 5000 + 500 + 576 + 256);
  // Time frees the memory: after the timeout, fragments are taken again.
  decoder.decode(record(1, v4Fragment(data, pieces[0], 99), { tsSec: 1_800_000_000 }));
  assert.equal(stats.queues, 1);
});

test("snaplen-cut fragments: the datagram completes with its captured prefix", () => {
  const decoder = new PacketDecoder();
  const frames = pieces.map((p) => v4Fragment(data, p));
  decoder.decode(record(1, frames[0], { caplen: 14 + 20 + 100 }));
  decoder.decode(record(1, frames[1]));
  assert.equal(decoder.decode(record(1, frames[2])), PacketClass.Decoded);
  const packet = decoder.packet;
  assert.equal(packet.ipLength, 1220);
  assert.equal(packet.capturedEnd, 20 + 100);
  assert.equal(packet.payloadLength, 1192);
  assert.equal(packet.payloadCaptured, 92);
  assert.equal(packet.dstPort, 6000);
});

test("IPv6 fragments in order and out of order", () => {
  for (const order of [
    [0, 1, 2],
    [2, 0, 1],
  ]) {
    const decoder = new PacketDecoder();
    const classes = feed(
      decoder,
      order.map((i) => v6Fragment(data, pieces[i])),
    );
    assert.deepEqual(classes, [PacketClass.Fragment, PacketClass.Fragment, PacketClass.Decoded]);
    assertReassembledUdp(decoder, 6);
    const packet = decoder.packet;
    assert.equal(packet.ipLength, 40 + 1200);
    assert.equal(packet.ipHeaderLength, 40);
    assert.equal(packet.ipId, 0x01020304);
    assert.equal(packet.buf[6], 17);
    assert.equal(packet.buf.readUInt16BE(4), 1200);
  }
});

test("IPv6 duplicate, overlap and not-multiple-of-8 fragments", () => {
  const dup = new PacketDecoder();
  const classes = feed(
    dup,
    [pieces[0], pieces[0], pieces[1], pieces[2]].map((p) => v6Fragment(data, p)),
  );
  assert.deepEqual(classes, [
    PacketClass.Fragment,
    PacketClass.Fragment,
    PacketClass.Fragment,
    PacketClass.Decoded,
  ]);
  assert.equal(dup.stats.defrag.duplicates, 1);

  const overlap = new PacketDecoder();
  feed(
    overlap,
    [pieces[0], { offset: 8, length: 480, more: true }].map((p) => v6Fragment(data, p)),
  );
  assert.equal(overlap.stats.defrag.overlaps, 1);
  assert.equal(overlap.stats.defrag.queues, 0);

  const odd = new PacketDecoder();
  feed(odd, [v6Fragment(data, pieces[0])]);
  const cls = odd.decode(record(1, v6Fragment(data, { offset: 480, length: 100, more: true })));
  assert.equal(cls, PacketClass.Malformed);
  assert.equal(odd.packet.reason, "ipv6 fragment length not a multiple of 8");
  assert.equal(odd.stats.defrag.queues, 0);
});

test("IPv6 timeout is 60 s", () => {
  const decoder = new PacketDecoder();
  decoder.decode(record(1, v6Fragment(data, pieces[0]), { tsSec: 1000 }));
  decoder.decode(record(1, v6Fragment(data, pieces[1]), { tsSec: 1045 }));
  assert.equal(decoder.decode(record(1, v6Fragment(data, pieces[2]), { tsSec: 1059 })), PacketClass.Decoded);
  decoder.decode(record(1, v6Fragment(data, pieces[0], 9), { tsSec: 2000 }));
  decoder.decode(record(1, v6Fragment(data, pieces[1], 9), { tsSec: 2061 }));
  assert.equal(decoder.stats.defrag.datagramsTimedOut, 1);
});

test("IPv6 first fragment without its transport header is malformed", () => {
  const decoder = new PacketDecoder();
  const frame = ethernet(
    0x86dd,
    ipv6({ nextHeader: 44 }, [...fragmentHeader(6, 0, true, 5), ...Array(16).fill(0)]),
  );
  assert.equal(decoder.decode(record(1, frame)), PacketClass.Malformed);
  assert.equal(decoder.packet.reason, "ipv6 first fragment lacks the transport header");
});

test("an IPv4 fragment with a bad header checksum never reaches the defragmenter", () => {
  const decoder = new PacketDecoder();
  const cls = decoder.decode(record(1, v4Fragment(data, pieces[0], 5, { badChecksum: true })));
  assert.equal(cls, PacketClass.Malformed);
  assert.equal(decoder.packet.reason, "ipv4 fragment header checksum invalid");
  assert.equal(decoder.stats.defrag.fragments, 0);
});

test("IPv6 atomic fragment (offset 0, no more fragments) is reassembled at once without its fragment header", () => {
  const decoder = new PacketDecoder();
  const frame = ethernet(
    0x86dd,
    ipv6({ nextHeader: 44 }, [...fragmentHeader(17, 0, false, 9), ...udp(1, 2, [7, 7])]),
  );
  assert.equal(decoder.decode(record(1, frame)), PacketClass.Decoded);
  assert.equal(decoder.packet.reassembled, true);
  assert.equal(decoder.packet.ipLength, 40 + 10);
  assert.equal(decoder.packet.dstPort, 2);
  assert.equal(decoder.packet.ipId, 9);
});

test("reassemble: false classes every fragment as Fragment", () => {
  const decoder = new PacketDecoder({ reassemble: false });
  const classes = feed(
    decoder,
    pieces.map((p) => v4Fragment(data, p)),
  );
  assert.deepEqual(classes, [PacketClass.Fragment, PacketClass.Fragment, PacketClass.Fragment]);
  assert.equal(decoder.stats.defrag.fragments, 0);
});
