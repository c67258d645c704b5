import { test } from "node:test";
import assert from "node:assert/strict";
import { Verdict } from "../../lib/conntrack/engine.js";
import { parseIpv6 } from "../../lib/conntrack/helpers/ftp.js";
import { helperEngine, TcpConversation } from "./helper-fixtures.js";

const CLIENT = "10.1.2.3";
const SERVER = "203.0.113.47";
const MASTER = "master-src=10.1.2.3 master-dst=203.0.113.47 sport=40000 dport=21 class=0 helper=ftp";
const MASK = "mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535";

function activeExpect(type: "NEW" | "DESTROY", timeout: number, port: number, cause: string): string {
  const header = type === "NEW" ? "    [NEW]" : "[DESTROY]";
  return `exp: ${header} ${timeout} proto=6 src=${SERVER} dst=${CLIENT} sport=0 dport=${port} ${MASK} ${MASTER} <${cause}>`;
}

function session(options: Parameters<typeof helperEngine>[0] = {}) {
  const { engine, log } = helperEngine(options);
  const control = new TcpConversation(engine, CLIENT, SERVER, 40000, 21);
  control.handshake();
  control.login();
  return { engine, log, control };
}

test("ftp: helper=ftp on the control connection's NEW and UPDATE lines, not on DESTROY", () => {
  const { engine, log } = session();
  engine.drain();
  assert.deepEqual(log, [
    "ct:     [NEW] tcp      6 120 SYN_SENT src=10.1.2.3 dst=203.0.113.47 sport=40000 dport=21 [UNREPLIED] src=203.0.113.47 dst=10.1.2.3 sport=21 dport=40000 helper=ftp",
    "ct:  [UPDATE] tcp      6 60 SYN_RECV src=10.1.2.3 dst=203.0.113.47 sport=40000 dport=21 src=203.0.113.47 dst=10.1.2.3 sport=21 dport=40000 helper=ftp",
    "ct:  [UPDATE] tcp      6 432000 ESTABLISHED src=10.1.2.3 dst=203.0.113.47 sport=40000 dport=21 src=203.0.113.47 dst=10.1.2.3 sport=21 dport=40000 [ASSURED] helper=ftp",
    "ct: [DESTROY] tcp      6 ESTABLISHED src=10.1.2.3 dst=203.0.113.47 sport=40000 dport=21 src=203.0.113.47 dst=10.1.2.3 sport=21 dport=40000 [ASSURED]",
  ]);
  // Banner and USER were each direction's first data segment: not parsed.
  assert.equal(engine.stats.helpers.outOfSequence, 2);
});

test("ftp: PORT expects the server's data connection, which becomes RELATED to the control connection", () => {
  const { engine, log, control } = session();
  log.length = 0;
  assert.equal(control.fromClient("PORT 10,1,2,3,156,65\r\n"), Verdict.Established);
  assert.deepEqual(log, [activeExpect("NEW", 300, 40001, "")]);
  assert.equal(engine.liveExpectations, 1);
  const [expectation] = engine.expectations();
  assert.equal(expectation.master.id, 1);

  const data = new TcpConversation(engine, SERVER, CLIENT, 20, 40001, control.time + 0.01);
  const verdicts = data.handshake();
  assert.deepEqual(verdicts, [Verdict.Related, Verdict.Established, Verdict.Established]);
  assert.deepEqual(log.slice(1, 3), [
    activeExpect("DESTROY", 299, 40001, "used"),
    "ct:     [NEW] tcp      6 120 SYN_SENT src=203.0.113.47 dst=10.1.2.3 sport=20 dport=40001 [UNREPLIED] src=10.1.2.3 dst=203.0.113.47 sport=40001 dport=20",
  ]);
  assert.equal(engine.liveExpectations, 0);
  const connections = [...engine.entries()].sort((a, b) => a.id - b.id);
  assert.deepEqual(
    connections.map((c) => [c.id, c.masterId, c.expected, c.helper]),
    [
      [1, 0, false, "ftp"],
      [2, 1, true, null],
    ],
  );
  assert.deepEqual(engine.stats.expectations, {
    created: 1,
    used: 1,
    expired: 0,
    evicted: 0,
    replaced: 0,
    masterDestroyed: 0,
    refused: 0,
    maxLive: 1,
  });
});

test("ftp: 227 and 229 replies expect the client's data connection to the server", () => {
  const { engine, log, control } = session();
  log.length = 0;
  control.fromClient("PASV\r\n");
  control.fromServer("227 Entering Passive Mode (203,0,113,47,234,96).\r\n");
  control.fromClient("EPSV\r\n");
  control.fromServer("229 Entering Extended Passive Mode (|||50000|)\r\n");
  const passive = (port: number, type: string, cause: string) =>
    `exp: ${type} 300 proto=6 src=${CLIENT} dst=${SERVER} sport=0 dport=${port} ${MASK} ${MASTER} <${cause}>`;
  // max_expected is 1: the EPSV expectation evicts the PASV one.
  assert.deepEqual(log, [
    passive(60000, "    [NEW]", ""),
    passive(60000, "[DESTROY]", "evicted"),
    passive(50000, "    [NEW]", ""),
  ]);
  assert.equal(engine.stats.helpers.commands, 2);
  assert.equal(engine.stats.expectations.evicted, 1);
});

test("ftp: 227 without parentheses (RFC 1123) and in lower case", () => {
  const { engine, control } = session();
  control.fromServer("227 entering passive mode 203,0,113,47,4,1\r\n");
  assert.equal(engine.expectations()[0].tuple.dstPort, 1025);
});

test("ftp: the first client segment is never parsed, a retransmitted PORT replaces its expectation", () => {
  const { engine, log } = helperEngine();
  const control = new TcpConversation(engine, CLIENT, SERVER, 40000, 21);
  control.handshake();
  control.fromClient("PORT 10,1,2,3,156,65\r\n");
  assert.equal(engine.liveExpectations, 0);
  assert.equal(engine.stats.helpers.outOfSequence, 1);
  const seq = control.clientSeq;
  control.fromClient("PORT 10,1,2,3,156,66\r\n");
  assert.equal(engine.liveExpectations, 1);
  log.length = 0;
  control.fromClient("PORT 10,1,2,3,156,66\r\n", seq);
  assert.deepEqual(log, [
    activeExpect("DESTROY", 300, 40002, "replaced"),
    activeExpect("NEW", 300, 40002, ""),
  ]);
  assert.equal(engine.stats.expectations.replaced, 1);
});

test("ftp: a command split across segments is dropped, its retransmission in one piece is parsed", () => {
  const { engine, control } = session();
  const seq = control.clientSeq;
  assert.equal(control.fromClient("PO", seq), Verdict.Dropped);
  assert.equal(engine.reason, "helper: command split across segments (dropped)");
  assert.equal(control.fromClient("POR", seq), Verdict.Dropped);
  assert.equal(
    control.fromClient("PORT 10,1,2,3,156,65", seq),
    Verdict.Dropped,
    "no CR: the numbers never end",
  );
  assert.equal(engine.stats.helpers.partialDrops, 2);
  assert.equal(engine.stats.helpers.malformedDrops, 1);
  assert.equal(engine.liveExpectations, 0);
  assert.equal(control.fromClient("PORT 10,1,2,3,156,65\r\n"), Verdict.Established);
  assert.equal(engine.liveExpectations, 1);
  assert.equal(engine.stats.verdicts[Verdict.Dropped], 3);
});

test("ftp: an announced address other than the announcer's gives no expectation unless loose", () => {
  const strict = session();
  strict.control.fromClient("PORT 10,9,9,9,156,65\r\n");
  assert.equal(strict.engine.liveExpectations, 0);
  assert.equal(strict.engine.stats.helpers.addressMismatch, 1);
  // The segment ended a line: the next command is still parsed.
  strict.control.fromClient("PORT 10,1,2,3,156,65\r\n");
  assert.equal(strict.engine.liveExpectations, 1);

  const loose = session({ ftpLoose: true });
  loose.log.length = 0;
  loose.control.fromClient("PORT 10,9,9,9,156,65\r\n");
  assert.deepEqual(loose.log, [
    `exp:     [NEW] 300 proto=6 src=${SERVER} dst=10.9.9.9 sport=0 dport=40001 ${MASK} ${MASTER} <>`,
  ]);
});

test("ftp: EPRT and EPSV over IPv6", () => {
  const { engine, log } = helperEngine();
  const control = new TcpConversation(engine, "2001:db8:1::3", "2001:db8:2::47", 40000, 21);
  control.handshake();
  control.login();
  log.length = 0;
  control.fromClient("EPRT |2|2001:db8:1::3|40001|\r\n");
  control.fromClient("EPRT |1|10.1.2.3|40002|\r\n");
  assert.equal(engine.stats.helpers.malformedDrops, 1, "an IPv4 EPRT on an IPv6 connection is dropped");
  const v6Mask =
    "mask-src=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-dst=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff sport=0 dport=65535";
  assert.deepEqual(log, [
    `exp:     [NEW] 300 proto=6 src=2001:db8:2::47 dst=2001:db8:1::3 sport=0 dport=40001 ${v6Mask} master-src=2001:db8:1::3 master-dst=2001:db8:2::47 sport=40000 dport=21 class=0 helper=ftp <>`,
  ]);
  control.fromServer("229 Extended Passive (!!!40003!)\r\n");
  assert.equal(engine.expectations()[0].tuple.dstPort, 40003);
});

test("ftp: EPRT with an IPv4 address on an IPv4 connection", () => {
  const { engine, control } = session();
  control.fromClient("eprt |1|10.1.2.3|40005|\r\n");
  assert.equal(engine.expectations()[0].tuple.dstPort, 40005);
});

test("ftp: malformed commands are dropped and counted", () => {
  const { engine, control } = session();
  const drops: [string, number][] = [
    ["PORT 1,2,3\r\n", Verdict.Dropped],
    ["PORT 10,1,2,3,156,65\n", Verdict.Dropped],
    ["PORT\r\n", Verdict.Dropped],
    ["EPRT |2|::1|\r\n", Verdict.Dropped],
    ["EPRT 1|10.1.2.3|5|\r\n", Verdict.Dropped],
    ["EPRT |1|10.1.2.3|0|\r\n", Verdict.Dropped],
  ];
  for (const [command, verdict] of drops) {
    const seq = control.clientSeq;
    assert.equal(control.fromClient(command, seq), verdict, JSON.stringify(command));
  }
  assert.equal(engine.stats.helpers.malformedDrops, 5);
  assert.equal(engine.stats.helpers.partialDrops, 1, "PORT without a space: the argument never starts");
  assert.equal(engine.liveExpectations, 0);
  control.fromServer("229 no parenthesis here\r\n", control.serverSeq, false);
  assert.equal(engine.stats.helpers.partialDrops, 2);
});

test("ftp hostile: huge numbers wrap like the kernel's u32 arithmetic", () => {
  const { engine, control } = session({ ftpLoose: true });
  // 4294967306 wraps to 10; the address parts overlap as the kernel's shifts do.
  control.fromClient("PORT 4294967306,1,2,3,65536,65\r\n");
  const [expectation] = engine.expectations();
  assert.equal(expectation.tuple.dst0, 0x0a010203);
  assert.equal(expectation.tuple.dstPort, 65);
  assert.equal(engine.stats.helpers.addressMismatch, 0);
});

test("ftp hostile: thousands of commas, a 60000-digit number, truncated EPRT, random bytes: bounded and no crash", () => {
  const { engine, control } = session();
  const hostile = [
    `PORT ${",".repeat(5000)}\r\n`,
    `PORT ${"9".repeat(60000)},1,2,3,4,5\r\n`,
    "EPRT |2|",
    "EPRT |2|2001:db8:1::3",
    `EPRT |2|${"1:".repeat(3000)}|1|\r\n`,
    `227 ${"(".repeat(1000)}\r\n`,
    "PORT 10,1,2,3,156\0,65\r\n",
  ];
  for (const command of hostile) control.fromClient(command, control.clientSeq);
  let random = 12345;
  const next = () => (random = (Math.imul(random, 1103515245) + 12345) >>> 0);
  for (let i = 0; i < 3000; i++) {
    const bytes = Buffer.alloc(1 + (next() % 200));
    for (let j = 0; j < bytes.length; j++) bytes[j] = next() >>> 24;
    if (i % 3 === 0) bytes.write(["PORT ", "EPRT |2|", "227 ", "229 (|||"][i % 4], "latin1");
    if (i % 2 === 0) control.fromClient(bytes, control.clientSeq);
    else control.fromServer(bytes, control.serverSeq);
  }
  const stats = engine.stats.helpers;
  assert.equal(stats.packets, 2 + 1 + hostile.length + 3000);
  assert.ok(stats.malformedDrops + stats.partialDrops >= hostile.length);
  assert.ok(engine.liveExpectations <= 1);
});

test("ftp: an expectation nobody uses expires after 300 s; a dying master takes its expectation along", () => {
  const acknowledged = (options: Parameters<typeof helperEngine>[0] = {}) => {
    const run = session(options);
    run.control.fromClient("PORT 10,1,2,3,156,65\r\n");
    // Everything acknowledged: the control connection is on its established timeout again.
    run.control.fromServer("200 PORT command successful\r\n");
    run.control.fromClient("");
    run.log.length = 0;
    return run;
  };
  const first = acknowledged();
  first.engine.advanceTo(Math.floor(first.control.time) + 301, 0);
  assert.deepEqual(first.log, [activeExpect("DESTROY", 0, 40001, "expired")]);

  const second = acknowledged();
  second.engine.drain();
  assert.equal(second.log.length, 2);
  assert.equal(second.log[0], activeExpect("DESTROY", 0, 40001, "drain"));
  assert.match(second.log[1], /^ct: \[DESTROY\] tcp {6}6 ESTABLISHED src=10\.1\.2\.3 /);

  const third = acknowledged({ settings: { tcpTimeoutEstablished: 30 } });
  third.engine.drain();
  assert.equal(third.log.length, 2);
  assert.match(third.log[0], /^ct: \[DESTROY\] /);
  assert.equal(third.log[1], activeExpect("DESTROY", 270, 40001, "master-destroyed"));
  assert.equal(third.engine.stats.expectations.masterDestroyed, 1);
});

test("ftp: an expectation from another master that overlaps is refused and the packet dropped", () => {
  const { engine, log } = helperEngine();
  const first = new TcpConversation(engine, CLIENT, SERVER, 40000, 21);
  first.handshake();
  first.login();
  const second = new TcpConversation(engine, CLIENT, SERVER, 40010, 21, first.time);
  second.handshake();
  second.login();
  first.fromServer("227 ok (203,0,113,47,234,96)\r\n");
  log.length = 0;
  assert.equal(second.fromServer("227 ok (203,0,113,47,234,96)\r\n"), Verdict.Dropped);
  assert.equal(engine.reason, "helper: expectation refused (dropped)");
  assert.deepEqual(log, []);
  assert.equal(engine.stats.expectations.refused, 1);
  assert.equal(engine.stats.helpers.refusedDrops, 1);
});

test("ftp: the expectation table cap refuses registrations beyond nf_conntrack_expect_max", () => {
  const { engine } = helperEngine({ settings: { "net.netfilter.nf_conntrack_expect_max": 2 } });
  const verdicts = [];
  for (let i = 0; i < 3; i++) {
    const control = new TcpConversation(engine, CLIENT, SERVER, 40000 + i, 21, 100 + i);
    control.handshake();
    control.login();
    verdicts.push(control.fromServer(`227 ok (203,0,113,47,200,${i})\r\n`));
  }
  assert.deepEqual(verdicts, [Verdict.Established, Verdict.Established, Verdict.Dropped]);
  assert.equal(engine.liveExpectations, 2);
});

test("ftp: helper ports replace the defaults; helpers can be turned off", () => {
  const custom = helperEngine({ helperPorts: { ftp: [2121] } });
  new TcpConversation(custom.engine, CLIENT, SERVER, 40000, 21).handshake();
  new TcpConversation(custom.engine, CLIENT, SERVER, 40001, 2121).handshake();
  const helpers = [...custom.engine.entries()].sort((a, b) => a.id - b.id).map((c) => c.helper);
  assert.deepEqual(helpers, [null, "ftp"]);

  const off = session({ helpers: false });
  off.control.fromClient("PORT 10,1,2,3,156,65\r\n");
  assert.equal(off.engine.liveExpectations, 0);
  assert.equal([...off.engine.entries()][0].helper, null);
  assert.throws(() => helperEngine({ helperPorts: { ftp: [70000] } }), /bad port 70000/);
});

test("ftp: parseIpv6 follows in6_pton (groups, ::, dotted tail, the delimiter)", () => {
  const out = new Uint8Array(16);
  const work = new Uint8Array(16);
  const parse = (text: string) => {
    const bytes = Buffer.from(text, "latin1");
    const consumed = parseIpv6(bytes, 0, bytes.length, 0x7c, out, work);
    return consumed === 0 ? null : [consumed, Buffer.from(out).toString("hex")];
  };
  assert.deepEqual(parse("2001:db8::3|"), [11, "20010db8000000000000000000000003"]);
  assert.deepEqual(parse("::|"), [2, "00000000000000000000000000000000"]);
  assert.deepEqual(parse("::ffff:10.1.2.3|"), [15, "00000000000000000000ffff0a010203"]);
  assert.deepEqual(parse("1:2:3:4:5:6:7:8|"), [15, "00010002000300040005000600070008"]);
  assert.equal(parse("1:2:3:4:5:6:7|"), null);
  assert.equal(parse("1::2::3|"), null);
  assert.equal(parse("12345::1|"), null);
  assert.equal(parse("::1.2.3.256|"), null);
  assert.equal(parse("g::1|"), null);
});
