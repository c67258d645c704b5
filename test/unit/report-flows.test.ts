/** Flow lifecycle records and orphaned packets, driven through the engine with hand-built packets. */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { DecodedPacket } from "../../lib/decode/packet.js";
import { ConntrackEngine, ConntrackEvent, Verdict } from "../../lib/conntrack/engine.js";
import { FlowTracker, flowCsvRow, historyText, natKind, type FlowRecord } from "../../lib/report/flows.js";
import { OrphanTracker, orphanCsvRow, tcpFlagsText, type OrphanRecord } from "../../lib/report/orphans.js";
import { SummaryBuilder } from "../../lib/report/summary.js";
import { isoTimeNs } from "../../lib/report/event-formats.js";
import { Connection, TCP_STATE_NAMES, Tuple } from "../../lib/conntrack/connection.js";
import { makeIcmp, makeTcp, makeUdp, randomPacket } from "./conntrack-fixtures.js";

const CLIENT = "10.1.2.3";
const SERVER = "203.0.113.47";
const T0 = 1_764_000_000;

function harness(settings: Record<string, number> = {}, orphanMemory = 4096) {
  const flows: FlowRecord[] = [];
  const orphans: OrphanRecord[] = [];
  const flowTracker = new FlowTracker({ onFlow: (record) => flows.push(record) });
  const orphanTracker = new OrphanTracker({
    onOrphan: (record) => orphans.push(record),
    memory: orphanMemory,
  });
  orphanTracker.setInputNames(["in.pcap"]);
  const engine = new ConntrackEngine({
    settings,
    onEvent: (event) => {
      orphanTracker.onEvent(event);
      flowTracker.onEvent(event);
    },
  });
  let number = 0;
  const feed = (packet: DecodedPacket): void => {
    const verdict = engine.process(packet);
    const flow = flowTracker.liveConnection(verdict, engine.lastConnection);
    orphanTracker.onPacket(0, ++number, packet, verdict, engine.reason, flow);
  };
  return { engine, flows, orphans, flowTracker, orphanTracker, feed };
}

/** The packet stamped `ms` milliseconds after T0, exactly (no float rounding of the fixture's seconds). */
function at<P extends DecodedPacket>(packet: P, ms: number): P {
  packet.tsSec = T0 + Math.floor(ms / 1000);
  packet.tsNsec = (ms % 1000) * 1e6;
  return packet;
}

function handshake(feed: (packet: DecodedPacket) => void, sport: number): void {
  const c = { src: CLIENT, dst: SERVER, sport, dport: 80, ts: T0 };
  const s = { src: SERVER, dst: CLIENT, sport: 80, dport: sport, ts: T0 };
  feed(at(makeTcp({ ...c, flags: "S", seq: 1000, win: 64240 }), 0));
  feed(at(makeTcp({ ...s, flags: "SA", seq: 5000, ack: 1001, win: 65160 }), 1));
  feed(at(makeTcp({ ...c, flags: "A", seq: 1001, ack: 5001 }), 2));
}

test("a closed TCP connection: history, counters, end reason, flags, community id", () => {
  const h = harness();
  const c = { src: CLIENT, dst: SERVER, sport: 40000, dport: 80, ts: T0 };
  const s = { src: SERVER, dst: CLIENT, sport: 80, dport: 40000, ts: T0 };
  handshake(h.feed, 40000);
  h.feed(at(makeTcp({ ...c, flags: "FA", seq: 1001, ack: 5001 }), 500));
  h.feed(at(makeTcp({ ...s, flags: "FA", seq: 5001, ack: 1002 }), 600));
  h.feed(at(makeTcp({ ...c, flags: "A", seq: 1002, ack: 5002 }), 700));
  assert.equal(h.flows.length, 0, "no record before the connection ends");
  h.engine.drain();
  assert.equal(h.flows.length, 1);
  const flow = h.flows[0];
  assert.equal(
    historyText(flow),
    "SYN_SENT@0.000000>SYN_RECV@0.001000>ESTABLISHED@0.002000>FIN_WAIT@0.500000>LAST_ACK@0.600000>TIME_WAIT@0.700000",
  );
  assert.equal(flow.finalState, "TIME_WAIT");
  assert.equal(flow.endReason, "timeout");
  assert.equal(flow.endDetail, "timeout in TIME_WAIT (after the input ended)");
  assert.equal(flow.endTime, "2025-11-24T16:02:00.700000000Z");
  assert.equal(flow.firstPacket, "2025-11-24T16:00:00.000000000Z");
  assert.equal(flow.lastPacket, "2025-11-24T16:00:00.700000000Z");
  assert.equal(flow.duration, 0.7);
  assert.deepEqual(flow.flags, ["SEEN_REPLY", "ASSURED"]);
  assert.equal(flow.replyAfter, 0.001);
  assert.equal(flow.assuredAfter, 0.002);
  assert.deepEqual(
    [flow.originalPackets, flow.originalBytes, flow.replyPackets, flow.replyBytes],
    [4, 160, 2, 80],
  );
  assert.equal(flow.nat, "none");
  assert.equal(flow.masterId, null);
  assert.deepEqual(flow.original, { src: CLIENT, dst: SERVER, sport: 40000, dport: 80 });
  assert.match(flow.communityId, /^1:[A-Za-z0-9+/]{27}=$/);
  const row = flowCsvRow(flow).split(",");
  assert.equal(row[0], "1");
  assert.equal(row[21], "timeout");
});

test("the last packet: one the connection took, counted or not; never an invalid one", () => {
  const h = harness();
  const c = { src: CLIENT, dst: SERVER, sport: 40001, dport: 80, ts: T0 };
  const s = { src: SERVER, dst: CLIENT, sport: 80, dport: 40001, ts: T0 };
  h.feed(at(makeTcp({ ...c, flags: "S", seq: 1000, win: 64240 }), 0));
  // A retransmitted SYN: taken, not counted (and it does not refresh the unanswered entry).
  h.feed(at(makeTcp({ ...c, flags: "S", seq: 1000, win: 64240 }), 300));
  // SYN and FIN together: invalid.
  h.feed(at(makeTcp({ ...s, flags: "SF", seq: 5000, ack: 1001, win: 65160 }), 400));
  assert.equal(h.engine.stats.verdicts[Verdict.Invalid], 1);
  h.flowTracker.finish(h.engine);
  const syn = h.flows[0];
  assert.equal(syn.lastPacket, "2025-11-24T16:00:00.300000000Z");
  assert.equal(syn.originalPackets, 1);
  assert.equal(syn.replyPackets, 0);

  // A RST that kills an unanswered entry is its last packet (and its end).
  const k = harness();
  k.feed(at(makeTcp({ ...c, flags: "S", seq: 1000, win: 64240 }), 0));
  k.feed(at(makeTcp({ ...c, flags: "R", seq: 1001 }), 900));
  assert.equal(k.flows.length, 1);
  assert.equal(k.flows[0].endReason, "reset");
  assert.equal(k.flows[0].lastPacket, "2025-11-24T16:00:00.900000000Z");
  assert.equal(k.flows[0].endTime, "2025-11-24T16:00:00.900000000Z");

  // A packet stamped before the engine's clock is taken at the clock's time, as its events are.
  const b = harness();
  b.feed(at(makeUdp({ src: CLIENT, dst: SERVER, sport: 5000, dport: 53, ts: T0 }), 500));
  b.feed(at(makeUdp({ src: CLIENT, dst: SERVER, sport: 5001, dport: 53, ts: T0 }), 800));
  b.feed(at(makeUdp({ src: SERVER, dst: CLIENT, sport: 53, dport: 5000, ts: T0 }), 600));
  b.flowTracker.finish(b.engine);
  assert.equal(b.flows[0].lastPacket, "2025-11-24T16:00:00.800000000Z");
  assert.equal(b.flows[0].replyAfter, 0.3);
});

test("UDP and ICMP histories; a connection still live at the end says when it expires", () => {
  const h = harness({ "net.netfilter.nf_conntrack_udp_timeout": 30 });
  h.feed(makeUdp({ src: CLIENT, dst: SERVER, sport: 5000, dport: 53, ts: T0 }));
  h.feed(at(makeUdp({ src: SERVER, dst: CLIENT, sport: 53, dport: 5000, ts: T0 }), 250));
  h.feed(makeIcmp({ src: CLIENT, dst: SERVER, type: 8, id: 7, seq: 1, ts: T0 + 1 }));
  h.flowTracker.finish(h.engine);
  assert.equal(h.flows.length, 2);
  const [udp, icmp] = h.flows;
  assert.equal(historyText(udp), "UNREPLIED@0.000000>REPLIED@0.250000");
  assert.equal(udp.finalState, "REPLIED");
  assert.equal(udp.endReason, "live");
  assert.equal(udp.lastPacket, "2025-11-24T16:00:00.250000000Z");
  assert.equal(udp.expiresAt, "2025-11-24T16:00:30.250000000Z");
  assert.equal(udp.expiresIn, 29);
  assert.equal(udp.endDetail, "still live at the end of the input in REPLIED, expires in 29 s");
  assert.equal(udp.endTime, null);
  assert.equal(historyText(icmp), "UNREPLIED@0.000000");
  assert.deepEqual(icmp.flags, ["UNREPLIED"]);
  assert.deepEqual(icmp.original, { src: CLIENT, dst: SERVER, type: 8, code: 0, id: 7 });
  // The spec's "echo request" vector has these addresses' order: check the id is the request's.
  assert.equal(h.flowTracker.liveCount, 0);
});

/**
 * Random traffic (TCP, UDP, ICMP, GRE; IPv4 and IPv6; times on rounding ties, out of order, hours
 * apart) through a tracker that writes flows.csv from its state and also builds records: every row
 * must be the bytes `flowCsvRow` writes for that flow's record.
 */
function compareCsvPaths(seed: number, finish: "drain" | "live", maxHistory: number): string[] {
  let state = seed;
  const random = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  const records: FlowRecord[] = [];
  const rows: string[] = [];
  const lines: string[] = [];
  const fromRecords = new SummaryBuilder({ talkerCounters: 4 });
  const fromState = new SummaryBuilder({ talkerCounters: 4 });
  const tracker = new FlowTracker({
    maxHistory,
    communityIdSeed: seed & 0xffff,
    onFlow: (record) => {
      records.push(record);
      fromRecords.addFlow(record);
    },
    onFlowEnd: (end) => fromState.addFlowEnd(end),
    onCsvRow: (row) => rows.push(row),
    onNdjsonRow: (line) => lines.push(line),
  });
  const engine = new ConntrackEngine({
    settings: { "net.netfilter.nf_conntrack_tcp_loose": 1 },
    onEvent: (event) => tracker.onEvent(event),
  });
  let sec = T0;
  for (let i = 0; i < 600; i++) {
    // Mostly forward in small steps; sometimes back a little, sometimes hours ahead.
    const step = random(20);
    if (step === 0) sec -= 1;
    else if (step === 1) sec += 3600 * (1 + random(48));
    else if (step < 6) sec += 1;
    const nsec = [0, 500, 1500, 999_999_500, random(1e9), random(1000) * 1000 + 500][random(6)];
    const packet = randomPacket(random);
    packet.tsSec = sec;
    packet.tsNsec = nsec;
    engine.process(packet);
    const connection = engine.lastConnection;
    // Names an input could choose: a helper name with a delimiter, quotes, a formula start, non-ASCII.
    if (connection !== null && random(40) === 0)
      connection.helper = ['=cmd|"x"', "a,b", "naïve ☃", "@x", "plain", "line\nbreak"][random(6)];
  }
  if (finish === "drain") engine.drain();
  tracker.finish(engine);
  assert.ok(records.length > 50, `only ${records.length} flows`);
  assert.equal(rows.length, records.length);
  // The counts (the talkers' keys differ in kind: IPv4 words from state, text from records).
  const counts = (builder: SummaryBuilder): string => JSON.stringify({ ...builder, talkers: null });
  assert.equal(counts(fromState), counts(fromRecords));
  assert.deepEqual(fromState.topTalkers(), fromRecords.topTalkers());
  for (let i = 0; i < rows.length; i++) {
    assert.equal(rows[i], flowCsvRow(records[i]), `flow ${records[i].id}`);
    assert.equal(lines[i], `${JSON.stringify(records[i])}\n`, `flow ${records[i].id} (ndjson)`);
  }
  return rows;
}

test("flows.csv and flows.ndjson rows and summary counts from the tracker's state are the records'", () => {
  const rows = [
    ...compareCsvPaths(1, "drain", 64),
    ...compareCsvPaths(2, "live", 64),
    ...compareCsvPaths(3, "live", 1),
    ...compareCsvPaths(4, "drain", 3),
  ];
  // The awkward cases were there to compare.
  assert.ok(rows.some((row) => row.includes('"\'=cmd|""x"""')));
  assert.ok(rows.some((row) => row.includes("naïve ☃")));
  assert.ok(rows.some((row) => row.includes(">…(+")));
  assert.ok(rows.some((row) => /,still live at|,"still live at/.test(row)));
  assert.ok(rows.some((row) => row.includes(",2001:db8::")));
});

test("long histories: every state change in order, the cap counted, far-apart times kept", () => {
  for (const [changes, maxHistory] of [
    [7, 64],
    [8, 64],
    [9, 64],
    [30, 64],
    [30, 12],
    [70, 64],
  ]) {
    const records: FlowRecord[] = [];
    const rows: string[] = [];
    const lines: string[] = [];
    const tracker = new FlowTracker({
      maxHistory,
      onFlow: (record) => records.push(record),
      onCsvRow: (row) => rows.push(row),
      onNdjsonRow: (line) => lines.push(line),
    });
    const connection = new Connection();
    connection.id = 5;
    // A flow's row is its connection's table slot (one made by hand names one).
    connection.tableSlot = 3;
    connection.original.protocol = connection.reply.protocol = 6;
    const event = new ConntrackEvent();
    event.connection = connection;
    const expected: string[] = [];
    for (let i = 0; i < changes; i++) {
      event.type = i === 0 ? "NEW" : "UPDATE";
      // From the sixth change on, 2^31 seconds later: beyond what the pool holds as a 32-bit number.
      event.tsSec = T0 + i + (i >= 5 ? 2 ** 31 : 0);
      event.tsNsec = i * 1000;
      event.state = i % 2 === 0 ? 3 : 5; // ESTABLISHED, CLOSE_WAIT, …
      const offset = (event.tsSec - T0) * 1e9 + event.tsNsec;
      if (expected.length < maxHistory)
        expected.push(`${TCP_STATE_NAMES[event.state]}@${(offset / 1e9).toFixed(6)}`);
      tracker.onEvent(event);
    }
    event.type = "DESTROY";
    event.state = -1;
    event.destroyCause = "expired";
    event.firstSec = T0;
    event.firstNsec = 0;
    event.lastSec = event.tsSec;
    event.lastNsec = event.tsNsec;
    tracker.onEvent(event);
    assert.equal(records.length, 1);
    assert.equal(records[0].firstPacket, isoTimeNs(T0, 0));
    assert.equal(records[0].lastPacket, isoTimeNs(event.tsSec, event.tsNsec));
    const omitted = changes - expected.length;
    assert.equal(
      historyText(records[0]),
      omitted > 0 ? `${expected.join(">")}>…(+${omitted})` : expected.join(">"),
      `${changes} changes, at most ${maxHistory}`,
    );
    assert.equal(rows[0], flowCsvRow(records[0]));
    assert.equal(lines[0], `${JSON.stringify(records[0])}\n`);
  }
});

test("NAT kind from the tuples", () => {
  const original = new Tuple();
  original.protocol = 6;
  original.src0 = 1;
  original.dst0 = 2;
  original.srcPort = 1000;
  original.dstPort = 80;
  const reply = new Tuple();
  reply.protocol = 6;
  reply.src0 = 2;
  reply.dst0 = 1;
  reply.srcPort = 80;
  reply.dstPort = 1000;
  assert.equal(natKind(original, reply), "none");
  reply.dst0 = 9;
  assert.equal(natKind(original, reply), "snat");
  reply.srcPort = 8080;
  assert.equal(natKind(original, reply), "both");
  reply.dst0 = 1;
  assert.equal(natKind(original, reply), "dnat");
});

test("orphans: SYN-ACK and echo reply with no original, ICMP error about an unknown connection", () => {
  const h = harness();
  h.feed(makeUdp({ src: CLIENT, dst: SERVER, sport: 5000, dport: 53, ts: T0 }));
  h.feed(
    makeTcp({ src: SERVER, dst: CLIENT, sport: 80, dport: 41000, ts: T0 + 1, flags: "SA", seq: 1, ack: 2 }),
  );
  h.feed(makeIcmp({ src: SERVER, dst: CLIENT, type: 0, id: 9, ts: T0 + 2 }));
  h.feed(
    makeIcmp({
      src: "192.0.2.1",
      dst: CLIENT,
      type: 3,
      code: 3,
      ts: T0 + 3,
      inner: { src: CLIENT, dst: SERVER, protocol: 17, sport: 6000, dport: 123 },
    }),
  );
  assert.deepEqual(
    h.orphans.map((o) => [o.packet, o.kind, o.reason, o.tcpFlags, o.nearestConnectionId]),
    [
      [2, "no-original", "SYN-ACK with no connection", "S.", 1],
      [3, "no-original", "echo reply with no request", null, 1],
      [
        4,
        "icmp-error-unknown",
        `icmp error type 3 code 3 about an unknown connection (about udp ${CLIENT}:6000 > ${SERVER}:123)`,
        null,
        1,
      ],
    ],
  );
  const synAck = h.orphans[0];
  assert.equal(synAck.input, "in.pcap");
  assert.equal(synAck.engineReason, "tcp: packet cannot start a connection");
  assert.equal(synAck.nearestConnection, `udp ${CLIENT}:5000 > ${SERVER}:53 (same addresses, live)`);
  assert.deepEqual([synAck.src, synAck.sport, synAck.dst, synAck.dport], [SERVER, 80, CLIENT, 41000]);
  assert.equal(h.orphans[1].icmpType, 0);
  assert.deepEqual(Object.fromEntries(h.orphanTracker.byKind), { "no-original": 2, "icmp-error-unknown": 1 });
});

test("orphans: a reply after its connection expired, and a SYN-ACK after the SYN timed out", () => {
  const h = harness({
    "net.netfilter.nf_conntrack_udp_timeout": 30,
    "net.netfilter.nf_conntrack_tcp_timeout_syn_sent": 120,
  });
  h.feed(makeUdp({ src: CLIENT, dst: SERVER, sport: 5000, dport: 53, ts: T0 }));
  h.feed(makeUdp({ src: SERVER, dst: CLIENT, sport: 53, dport: 5000, ts: T0 + 32.5 }));
  h.feed(makeTcp({ src: CLIENT, dst: SERVER, sport: 42000, dport: 80, ts: T0 + 40, flags: "S", seq: 100 }));
  h.feed(
    makeTcp({
      src: SERVER,
      dst: CLIENT,
      sport: 80,
      dport: 42000,
      ts: T0 + 163,
      flags: "SA",
      seq: 1,
      ack: 101,
    }),
  );
  assert.equal(h.orphans.length, 2);
  const [late, synAck] = h.orphans;
  assert.equal(late.kind, "reply-after-expiry");
  assert.equal(
    late.reason,
    "reply 2.500 s after connection 1 ended (timeout in UNREPLIED); conntrack took it for a new connection 2",
  );
  assert.equal(late.secondsAfterEnd, 2.5);
  assert.equal(late.endedConnectionId, 1);
  assert.equal(late.createdConnectionId, 2);
  assert.equal(synAck.kind, "after-end");
  assert.equal(
    synAck.reason,
    "SYN-ACK with no connection: 3.000 s after connection 3 ended (timeout in SYN_SENT)",
  );
  assert.equal(synAck.nearestConnectionId, 3);
  // The flows say the same from their side.
  assert.deepEqual(
    h.flows.map((f) => [f.id, f.endReason, f.endDetail]),
    [
      [1, "timeout", "timeout in UNREPLIED"],
      [2, "timeout", "timeout in UNREPLIED"],
      [3, "timeout", "timeout in SYN_SENT"],
    ],
  );
});

test("orphans: memory of ended connections stays bounded", () => {
  const h = harness({ "net.netfilter.nf_conntrack_udp_timeout": 1 }, 3);
  for (let i = 0; i < 50; i++)
    h.feed(makeUdp({ src: `10.0.${i}.1`, dst: SERVER, sport: 5000 + i, dport: 53, ts: T0 + i * 2 }));
  h.engine.drain();
  const remembered = h.orphanTracker.remembered;
  assert.ok(remembered.tuples <= 6, `tuples ${remembered.tuples}`);
  assert.equal(remembered.endedPairs, 3);
  assert.equal(remembered.livePairs, 0);
  // The oldest is forgotten: its late reply is no longer explained, the latest still is.
  h.feed(makeUdp({ src: SERVER, dst: "10.0.0.1", sport: 53, dport: 5000, ts: T0 + 200 }));
  h.feed(makeUdp({ src: SERVER, dst: "10.0.49.1", sport: 53, dport: 5049, ts: T0 + 201 }));
  assert.deepEqual(
    h.orphans.map((o) => [o.dst, o.kind]),
    [["10.0.49.1", "reply-after-expiry"]],
  );
});

test("CSV cells that a spreadsheet would run as a formula get a leading apostrophe", () => {
  const record: OrphanRecord = {
    input: '=HYPERLINK("http://x")',
    packet: 1,
    time: "t",
    protocol: "tcp",
    protocolNumber: 6,
    src: "@evil",
    dst: "+1",
    sport: -1,
    dport: 2,
    icmpType: null,
    icmpCode: null,
    tcpFlags: "-S",
    kind: "invalid",
    reason: "plain, with comma",
    engineReason: null,
    endedConnectionId: null,
    secondsAfterEnd: null,
    nearestConnectionId: null,
    nearestConnection: null,
    createdConnectionId: null,
  };
  assert.equal(
    orphanCsvRow(record),
    `"'=HYPERLINK(""http://x"")",1,t,tcp,6,'@evil,'+1,-1,2,,,'-S,invalid,"plain, with comma",,,,,,\n`,
  );
  assert.equal(tcpFlagsText(0x12), "S.");
  assert.equal(tcpFlagsText(0x14), "R.");
  assert.equal(tcpFlagsText(0), "none");
});
