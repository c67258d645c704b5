/**
 * The observed-NAT stage (lib/pipeline/observed-nat.ts): two sightings of one packet are paired by
 * what NAT leaves alone, delivered once as the packet arrived with the other sighting's tuple as its
 * translation; the window and the ring's bound hold; through the whole replay a rewritten port is
 * the reply tuple's and every packet counts once.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CaptureRecord } from "../../lib/capture/source.js";
import { Tuple } from "../../lib/conntrack/connection.js";
import { PacketDecoder } from "../../lib/decode/decoder.js";
import { DecodedPacket, PacketClass } from "../../lib/decode/packet.js";
import {
  ObservedNatMatcher,
  copyDecodedPacket,
  type ObservedNatOptions,
} from "../../lib/pipeline/observed-nat.js";
import { DUPLICATE_SIGHTING, replayCaptures } from "../../lib/pipeline/replay.js";
import { formatConntrackEvent } from "../../lib/report/conntrack-text.js";
import { pcapBytes } from "./capture-fixtures.js";
import { echoRest, ethernet, icmp, ipv4, record, sll2, tcp, udp } from "./packet-builders.js";

const INSIDE = "10.1.2.3";
const ROUTER = "198.51.100.32";
const SERVER = "203.0.113.47";
const T0 = 1_764_000_000;

interface Sighting {
  input: number;
  /** Microseconds after T0. */
  us: number;
  src: string;
  dst: string;
  ttl: number;
  id: number;
  bytes: number[];
  protocol?: number;
  /** pcapng interface id (default 0). */
  interfaceId?: number;
  /** An SLL2 frame (`tcpdump -i any`) instead of Ethernet. */
  sll2?: { ifIndex: number; packetType: number };
}

function frameOf(s: Sighting): Buffer {
  return ethernet(
    0x0800,
    ipv4({ src: s.src, dst: s.dst, ttl: s.ttl, id: s.id, protocol: s.protocol ?? 6 }, s.bytes),
  );
}

function recordOf(s: Sighting, number: number): CaptureRecord {
  const time = { tsSec: T0 + Math.floor(s.us / 1e6), tsNsec: (s.us % 1e6) * 1000 };
  const r =
    s.sll2 === undefined
      ? record(1, frameOf(s), time)
      : record(276, sll2(s.sll2.packetType, 0x0800, s.sll2.ifIndex, ipv4OnlyOf(s)), time);
  r.inputIndex = s.input;
  r.interfaceId = s.interfaceId ?? 0;
  r.recordNumber = number;
  return r;
}

function ipv4OnlyOf(s: Sighting): Buffer {
  return ipv4({ src: s.src, dst: s.dst, ttl: s.ttl, id: s.id, protocol: s.protocol ?? 6 }, s.bytes);
}

interface Delivered {
  input: number;
  record: number;
  tuple: string;
  translation: string | null;
  ack: number;
  us: number;
  /** The delivered payload, as hex. */
  payload: string;
}

function describeTuple(t: Tuple): string {
  const address = (word: number) =>
    [word >>> 24, (word >>> 16) & 255, (word >>> 8) & 255, word & 255].join(".");
  return `${address(t.src0)}:${t.srcPort}>${address(t.dst0)}:${t.dstPort}`;
}

function describePacket(p: DecodedPacket): string {
  const address = (word: number) =>
    [word >>> 24, (word >>> 16) & 255, (word >>> 8) & 255, word & 255].join(".");
  return `${address(p.srcV4)}:${p.srcPort}>${address(p.dstV4)}:${p.dstPort}`;
}

function run(sightings: Sighting[], options: ObservedNatOptions = {}) {
  const delivered: Delivered[] = [];
  const duplicates: { input: number; record: number }[] = [];
  const matcher = new ObservedNatMatcher(
    options,
    (packet, translation, rec) =>
      delivered.push({
        input: rec.inputIndex,
        record: rec.recordNumber,
        tuple: describePacket(packet),
        translation: translation === null ? null : describeTuple(translation),
        ack: packet.tcpAck,
        us: (packet.tsSec - T0) * 1e6 + packet.tsNsec / 1000,
        payload: packet.buf.toString(
          "hex",
          packet.payloadOffset,
          packet.payloadOffset + packet.payloadCaptured,
        ),
      }),
    (_packet, rec) => duplicates.push({ input: rec.inputIndex, record: rec.recordNumber }),
  );
  const decoder = new PacketDecoder();
  sightings.forEach((s, i) => {
    const r = recordOf(s, i + 1);
    assert.equal(decoder.decode(r), PacketClass.Decoded);
    matcher.push(decoder.packet, r);
  });
  matcher.flush();
  return { delivered, duplicates, stats: matcher.stats };
}

const PSH_ACK = 0x18;
const SYN = 0x02;

function tcpBytes(
  sport: number,
  dport: number,
  seq: number,
  ack: number,
  flags: number,
  payload = "",
): number[] {
  return tcp({ srcPort: sport, dstPort: dport, seq, ack, flags, window: 502 }, [
    ...Buffer.from(payload, "latin1"),
  ]);
}

test("a packet seen twice is delivered once, as it arrived, with where it left as its translation", () => {
  const syn = tcpBytes(40000, 80, 1000, 0, SYN);
  const { delivered, duplicates, stats } = run([
    { input: 0, us: 100, src: INSIDE, dst: SERVER, ttl: 64, id: 7, bytes: syn },
    { input: 1, us: 130, src: ROUTER, dst: SERVER, ttl: 63, id: 7, bytes: tcpBytes(61000, 80, 1000, 0, SYN) },
  ]);
  assert.deepEqual(delivered, [
    {
      input: 0,
      record: 1,
      tuple: `${INSIDE}:40000>${SERVER}:80`,
      translation: `${ROUTER}:61000>${SERVER}:80`,
      ack: 0,
      us: 100,
      payload: "",
    },
  ]);
  assert.deepEqual(duplicates, [{ input: 1, record: 2 }]);
  assert.equal(stats.pairs, 1);
  assert.equal(stats.translatedPairs, 1);
  assert.equal(stats.single, 0);
});

test("two sightings on the same vantage, or with another IP id, are two packets", () => {
  const syn = tcpBytes(40000, 80, 1000, 0, SYN);
  const { delivered, stats } = run([
    { input: 0, us: 100, src: INSIDE, dst: SERVER, ttl: 64, id: 7, bytes: syn },
    { input: 0, us: 110, src: INSIDE, dst: SERVER, ttl: 64, id: 7, bytes: syn },
    { input: 1, us: 130, src: ROUTER, dst: SERVER, ttl: 63, id: 8, bytes: syn },
  ]);
  assert.equal(delivered.length, 3);
  assert.ok(delivered.every((d) => d.translation === null));
  assert.equal(stats.pairs, 0);
  assert.equal(stats.single, 3);
});

test("the arrival sighting is the one with the higher TTL, whatever the capture clocks say", () => {
  const data = tcpBytes(40000, 80, 1000, 5000, PSH_ACK, "hello");
  const { delivered, duplicates } = run([
    {
      input: 1,
      us: 100,
      src: ROUTER,
      dst: SERVER,
      ttl: 63,
      id: 9,
      bytes: tcpBytes(61000, 80, 1000, 5000, PSH_ACK, "hello"),
    },
    { input: 0, us: 120, src: INSIDE, dst: SERVER, ttl: 64, id: 9, bytes: data },
  ]);
  assert.deepEqual(
    delivered.map((d) => [d.input, d.tuple, d.translation]),
    [[0, `${INSIDE}:40000>${SERVER}:80`, `${ROUTER}:61000>${SERVER}:80`]],
  );
  assert.deepEqual(duplicates, [{ input: 1, record: 1 }]);
});

test("FTP rewrites pair: a rewritten PORT, shifted sequence numbers, shifted acknowledgments", () => {
  const port = "PORT 10,1,2,3,140,137\r\n";
  const rewritten = "PORT 198,51,100,32,140,137\r\n";
  const shift = rewritten.length - port.length;
  const { delivered, stats } = run([
    // The PORT command: same sequence and acknowledgment, payload rewritten and longer.
    {
      input: 0,
      us: 100,
      src: INSIDE,
      dst: SERVER,
      ttl: 64,
      id: 20,
      bytes: tcpBytes(60084, 21, 5000, 9000, PSH_ACK, port),
    },
    {
      input: 1,
      us: 120,
      src: ROUTER,
      dst: SERVER,
      ttl: 63,
      id: 20,
      bytes: tcpBytes(60084, 21, 5000, 9000, PSH_ACK, rewritten),
    },
    // The server's answer acknowledges the longer command: translated back on the way in.
    {
      input: 1,
      us: 300,
      src: SERVER,
      dst: ROUTER,
      ttl: 64,
      id: 77,
      bytes: tcpBytes(21, 60084, 9000, 5000 + rewritten.length, PSH_ACK, "200 OK\r\n"),
    },
    {
      input: 0,
      us: 320,
      src: SERVER,
      dst: INSIDE,
      ttl: 63,
      id: 77,
      bytes: tcpBytes(21, 60084, 9000, 5000 + port.length, PSH_ACK, "200 OK\r\n"),
    },
    // The client's next command: its sequence number is shifted on the way out.
    {
      input: 0,
      us: 500,
      src: INSIDE,
      dst: SERVER,
      ttl: 64,
      id: 21,
      bytes: tcpBytes(60084, 21, 5000 + port.length, 9008, PSH_ACK, "LIST\r\n"),
    },
    {
      input: 1,
      us: 520,
      src: ROUTER,
      dst: SERVER,
      ttl: 63,
      id: 21,
      bytes: tcpBytes(60084, 21, 5000 + port.length + shift, 9008, PSH_ACK, "LIST\r\n"),
    },
  ]);
  assert.equal(stats.pairs, 3);
  assert.deepEqual(
    delivered.map((d) => [d.input, d.tuple]),
    [
      [0, `${INSIDE}:60084>${SERVER}:21`],
      [1, `${SERVER}:21>${ROUTER}:60084`],
      [0, `${INSIDE}:60084>${SERVER}:21`],
    ],
  );
  // The tracker compares the answer's acknowledgment with the adjustment taken off (tcp_in_window).
  assert.equal(delivered[1].ack, 5000 + port.length);
});

test("ICMP: an echo whose id the router rewrote pairs by sequence and payload", () => {
  const payload = [...Buffer.from("abcdefgh")];
  const { delivered, stats } = run([
    {
      input: 0,
      us: 0,
      src: INSIDE,
      dst: SERVER,
      ttl: 64,
      id: 11,
      bytes: icmp(8, 0, echoRest(100, 1), payload),
      protocol: 1,
    },
    {
      input: 1,
      us: 20,
      src: ROUTER,
      dst: SERVER,
      ttl: 63,
      id: 11,
      bytes: icmp(8, 0, echoRest(555, 1), payload),
      protocol: 1,
    },
    // Another sequence number is another packet.
    {
      input: 1,
      us: 40,
      src: ROUTER,
      dst: SERVER,
      ttl: 63,
      id: 11,
      bytes: icmp(8, 0, echoRest(555, 2), payload),
      protocol: 1,
    },
  ]);
  assert.equal(stats.pairs, 1);
  assert.deepEqual(
    delivered.map((d) => [d.input, d.translation]),
    [
      [0, `${ROUTER}:555>${SERVER}:2048`],
      [1, null],
    ],
  );
});

test("vantages: pcapng interfaces of one file, SLL2 interfaces of `tcpdump -i any`", () => {
  const out: Sighting = {
    input: 0,
    us: 0,
    src: INSIDE,
    dst: SERVER,
    ttl: 64,
    id: 3,
    bytes: udp(5000, 53, [1]),
    protocol: 17,
  };
  const back: Sighting = { ...out, us: 20, src: ROUTER, ttl: 63, bytes: udp(61000, 53, [1]) };
  assert.equal(run([out, back]).stats.pairs, 0, "one interface of one file: two packets");
  assert.equal(run([out, { ...back, interfaceId: 1 }]).stats.pairs, 1);
  const anyIn: Sighting = { ...out, sll2: { ifIndex: 2, packetType: 0 } };
  const anyOut: Sighting = { ...back, sll2: { ifIndex: 3, packetType: 4 } };
  const paired = run([anyIn, anyOut]);
  assert.equal(paired.stats.pairs, 1);
  assert.equal(paired.delivered[0].translation, `${ROUTER}:61000>${SERVER}:53`);
  // A hairpin: in and out by the same interface, told apart by the direction.
  assert.equal(run([anyIn, { ...anyOut, sll2: { ifIndex: 2, packetType: 4 } }]).stats.pairs, 1);
  assert.equal(run([anyIn, { ...anyOut, sll2: { ifIndex: 2, packetType: 0 } }]).stats.pairs, 0);
});

test("the window: sightings further apart than it are two packets", () => {
  const sightings: Sighting[] = [
    {
      input: 0,
      us: 0,
      src: INSIDE,
      dst: SERVER,
      ttl: 64,
      id: 5,
      bytes: udp(5000, 53, [1, 2, 3]),
      protocol: 17,
    },
    {
      input: 1,
      us: 60_000,
      src: ROUTER,
      dst: SERVER,
      ttl: 63,
      id: 5,
      bytes: udp(5000, 53, [1, 2, 3]),
      protocol: 17,
    },
  ];
  assert.equal(run(sightings, { windowNs: 50e6 }).stats.pairs, 0);
  assert.equal(run(sightings, { windowNs: 50e6 }).delivered.length, 2);
  assert.equal(run(sightings, { windowNs: 100e6 }).stats.pairs, 1);
  // Different payloads never pair, within the window or not.
  const other = [sightings[0], { ...sightings[1], us: 10, bytes: udp(5000, 53, [1, 2, 4]) }];
  assert.equal(run(other, { windowNs: 100e6 }).stats.pairs, 0);
});

test("the ring's bound: when it is full the oldest packet leaves early, counted, in order", () => {
  const sightings: Sighting[] = [0, 1, 2, 3].map((i) => ({
    input: 0,
    us: i * 10,
    src: INSIDE,
    dst: SERVER,
    ttl: 64,
    id: 100 + i,
    bytes: udp(5000 + i, 53, [i]),
    protocol: 17,
  }));
  // The first one's second sighting comes after it had to leave: it is not paired.
  sightings.push({ ...sightings[0], input: 1, us: 50, src: ROUTER, ttl: 63 });
  const { delivered, stats } = run(sightings, { maxHeldPackets: 2 });
  assert.equal(stats.releasedEarly, 3);
  assert.equal(stats.maxHeld, 2);
  assert.equal(stats.pairs, 0);
  assert.deepEqual(
    delivered.map((d) => d.record),
    [1, 2, 3, 4, 5],
  );
  // With room for the window, the same input pairs.
  assert.equal(run(sightings).stats.pairs, 1);
});

test("memory follows the window, not the capture: slots are reused", () => {
  const matcher = new ObservedNatMatcher(
    { windowNs: 5e6 },
    () => undefined,
    () => undefined,
  );
  const decoder = new PacketDecoder();
  for (let i = 0; i < 5000; i++) {
    const s: Sighting = {
      input: i % 2,
      us: i * 1000,
      src: INSIDE,
      dst: SERVER,
      ttl: 64,
      id: i,
      bytes: udp(5000, 53, [i & 255]),
      protocol: 17,
    };
    const r = recordOf(s, i + 1);
    decoder.decode(r);
    matcher.push(decoder.packet, r);
  }
  matcher.flush();
  // 1 ms apart in a 5 ms window: at most 6 wait at once, and no more slots than that are ever made.
  assert.equal(matcher.stats.maxHeld, 6);
  assert.equal((matcher as unknown as { slots: unknown[] }).slots.length, 6);
  assert.equal(matcher.stats.single, 5000);
});

test("the arena grows, and moves held packets intact, up to its bound", () => {
  // More than the arena's first 1 MiB, so that it grows while holding packets.
  const COUNT = 800;
  const sightings: Sighting[] = [];
  for (let i = 0; i < COUNT; i++) {
    const payload = Array.from({ length: 1400 }, (_, j) => (i + j) & 255);
    sightings.push({
      input: 0,
      us: i,
      src: INSIDE,
      dst: SERVER,
      ttl: 64,
      id: i,
      bytes: udp(5000, 53, payload),
      protocol: 17,
    });
  }
  for (let i = 0; i < COUNT; i++) {
    const payload = Array.from({ length: 1400 }, (_, j) => (i + j) & 255);
    sightings.push({
      input: 1,
      us: 10_000 + i,
      src: ROUTER,
      dst: SERVER,
      ttl: 63,
      id: i,
      bytes: udp(7000, 53, payload),
      protocol: 17,
    });
  }
  // 800 × 1.4 kB do not fit in 64 kB: the oldest leave early and lose their partners.
  const bounded = run(sightings, { maxHeldBytes: 65536 + 16 });
  assert.ok(bounded.stats.releasedEarly > 0);
  assert.ok(bounded.stats.pairs < COUNT);
  assert.equal(bounded.delivered.length, 2 * COUNT - bounded.stats.pairs);
  // Room enough: the arena grows from 1 MiB, moving what it holds, and every pair is found.
  const roomy = run(sightings, { maxHeldBytes: 8 * 1024 * 1024 });
  assert.equal(roomy.stats.pairs, COUNT);
  assert.equal(roomy.stats.releasedEarly, 0);
  assert.deepEqual(
    roomy.delivered.map((d) => d.record),
    Array.from({ length: COUNT }, (_, i) => i + 1),
  );
  roomy.delivered.forEach((d, i) =>
    assert.equal(d.payload, Buffer.from(sightings[i].bytes.slice(8)).toString("hex"), `packet ${i + 1}`),
  );
});

test("link-local and multicast packets are never paired, however alike", () => {
  const report = udp(5353, 5353, [9, 9, 9]);
  const { stats } = run([
    { input: 0, us: 0, src: "10.1.2.1", dst: "224.0.0.251", ttl: 255, id: 0, bytes: report, protocol: 17 },
    { input: 1, us: 10, src: "10.1.2.1", dst: "224.0.0.251", ttl: 255, id: 0, bytes: report, protocol: 17 },
  ]);
  assert.equal(stats.pairs, 0);
  assert.equal(stats.single, 2);
});

test("copyDecodedPacket copies every field the decoder fills", () => {
  const from = new DecodedPacket();
  let counter = 1;
  const fill = (object: Record<string, unknown>) => {
    for (const key of Object.keys(object)) {
      const value = object[key];
      if (typeof value === "number") object[key] = counter++;
      else if (typeof value === "boolean") object[key] = !value;
      else if (typeof value === "string") object[key] = `reason ${counter++}`;
      else if (value instanceof Uint8Array || value instanceof Uint16Array || value instanceof Uint32Array)
        for (let i = 0; i < value.length; i++) value[i] = counter++ & 0xff;
      else if (value !== null && typeof value === "object" && !Buffer.isBuffer(value))
        fill(value as Record<string, unknown>);
    }
  };
  fill(from as unknown as Record<string, unknown>);
  from.buf = Buffer.alloc(8);
  const to = new DecodedPacket();
  copyDecodedPacket(to, from, from.buf, 0);
  assert.deepEqual(to, from);
});

// ------------------------------------------------------------------ through the replay

function pcapOf(sightings: Sighting[]): Buffer {
  return pcapBytes({
    records: sightings.map((s) => ({
      sec: T0 + Math.floor(s.us / 1e6),
      fraction: s.us % 1e6,
      data: frameOf(s),
    })),
  });
}

test("replay: the port the router chose is the reply tuple's, and each packet counts once", async () => {
  const directory = mkdtempSync(join(tmpdir(), "observed-nat-"));
  try {
    const request = udp(5000, 53, [1, 2, 3, 4]);
    const answer = [9, 8, 7, 6, 5, 4];
    // The router had 5000 taken and chose 61000 (a clash): only the outside capture shows it.
    const inside: Sighting[] = [
      { input: 0, us: 0, src: INSIDE, dst: SERVER, ttl: 64, id: 1, bytes: request, protocol: 17 },
      {
        input: 0,
        us: 520,
        src: SERVER,
        dst: INSIDE,
        ttl: 63,
        id: 2,
        bytes: udp(53, 5000, answer),
        protocol: 17,
      },
    ];
    const outside: Sighting[] = [
      {
        input: 1,
        us: 20,
        src: ROUTER,
        dst: SERVER,
        ttl: 63,
        id: 1,
        bytes: udp(61000, 53, [1, 2, 3, 4]),
        protocol: 17,
      },
      {
        input: 1,
        us: 500,
        src: SERVER,
        dst: ROUTER,
        ttl: 64,
        id: 2,
        bytes: udp(53, 61000, answer),
        protocol: 17,
      },
    ];
    writeFileSync(join(directory, "inside.pcap"), pcapOf(inside));
    writeFileSync(join(directory, "outside.pcap"), pcapOf(outside));
    const lines: string[] = [];
    const seen: { verdict: number; reason: string }[] = [];
    const result = await replayCaptures([join(directory, "inside.pcap"), join(directory, "outside.pcap")], {
      observedNat: {},
      settings: { acct: 1 },
      drain: true,
      onEvent: (event) => lines.push(formatConntrackEvent(event, { timestamp: false })),
      onPacket: (_record, _class, _packet, verdict, reason) => seen.push({ verdict, reason }),
    });
    assert.deepEqual(lines, [
      `    [NEW] udp      17 30 src=${INSIDE} dst=${SERVER} sport=5000 dport=53 [UNREPLIED] src=${SERVER} dst=${ROUTER} sport=53 dport=61000`,
      ` [UPDATE] udp      17 30 src=${INSIDE} dst=${SERVER} sport=5000 dport=53 src=${SERVER} dst=${ROUTER} sport=53 dport=61000`,
      `[DESTROY] udp      17 src=${INSIDE} dst=${SERVER} sport=5000 dport=53 packets=1 bytes=32 src=${SERVER} dst=${ROUTER} sport=53 dport=61000 packets=1 bytes=34`,
    ]);
    assert.equal(result.tracked, 2);
    assert.equal(result.accounting.classes.decoded, 4);
    assert.equal(result.accounting.duplicateSightings, 2);
    assert.equal(result.accounting.duplicateSightingsOf(1), 1);
    assert.equal(result.engine.stats.nat.observed, 1);
    assert.equal(seen.filter((packet) => packet.reason === DUPLICATE_SIGHTING).length, 2);
    assert.equal(seen.filter((packet) => packet.verdict >= 0).length, 2);

    // Without the stage the same inputs are four packets and two connections.
    const plain = await replayCaptures([join(directory, "inside.pcap"), join(directory, "outside.pcap")], {
      drain: true,
    });
    assert.equal(plain.tracked, 4);
    assert.equal(plain.engine.stats.connectionsCreated, 2);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("replay: a packet seen only after translation still finds its connection", async () => {
  const directory = mkdtempSync(join(tmpdir(), "observed-nat-"));
  try {
    const answer = [9, 8, 7, 6, 5, 4];
    // The outside capture missed the answer: only its translated-back sighting is there.
    const inside: Sighting[] = [
      {
        input: 0,
        us: 0,
        src: INSIDE,
        dst: SERVER,
        ttl: 64,
        id: 1,
        bytes: udp(5000, 53, [1, 2]),
        protocol: 17,
      },
      {
        input: 0,
        us: 520,
        src: SERVER,
        dst: INSIDE,
        ttl: 63,
        id: 2,
        bytes: udp(53, 5000, answer),
        protocol: 17,
      },
    ];
    const outside: Sighting[] = [
      {
        input: 1,
        us: 20,
        src: ROUTER,
        dst: SERVER,
        ttl: 63,
        id: 1,
        bytes: udp(61000, 53, [1, 2]),
        protocol: 17,
      },
    ];
    writeFileSync(join(directory, "inside.pcap"), pcapOf(inside));
    writeFileSync(join(directory, "outside.pcap"), pcapOf(outside));
    const lines: string[] = [];
    const result = await replayCaptures([join(directory, "inside.pcap"), join(directory, "outside.pcap")], {
      observedNat: {},
      settings: { acct: 1 },
      drain: true,
      onEvent: (event) => lines.push(formatConntrackEvent(event, { timestamp: false })),
    });
    assert.equal(result.engine.stats.connectionsCreated, 1);
    assert.equal(result.engine.stats.nat.insideMatches, 1);
    assert.equal(lines.length, 3);
    assert.match(
      lines[1],
      /^ \[UPDATE\] udp .* src=203\.0\.113\.47 dst=198\.51\.100\.32 sport=53 dport=61000$/,
    );
    assert.match(
      lines[2],
      /packets=1 bytes=30 src=203\.0\.113\.47 dst=198\.51\.100\.32 sport=53 dport=61000 packets=1 bytes=34$/,
    );
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
