import { test } from "node:test";
import assert from "node:assert/strict";
import { ConntrackEngine, Verdict } from "../../lib/conntrack/engine.js";
import { expectEventRecord } from "../../lib/report/event-formats.js";
import { helperEngine, tftpRequest, udpPacket } from "./helper-fixtures.js";

const EXPECT =
  "proto=17 src=203.0.113.47 dst=10.1.2.3 sport=0 dport=55248 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 master-src=10.1.2.3 master-dst=203.0.113.47 sport=55248 dport=69 class=0 helper=tftp";

test("tftp: the read request's expectation NEW precedes the master's NEW; the answer from a new port uses it", () => {
  const { engine, log } = helperEngine();
  assert.equal(engine.process(tftpRequest("10.1.2.3", "203.0.113.47", 55248, 1, 10)), Verdict.New);
  const answer = udpPacket(
    "203.0.113.47",
    "10.1.2.3",
    51353,
    55248,
    Buffer.from([0, 3, 0, 1, 0x41]),
    10.0004,
  );
  assert.equal(engine.process(answer), Verdict.Related);
  const ack = udpPacket("10.1.2.3", "203.0.113.47", 55248, 51353, Buffer.from([0, 4, 0, 1]), 10.0005);
  assert.equal(engine.process(ack), Verdict.Established);
  assert.deepEqual(log, [
    `exp:     [NEW] 300 ${EXPECT} <>`,
    "ct:     [NEW] udp      17 30 src=10.1.2.3 dst=203.0.113.47 sport=55248 dport=69 [UNREPLIED] src=203.0.113.47 dst=10.1.2.3 sport=69 dport=55248 helper=tftp",
    `exp: [DESTROY] 300 ${EXPECT} <used>`,
    "ct:     [NEW] udp      17 30 src=203.0.113.47 dst=10.1.2.3 sport=51353 dport=55248 [UNREPLIED] src=10.1.2.3 dst=203.0.113.47 sport=55248 dport=51353",
    "ct:  [UPDATE] udp      17 30 src=203.0.113.47 dst=10.1.2.3 sport=51353 dport=55248 src=10.1.2.3 dst=203.0.113.47 sport=55248 dport=51353",
  ]);
  const related = [...engine.entries()].find((c) => c.original.srcPort === 51353)!;
  assert.equal(related.masterId, 1);
  assert.equal(related.expected, true);
  assert.equal(related.helper, null);
});

test("tftp: write requests expect too, a retransmitted request replaces, other opcodes and short payloads do not", () => {
  const { engine, log } = helperEngine();
  engine.process(tftpRequest("10.1.2.3", "203.0.113.47", 55248, 2, 10));
  engine.process(tftpRequest("10.1.2.3", "203.0.113.47", 55248, 2, 11));
  assert.deepEqual(log.slice(2), [
    `exp: [DESTROY] 299 ${EXPECT} <replaced>`,
    `exp:     [NEW] 300 ${EXPECT} <>`,
  ]);
  assert.equal(engine.stats.helpers.commands, 2);
  const other = helperEngine();
  other.engine.process(tftpRequest("10.1.2.3", "203.0.113.47", 55249, 3, 10));
  other.engine.process(udpPacket("10.1.2.3", "203.0.113.47", 55250, 69, Buffer.from([0]), 10));
  other.engine.process(udpPacket("10.1.2.3", "203.0.113.47", 55251, 69, Buffer.alloc(0), 10));
  assert.equal(other.engine.liveExpectations, 0);
  assert.equal(other.log.length, 3);
  assert.ok(other.log.every((line) => line.endsWith("helper=tftp")));
});

test("tftp: an unused expectation dies with its master (udp timeout, 30 s)", () => {
  const { engine, log } = helperEngine();
  engine.process(tftpRequest("10.1.2.3", "203.0.113.47", 55248, 1, 10));
  log.length = 0;
  engine.advanceTo(41, 0);
  assert.deepEqual(log, [
    "ct: [DESTROY] udp      17 src=10.1.2.3 dst=203.0.113.47 sport=55248 dport=69 [UNREPLIED] src=203.0.113.47 dst=10.1.2.3 sport=69 dport=55248",
    `exp: [DESTROY] 270 ${EXPECT} <master-destroyed>`,
  ]);
});

test("tftp: port 69 over IPv6 and extra helper ports", () => {
  const { engine, log } = helperEngine({ helperPorts: { tftp: [69, 1069] } });
  engine.process(tftpRequest("2001:db8:1::3", "2001:db8:2::47", 40000, 1, 10, 1069));
  assert.equal(
    log[0],
    "exp:     [NEW] 300 proto=17 src=2001:db8:2::47 dst=2001:db8:1::3 sport=0 dport=40000 mask-src=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-dst=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff sport=0 dport=65535 master-src=2001:db8:1::3 master-dst=2001:db8:2::47 sport=40000 dport=1069 class=0 helper=tftp <>",
  );
});

test("tftp: the expectation announced before its master's NEW names the id the master gets", () => {
  const order: string[] = [];
  const engine = new ConntrackEngine({
    onEvent: (event) => order.push(`ct ${event.type} ${event.connection.id}`),
    onExpectEvent: (event) => {
      const record = expectEventRecord(event);
      order.push(`exp ${record.type} ${record.tuple.dport} master ${record.masterId}`);
    },
  });
  // Connections before it, so that the master's id is not just the first one.
  engine.process(udpPacket("10.1.2.3", "203.0.113.47", 40000, 9000, Buffer.from("x"), 10));
  engine.process(udpPacket("10.1.2.3", "203.0.113.47", 40001, 9000, Buffer.from("x"), 10.1));
  engine.process(tftpRequest("10.1.2.3", "203.0.113.47", 55248, 1, 10.2));
  engine.process(tftpRequest("10.1.2.3", "203.0.113.47", 55248, 1, 10.3));
  engine.process(udpPacket("203.0.113.47", "10.1.2.3", 51353, 55248, Buffer.from([0, 3, 0, 1]), 10.4));
  assert.deepEqual(order, [
    "ct NEW 1",
    "ct NEW 2",
    "exp NEW 55248 master 3",
    "ct NEW 3",
    "exp DESTROY 55248 master 3",
    "exp NEW 55248 master 3",
    "exp DESTROY 55248 master 3",
    "ct NEW 4",
  ]);
});
