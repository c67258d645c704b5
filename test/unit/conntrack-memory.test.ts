import { test } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Connection, OwnRow, TcpState, Tuple } from "../../lib/conntrack/connection.js";
import { ConntrackEngine } from "../../lib/conntrack/engine.js";
import { makeTcp, makeUdp } from "./conntrack-fixtures.js";
import { ConnectionTable, ExpiryHeap } from "../../lib/conntrack/table.js";
import type { ConnectionStore } from "../../lib/conntrack/store.js";

function v6Tuple(src: number[], dst: number[], srcPort: number, dstPort: number): Tuple {
  const tuple = new Tuple();
  tuple.setAddresses(6, 0, 0, Uint8Array.from(src), Uint8Array.from(dst));
  tuple.protocol = 6;
  tuple.srcPort = srcPort;
  tuple.dstPort = dstPort;
  return tuple;
}

test("plain connections carry no side object: writing null to a rare field makes none", () => {
  const connection = new Connection();
  connection.helper = null;
  connection.seqAdjust = null;
  connection.natAlias = null;
  assert.equal(connection.extras, null);
  connection.helper = "ftp";
  assert.notEqual(connection.extras, null);
  assert.equal(connection.helper, "ftp");
  assert.equal(connection.master, null);
});

test("the table tells IPv6 tuples apart by words 1 to 3 and finds them from either side", () => {
  const table = new ConnectionTable();
  const heap = new ExpiryHeap();
  const connections: Connection[] = [];
  // More than the initial slots: the by-slot arrays grow (by half) while entries are in them.
  for (let i = 0; i < 2000; i++) {
    const connection = new Connection();
    connection.id = i + 1;
    const src = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i >> 8, i & 0xff];
    const dst = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, i & 1, 0, 0, 0, 0, 0, 0, 1];
    connection.original.copyFrom(v6Tuple(src, dst, 40000, 443));
    connection.reply.copyFrom(v6Tuple(dst, src, 443, 40000));
    connection.expiresAt = 1000 + i;
    table.insert(connection);
    heap.push(connection);
    connections.push(connection);
  }
  for (const connection of connections) {
    const original = table.findNode(connection.original, connection.original.hash());
    const reply = table.findNode(connection.reply, connection.reply.hash());
    assert.equal(table.connectionOf(original), connection);
    assert.equal(table.connectionOf(reply), connection);
    assert.equal(reply, original + 1);
    assert.equal(connection.expiresAt, 1000 + connection.id - 1);
  }
  const other = new Tuple();
  other.copyFrom(connections[2].original);
  other.dstWord2 = 0x01000000;
  assert.equal(table.findNode(other, other.hash()), -1);
  assert.equal(heap.popExpired(1000), connections[0]);
});

test("a destroyed connection keeps its tuples, counters and state after its row goes to another", () => {
  const engine = new ConntrackEngine({ settings: { "net.netfilter.nf_conntrack_udp_timeout": 1 } });
  const first = makeTcp({
    src: "10.0.0.1",
    dst: "10.0.0.2",
    sport: 1000,
    dport: 80,
    flags: "S",
    seq: 7,
    ts: 1,
  });
  engine.process(first);
  const victim = engine.lastConnection!;
  engine.process(
    makeTcp({ src: "10.0.0.2", dst: "10.0.0.1", sport: 80, dport: 1000, flags: "R", seq: 0, ts: 1 }),
  );
  assert.equal(victim.dead, true);
  // Many new connections: one of them takes the victim's slot (and row).
  for (let i = 0; i < 50; i++)
    engine.process(makeUdp({ src: "10.9.0.1", dst: "10.9.0.2", sport: 2000 + i, dport: 53, len: 99, ts: 2 }));
  assert.equal(victim.dead, true);
  assert.equal(victim.original.srcPort, 1000);
  assert.equal(victim.reply.srcPort, 80);
  assert.equal(victim.protocol, 6);
  assert.equal(victim.tcpState, TcpState.Close);
  assert.equal(victim.originalPackets, 1);
  assert.equal(victim.replyPackets, 1);
  assert.equal(engine.liveConnections, 50);
  for (const live of engine.entries()) {
    assert.equal(live.protocol, 17);
    assert.equal(live.originalPackets, 1);
    assert.equal(live.originalBytes, 20 + 8 + 99);
    assert.equal(live.tcpState, -1);
  }
});

test("a live connection is a handle of a few fields: its data lives in the engine's typed arrays", () => {
  const engine = new ConntrackEngine();
  engine.process(makeUdp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2, ts: 1 }));
  const connection = engine.lastConnection!;
  assert.ok(!(connection.rows instanceof OwnRow), "a live connection's data is in the engine's store");
  assert.equal(connection.extras, null);
  // Every own property is a small integer or null: no tuple, TCP or time object per connection.
  for (const [name, value] of Object.entries(connection)) {
    if (name === "rows") continue;
    assert.ok(value === null || Number.isInteger(value), `${name}: ${typeof value}`);
  }
  const heapUsed = measureHeap();
  const before = heapUsed();
  const count = 40_000;
  for (let i = 0; i < count; i++) {
    const src = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    engine.process(makeUdp({ src, dst: "10.255.0.1", sport: 1024 + (i % 60000), dport: 53, ts: 2 }));
  }
  const perConnection = (heapUsed() - before) / count;
  // About 65 bytes today (the 56-byte object and the table's pointer to it by slot); the tuples and
  // TCP objects this replaced were 500.
  assert.ok(perConnection < 110, `${perConnection.toFixed(0)} bytes of heap per live connection`);
});

/** Heap in use after a full collection (gc exposed for this process). */
function measureHeap(): () => number {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  return () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
}

test("TCP tracker rows and ids: kept until the slot is taken again, then moved out; rows reused", () => {
  const states: number[] = [];
  const engine = new ConntrackEngine({
    onEvent: (event) => {
      if (event.type === "DESTROY" && event.connection.protocol === 6) states.push(event.state);
    },
  });
  const store = (engine as unknown as { store: ConnectionStore }).store;
  const udp = (i: number, ts: number) =>
    makeUdp({ src: `10.0.${i >> 8}.${i & 255}`, dst: "192.0.2.1", sport: 5000, dport: 53, ts });
  const syn = (i: number, ts: number) =>
    makeTcp({ src: `10.1.${i >> 8}.${i & 255}`, dst: "192.0.2.1", sport: 40000, dport: 80, flags: "S", ts });
  for (let i = 0; i < 300; i++) engine.process(udp(i, 1));
  assert.equal(store.tcpRows, 0, "UDP carries no TCP row");
  const synSent: Connection[] = [];
  for (let i = 0; i < 200; i++) {
    engine.process(syn(i, 2));
    synSent.push(engine.lastConnection!);
  }
  assert.equal(store.tcpRows, 200);
  assert.ok(synSent.every((connection) => connection.tcpState === TcpState.SynSent));
  // Everything expires (SYN_SENT after 120 s, UDP after 30 s): the retired TCP connections keep their
  // rows (nobody took their slots yet) and say their state at DESTROY and after.
  engine.advanceTo(1000, 0);
  assert.equal(engine.liveConnections, 0);
  assert.equal(states.length, 200);
  assert.ok(states.every((state) => state === TcpState.SynSent));
  assert.equal(store.tcpRows, 200);
  // New UDP connections take the slots: the TCP rows go back to the pool, the old connections copy
  // their state out first.
  const ids = synSent.map((connection) => connection.id);
  assert.deepEqual(
    ids,
    Array.from({ length: 200 }, (_, i) => 301 + i),
  );
  for (let i = 0; i < 600; i++) engine.process(udp(i, 1001));
  assert.equal(store.tcpRows, 0);
  assert.ok(synSent.every((connection) => connection.tcpState === TcpState.SynSent));
  // Their ids (kept in the table's keys while they held a slot) moved out with them.
  assert.deepEqual(
    synSent.map((connection) => connection.id),
    ids,
  );
  // Ids up to 2^53 (the --jobs workers' provisional ones are 2^40 and more) fit the keys.
  const live = engine.lastConnection!;
  for (const id of [2 ** 32 - 1, 2 ** 32, 2 ** 40 + 12345, Number.MAX_SAFE_INTEGER]) {
    live.id = id;
    assert.equal(live.id, id);
  }
  // New TCP connections reuse the freed rows, started afresh.
  for (let i = 0; i < 150; i++) engine.process(syn(i + 1000, 1002));
  assert.equal(store.tcpRows, 150);
  assert.equal(engine.lastConnection!.tcpState, TcpState.SynSent);
});
