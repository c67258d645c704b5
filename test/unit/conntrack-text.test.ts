import { test } from "node:test";
import assert from "node:assert/strict";
import { Connection, Status, TcpConnectionState, TcpState, Tuple } from "../../lib/conntrack/connection.js";
import { ConntrackEvent } from "../../lib/conntrack/engine.js";
import { formatIpv4, formatIpv6, formatIpv6Full } from "../../lib/conntrack/address.js";
import {
  ConntrackEventTextEncoder,
  MAX_EVENT_LINE_BYTES,
  formatConntrackEvent,
  formatProcLine,
} from "../../lib/report/conntrack-text.js";
import { parseAddress } from "./conntrack-fixtures.js";

function setTuple(
  tuple: Tuple,
  protocol: number,
  src: string,
  dst: string,
  sport: number,
  dport: number,
): void {
  const bytes = new Uint8Array(16);
  tuple.protocol = protocol;
  tuple.family = parseAddress(src, bytes);
  const words = (b: Uint8Array) =>
    [0, 1, 2, 3].map(
      (i) => ((b[4 * i] << 24) | (b[4 * i + 1] << 16) | (b[4 * i + 2] << 8) | b[4 * i + 3]) >>> 0,
    );
  [tuple.src0, tuple.src1, tuple.src2, tuple.src3] = words(bytes);
  parseAddress(dst, bytes);
  [tuple.dst0, tuple.dst1, tuple.dst2, tuple.dst3] = words(bytes);
  if (tuple.family === 4) tuple.src1 = tuple.src2 = tuple.src3 = tuple.dst1 = tuple.dst2 = tuple.dst3 = 0;
  tuple.srcPort = sport;
  tuple.dstPort = dport;
}

/** The seed's NATed FTP data connection (reply tuple rewritten by the router). */
function seedConnection(): Connection {
  const c = new Connection();
  setTuple(c.original, 6, "203.0.113.47", "198.51.100.32", 20, 41603);
  setTuple(c.reply, 6, "10.1.2.3", "203.0.113.47", 41603, 20);
  c.tcp = new TcpConnectionState();
  return c;
}

function event(
  connection: Connection,
  type: ConntrackEvent["type"],
  fields: Partial<ConntrackEvent>,
): ConntrackEvent {
  return Object.assign(new ConntrackEvent(), { connection, type, seenReply: true }, fields);
}

test("event lines match the seed's conntrack -E output byte for byte", () => {
  const c = seedConnection();
  const o = "src=203.0.113.47 dst=198.51.100.32 sport=20 dport=41603";
  const r = "src=10.1.2.3 dst=203.0.113.47 sport=41603 dport=20";
  const lines = [
    formatConntrackEvent(event(c, "NEW", { timeout: 120, state: TcpState.SynSent, seenReply: false }), {
      timestamp: false,
    }),
    formatConntrackEvent(event(c, "UPDATE", { timeout: 60, state: TcpState.SynRecv }), { timestamp: false }),
    formatConntrackEvent(
      event(c, "UPDATE", { timeout: 432000, state: TcpState.Established, assured: true }),
      { timestamp: false },
    ),
    formatConntrackEvent(event(c, "UPDATE", { timeout: 120, state: TcpState.FinWait, assured: true }), {
      timestamp: false,
    }),
    formatConntrackEvent(event(c, "DESTROY", { assured: true }), { timestamp: false }),
  ];
  assert.deepEqual(lines, [
    `    [NEW] tcp      6 120 SYN_SENT ${o} [UNREPLIED] ${r}`,
    ` [UPDATE] tcp      6 60 SYN_RECV ${o} ${r}`,
    ` [UPDATE] tcp      6 432000 ESTABLISHED ${o} ${r} [ASSURED]`,
    ` [UPDATE] tcp      6 120 FIN_WAIT ${o} ${r} [ASSURED]`,
    `[DESTROY] tcp      6 ${o} ${r} [ASSURED]`,
  ]);
});

test("helper, counters, delta-time and the timestamp prefix", () => {
  const c = new Connection();
  setTuple(c.original, 6, "10.1.2.3", "203.0.113.47", 40000, 21);
  setTuple(c.reply, 6, "203.0.113.47", "198.51.100.32", 21, 40000);
  c.tcp = new TcpConnectionState();
  const newLine = formatConntrackEvent(
    event(c, "NEW", {
      timeout: 120,
      state: TcpState.SynSent,
      seenReply: false,
      helper: "ftp",
      tsSec: 1764000000,
      tsNsec: 4567000,
    }),
  );
  assert.equal(
    newLine,
    "[1764000000.004567]\t    [NEW] tcp      6 120 SYN_SENT src=10.1.2.3 dst=203.0.113.47 sport=40000 dport=21 [UNREPLIED] src=203.0.113.47 dst=198.51.100.32 sport=21 dport=40000 helper=ftp",
  );
  const destroy = formatConntrackEvent(
    event(c, "DESTROY", {
      state: TcpState.TimeWait,
      assured: true,
      hasCounters: true,
      originalPackets: 12,
      originalBytes: 800,
      replyPackets: 10,
      replyBytes: 900,
      deltaTime: 5,
    }),
    { timestamp: false },
  );
  assert.equal(
    destroy,
    "[DESTROY] tcp      6 TIME_WAIT src=10.1.2.3 dst=203.0.113.47 sport=40000 dport=21 packets=12 bytes=800 src=203.0.113.47 dst=198.51.100.32 sport=21 dport=40000 packets=10 bytes=900 [ASSURED] delta-time=5",
  );
});

test("proc lines match what the 6.18 kernel printed for udp, icmp and ipv6", () => {
  const udp = new Connection();
  setTuple(udp.original, 17, "10.77.0.1", "10.77.0.2", 40001, 5353);
  setTuple(udp.reply, 17, "10.77.0.2", "10.77.0.1", 5353, 40001);
  udp.status = Status.SeenReply | Status.Assured;
  udp.originalPackets = udp.replyPackets = 3;
  udp.originalBytes = udp.replyBytes = 87;
  udp.startedAt = 0;
  udp.expiresAt = 122e9;
  assert.equal(
    formatProcLine(udp, { now: 2.5e9, accounting: true, timestamps: true }),
    "ipv4     2 udp      17 119 src=10.77.0.1 dst=10.77.0.2 sport=40001 dport=5353 packets=3 bytes=87 src=10.77.0.2 dst=10.77.0.1 sport=5353 dport=40001 packets=3 bytes=87 [ASSURED] mark=0 zone=0 delta-time=2 use=2",
  );
  const icmp = new Connection();
  setTuple(icmp.original, 1, "10.77.0.1", "10.77.0.2", 4660, 8 << 8);
  setTuple(icmp.reply, 1, "10.77.0.2", "10.77.0.1", 4660, 0);
  icmp.status = Status.SeenReply;
  icmp.originalPackets = icmp.replyPackets = 1;
  icmp.originalBytes = icmp.replyBytes = 32;
  icmp.expiresAt = 30e9;
  assert.equal(
    formatProcLine(icmp, { now: 2.5e9, accounting: true, timestamps: true }),
    "ipv4     2 icmp     1 27 src=10.77.0.1 dst=10.77.0.2 type=8 code=0 id=4660 packets=1 bytes=32 src=10.77.0.2 dst=10.77.0.1 type=0 code=0 id=4660 packets=1 bytes=32 mark=0 zone=0 delta-time=2 use=2",
  );
  const v6 = new Connection();
  setTuple(v6.original, 17, "fd77::1", "fd77::2", 40002, 9);
  setTuple(v6.reply, 17, "fd77::2", "fd77::1", 9, 40002);
  v6.originalPackets = 1;
  v6.originalBytes = 49;
  v6.expiresAt = 30e9;
  assert.equal(
    formatProcLine(v6, { now: 0.2e9, accounting: true, timestamps: true }),
    "ipv6     10 udp      17 29 src=fd77:0000:0000:0000:0000:0000:0000:0001 dst=fd77:0000:0000:0000:0000:0000:0000:0002 sport=40002 dport=9 packets=1 bytes=49 [UNREPLIED] src=fd77:0000:0000:0000:0000:0000:0000:0002 dst=fd77:0000:0000:0000:0000:0000:0000:0001 sport=9 dport=40002 packets=0 bytes=0 mark=0 zone=0 delta-time=0 use=2",
  );
  const tcp = seedConnection();
  tcp.tcp!.state = TcpState.Established;
  tcp.status = Status.SeenReply | Status.Assured;
  tcp.expiresAt = 431999.5e9;
  assert.equal(
    formatProcLine(tcp, { now: 0, accounting: false, timestamps: false }),
    "ipv4     2 tcp      6 431999 ESTABLISHED src=203.0.113.47 dst=198.51.100.32 sport=20 dport=41603 src=10.1.2.3 dst=203.0.113.47 sport=41603 dport=20 [ASSURED] mark=0 zone=0 use=2",
  );
});

test("address text: inet_ntoa, glibc inet_ntop compression, kernel %pI6", () => {
  assert.equal(formatIpv4(0xc0000201), "192.0.2.1");
  assert.equal(formatIpv4(0), "0.0.0.0");
  const v6 = (text: string) => {
    const b = new Uint8Array(16);
    parseAddress(text, b);
    const w = [0, 1, 2, 3].map(
      (i) => ((b[4 * i] << 24) | (b[4 * i + 1] << 16) | (b[4 * i + 2] << 8) | b[4 * i + 3]) >>> 0,
    );
    return [formatIpv6(w[0], w[1], w[2], w[3]), formatIpv6Full(w[0], w[1], w[2], w[3])];
  };
  assert.deepEqual(v6("fd77::1"), ["fd77::1", "fd77:0000:0000:0000:0000:0000:0000:0001"]);
  assert.equal(v6("::")[0], "::");
  assert.equal(v6("::1")[0], "::1");
  assert.equal(v6("2001:db8:0:0:1:0:0:1")[0], "2001:db8::1:0:0:1");
  assert.equal(v6("2001:db8:0:1:1:1:1:1")[0], "2001:db8:0:1:1:1:1:1");
  assert.equal(v6("fe80::")[0], "fe80::");
  assert.equal(v6("::ffff:c000:201")[0], "::ffff:192.0.2.1");
  assert.equal(v6("::c000:201")[0], "::192.0.2.1");
  assert.equal(v6("1:0:0:2:0:0:0:3")[0], "1:0:0:2::3");
});

test("the byte encoder writes the lines after what the buffer holds, one newline each", () => {
  const encoder = new ConntrackEventTextEncoder();
  const out = new Uint8Array(3 + 2 * MAX_EVENT_LINE_BYTES);
  out.set([0x61, 0x62, 0x63]);
  const v6 = new Connection();
  setTuple(v6.original, 17, "::ffff:c000:207", "2001:db8::1:0:0:1", 5353, 53);
  setTuple(v6.reply, 17, "2001:db8::1:0:0:1", "::ffff:c000:207", 53, 5353);
  let end = encoder.encode(
    event(v6, "DESTROY", {
      tsSec: 17,
      tsNsec: 999_999_999,
      hasCounters: true,
      originalPackets: 1,
      originalBytes: 2 ** 40 + 3,
      replyPackets: 0,
      replyBytes: 0,
      deltaTime: 0,
    }),
    out,
    3,
  );
  const gre = new Connection();
  setTuple(gre.original, 47, "10.0.0.1", "255.255.255.255", 0, 0);
  gre.original.srcPort = 0;
  gre.original.dstPort = 0xbeef;
  setTuple(gre.reply, 47, "255.255.255.255", "10.0.0.1", 0, 0);
  gre.reply.srcPort = 0xbeef;
  end = encoder.encode(event(gre, "NEW", { timeout: 29, seenReply: false, tsSec: 1, tsNsec: 0 }), out, end);
  assert.equal(
    new TextDecoder().decode(out.subarray(0, end)),
    "abc[00000017.999999]\t[DESTROY] udp      17 src=::ffff:192.0.2.7 dst=2001:db8::1:0:0:1 sport=5353 dport=53 " +
      "packets=1 bytes=1099511627779 src=2001:db8::1:0:0:1 dst=::ffff:192.0.2.7 sport=53 dport=5353 " +
      "packets=0 bytes=0 delta-time=0\n" +
      "[00000001.000000]\t    [NEW] gre      47 29 src=10.0.0.1 dst=255.255.255.255 srckey=0x0 dstkey=0xbeef " +
      "[UNREPLIED] src=255.255.255.255 dst=10.0.0.1 srckey=0xbeef dstkey=0x0\n",
  );
});

test("icmp and unknown protocols, without the timestamp, as the string formatter", () => {
  const icmp = new Connection();
  setTuple(icmp.original, 1, "192.168.0.1", "8.8.8.8", 0, 0);
  icmp.original.srcPort = 4660;
  icmp.original.dstPort = 8 << 8;
  setTuple(icmp.reply, 1, "8.8.8.8", "192.168.0.1", 0, 0);
  icmp.reply.srcPort = 4660;
  icmp.reply.dstPort = 0;
  const other = new Connection();
  setTuple(other.original, 132 + 1, "fe80::1", "ff02::1", 0, 0);
  setTuple(other.reply, 132 + 1, "ff02::1", "fe80::1", 0, 0);
  assert.equal(
    formatConntrackEvent(event(icmp, "UPDATE", { timeout: 30 }), { timestamp: false }),
    " [UPDATE] icmp     1 30 src=192.168.0.1 dst=8.8.8.8 type=8 code=0 id=4660 " +
      "src=8.8.8.8 dst=192.168.0.1 type=0 code=0 id=4660",
  );
  assert.equal(
    formatConntrackEvent(event(other, "NEW", { timeout: 600, assured: true }), { timestamp: false }),
    "    [NEW] unknown  133 600 src=fe80::1 dst=ff02::1 src=ff02::1 dst=fe80::1 [ASSURED]",
  );
});

test("tuple words and TCP sequence fields read back unsigned whatever was stored", () => {
  const tuple = new Tuple();
  tuple.src0 = 0xc0a80001;
  tuple.dst3 = -1;
  assert.equal(tuple.src0, 0xc0a80001);
  assert.equal(tuple.srcWord0, 0xc0a80001 | 0);
  assert.equal(tuple.dst3, 0xffffffff);
  const copy = new Tuple();
  copy.copyFrom(tuple);
  assert.equal(copy.equals(tuple), true);
  assert.equal(copy.hash(), tuple.hash());
  assert.equal(tuple.sameDestination(4, 0, 0, 0, 0xffffffff), true);
  const tcp = new TcpConnectionState();
  tcp.seen1.maxend = 0xfffffff0 + 0x20;
  tcp.lastAck = 0x80000000;
  assert.equal(tcp.seen1.maxend, 0x10);
  assert.equal(tcp.lastAck, 0x80000000);
  tcp.reset();
  assert.equal(tcp.lastAck, 0);
});
