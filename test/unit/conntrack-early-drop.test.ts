import { test } from "node:test";
import assert from "node:assert/strict";
import { ConntrackEngine, Reason, Verdict, type EngineOptions } from "../../lib/conntrack/engine.js";
import { makeTcp, makeUdp } from "./conntrack-fixtures.js";

const CLIENT = "192.0.2.10";
const SERVER = "198.51.100.20";

interface SeenEvent {
  type: string;
  sport: number;
  protocol: number;
  cause: string;
  at: number;
}

function engineWith(settings: Record<string, number>, extra: EngineOptions = {}) {
  const events: SeenEvent[] = [];
  const engine = new ConntrackEngine({
    ...extra,
    settings,
    onEvent: (event) =>
      events.push({
        type: event.type,
        sport: event.connection.original.srcPort,
        protocol: event.connection.original.protocol,
        cause: event.destroyCause,
        at: event.tsSec + event.tsNsec / 1e9,
      }),
  });
  return { engine, events };
}

/** A TCP handshake from CLIENT:sport, ASSURED after its third packet. */
function assuredTcp(engine: ConntrackEngine, sport: number, t: number): void {
  engine.process(makeTcp({ src: CLIENT, dst: SERVER, sport, dport: 80, flags: "S", seq: 100, ts: t }));
  engine.process(
    makeTcp({
      src: SERVER,
      dst: CLIENT,
      sport: 80,
      dport: sport,
      flags: "SA",
      seq: 900,
      ack: 101,
      ts: t + 0.01,
    }),
  );
  engine.process(
    makeTcp({ src: CLIENT, dst: SERVER, sport, dport: 80, flags: "A", seq: 101, ack: 901, ts: t + 0.02 }),
  );
}

function udp(sport: number, t: number) {
  return makeUdp({ src: CLIENT, dst: SERVER, sport, dport: 53, ts: t });
}

test("a full table evicts the unassured entries of the new tuple's bucket (DESTROY) before the NEW", () => {
  // One kernel bucket: early_drop's window covers the whole table.
  const { engine, events } = engineWith({ conntrackMax: 3, buckets: 1 });
  engine.process(udp(1001, 10));
  engine.process(udp(1002, 11));
  assuredTcp(engine, 40000, 12);
  assert.equal(engine.liveConnections, 3);
  events.length = 0;

  assert.equal(engine.process(udp(1003, 20)), Verdict.New);
  assert.deepEqual(
    events
      .slice(0, 2)
      .map((e) => `${e.type} ${e.sport} ${e.cause}`)
      .sort(),
    ["DESTROY 1001 early-drop", "DESTROY 1002 early-drop"],
  );
  assert.deepEqual(
    events.slice(2).map((e) => `${e.type} ${e.sport}`),
    ["NEW 1003"],
  );
  assert.equal(events[0].at, 20);
  assert.equal(engine.liveConnections, 2);
  assert.equal(engine.stats.earlyDrops, 2);
  assert.equal(engine.stats.connectionsKilled, 2);
  assert.equal(engine.stats.tableFullDrops, 0);
  assert.deepEqual(
    [...engine.entries()].map((c) => c.original.srcPort).sort((a, b) => a - b),
    [1003, 40000],
  );
});

test("an all-ASSURED full table refuses new connections: the packet is dropped and counted, existing flows go on", () => {
  const { engine, events } = engineWith({ conntrackMax: 2, buckets: 1 });
  assuredTcp(engine, 40001, 10);
  assuredTcp(engine, 40002, 11);
  events.length = 0;

  const syn = makeTcp({ src: CLIENT, dst: SERVER, sport: 40003, dport: 80, flags: "S", seq: 5, ts: 12 });
  assert.equal(engine.process(syn), Verdict.Dropped);
  assert.equal(engine.reason, Reason.tableFull);
  assert.equal(engine.process(udp(999, 12.5)), Verdict.Dropped);
  assert.deepEqual(events, []);
  assert.equal(engine.liveConnections, 2);
  assert.equal(engine.stats.tableFullDrops, 2);
  assert.equal(engine.stats.verdicts[Verdict.Dropped], 2);
  assert.equal(engine.stats.reasons.get(Reason.tableFull), 2);
  assert.equal(engine.stats.earlyDrops, 0);

  // Packets of tracked connections are unaffected.
  const data = makeTcp({
    src: SERVER,
    dst: CLIENT,
    sport: 80,
    dport: 40001,
    flags: "A",
    seq: 901,
    ack: 101,
    ts: 13,
  });
  assert.equal(engine.process(data), Verdict.Established);

  // Once an entry is gone there is room again.
  const rst = makeTcp({ src: CLIENT, dst: SERVER, sport: 40002, dport: 80, flags: "R", seq: 101, ts: 14 });
  engine.process(rst);
  engine.advanceTo(24, 500_000_000); // the RST's 10 s CLOSE timeout
  assert.equal(engine.liveConnections, 1);
  const later = makeTcp({ src: CLIENT, dst: SERVER, sport: 40003, dport: 80, flags: "S", seq: 5, ts: 25 });
  assert.equal(engine.process(later), Verdict.New);
  assert.equal(engine.liveConnections, 2);
});

test("early_drop looks at 8 of nf_conntrack_buckets buckets only: a tiny max in a big hash mostly drops", () => {
  // 2 entries spread over 262144 kernel buckets: the 8-bucket window from the new tuple's bucket
  // almost never holds one (as on the kernel, where a tiny nf_conntrack_max just drops).
  const { engine, events } = engineWith({ conntrackMax: 2 });
  engine.process(udp(2001, 10));
  engine.process(udp(2002, 10.1));
  events.length = 0;
  assert.equal(engine.process(udp(2003, 11)), Verdict.Dropped);
  assert.equal(engine.reason, Reason.tableFull);
  assert.deepEqual(events, []);
  assert.equal(engine.liveConnections, 2);

  // With 8 buckets the window is the whole table: the first non-empty bucket's unassured die.
  const small = engineWith({ conntrackMax: 2, buckets: 8 });
  small.engine.process(udp(2001, 10));
  small.engine.process(udp(2002, 10.1));
  small.events.length = 0;
  assert.equal(small.engine.process(udp(2003, 11)), Verdict.New);
  // Only the entry in the first bucket with one dies (which one depends on the hash).
  assert.deepEqual(
    small.events.map((e) => `${e.type} ${e.sport}`),
    ["DESTROY 2002", "NEW 2003"],
  );
  assert.equal(small.engine.stats.earlyDrops, 1);
  assert.equal(small.engine.liveConnections, 2);
});

test("nf_conntrack_max 0 means no limit; sysctl names set max and buckets", () => {
  const { engine } = engineWith({
    "net.netfilter.nf_conntrack_max": 0,
    "net.netfilter.nf_conntrack_buckets": 16,
  });
  assert.equal(engine.settings.conntrackMax, 0);
  assert.equal(engine.settings.buckets, 16);
  for (let port = 1; port <= 50; port++) engine.process(udp(port, 10 + port / 100));
  assert.equal(engine.liveConnections, 50);
  assert.equal(engine.stats.tableFullDrops, 0);
});

test("GC early-drop mode: after a table-full drop, the next pass evicts unassured entries down to 95 % of max", () => {
  const { engine, events } = engineWith({ conntrackMax: 200 }, { gcEarlyDropDelaySeconds: 5 });
  for (let i = 0; i < 150; i++) assuredTcp(engine, 30000 + i, 10 + i / 1000);
  for (let i = 0; i < 50; i++) engine.process(udp(5000 + i, 11 + i / 1000));
  assert.equal(engine.liveConnections, 200);
  events.length = 0;

  // Nothing unassured in the new tuple's 8 buckets of 262144: dropped, GC pass due at 12 + 5 s.
  assert.equal(engine.process(udp(6000, 12)), Verdict.Dropped);
  assert.equal(engine.stats.tableFullDrops, 1);
  engine.advanceTo(16, 999_999_999);
  assert.equal(events.length, 0);
  engine.advanceTo(17, 0);
  // 200 → 189: it stops once the count is under 190 (200 / 100 * 95).
  assert.equal(engine.stats.gcEarlyDrops, 11);
  assert.equal(engine.liveConnections, 189);
  assert.equal(events.length, 11);
  for (const event of events) {
    assert.equal(event.type, "DESTROY");
    assert.equal(event.cause, "early-drop");
    assert.equal(event.protocol, 17);
    assert.equal(event.at, 17);
  }
  // The pass runs once per drop.
  engine.advanceTo(100, 0);
  assert.equal(engine.stats.gcEarlyDrops, 11);
});

test("without gcEarlyDropDelaySeconds no GC pass runs", () => {
  const { engine } = engineWith({ conntrackMax: 1, buckets: 1 });
  assuredTcp(engine, 30001, 10);
  assert.equal(engine.process(udp(7000, 11)), Verdict.Dropped);
  engine.advanceTo(500, 0);
  assert.equal(engine.stats.gcEarlyDrops, 0);
  assert.equal(engine.liveConnections, 1);
});
