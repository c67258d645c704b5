import { test } from "node:test";
import assert from "node:assert/strict";
import { Connection } from "../../lib/conntrack/connection.js";
import { Expectation, ExpectEvent } from "../../lib/conntrack/expectations.js";
import {
  expectTimestampPrefix,
  formatExpectEvent,
  formatExpectProcLine,
} from "../../lib/report/expect-text.js";
import { ipv6Words } from "../../lib/conntrack/address.js";
import { parseAddress } from "./conntrack-fixtures.js";

function words(text: string): number[] {
  const bytes = new Uint8Array(16);
  if (parseAddress(text, bytes) === 4) {
    return [((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0, 0, 0, 0];
  }
  const out = [0, 0, 0, 0];
  ipv6Words(bytes, out);
  return out;
}

function setAddresses(tuple: Connection["original"], src: string, dst: string): void {
  const s = words(src);
  const d = words(dst);
  tuple.family = src.includes(":") ? 6 : 4;
  [tuple.src0, tuple.src1, tuple.src2, tuple.src3] = s;
  [tuple.dst0, tuple.dst1, tuple.dst2, tuple.dst3] = d;
}

function expectation(
  src: string,
  dst: string,
  dport: number,
  master: [string, string, number, number],
  protocol = 6,
  helper = "ftp",
): Expectation {
  const connection = new Connection();
  setAddresses(connection.original, master[0], master[1]);
  connection.original.protocol = protocol;
  connection.original.srcPort = master[2];
  connection.original.dstPort = master[3];
  const e = new Expectation();
  setAddresses(e.tuple, src, dst);
  e.tuple.protocol = protocol;
  e.tuple.dstPort = dport;
  e.master = connection;
  e.helper = helper;
  e.createdAt = 1e9;
  e.expiresAt = 301e9;
  return e;
}

function event(
  type: "NEW" | "DESTROY",
  e: Expectation,
  timeout: number,
  tsSec = 1795616801,
  tsNsec = 529809000,
) {
  const ev = new ExpectEvent();
  ev.type = type;
  ev.expectation = e;
  ev.timeout = timeout;
  ev.tsSec = tsSec;
  ev.tsNsec = tsNsec;
  return ev;
}

test("expect text: IPv4 FTP lines as the kernel recording prints them (ftp-active-nat-none)", () => {
  const e = expectation("203.0.113.47", "10.1.2.3", 40141, ["10.1.2.3", "203.0.113.47", 52214, 21]);
  assert.equal(
    formatExpectEvent(event("NEW", e, 300)),
    "[1795616801.529809]\t    [NEW] 300 proto=6 src=203.0.113.47 dst=10.1.2.3 sport=0 dport=40141 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 master-src=10.1.2.3 master-dst=203.0.113.47 sport=52214 dport=21 class=0 helper=ftp",
  );
  assert.equal(
    formatExpectEvent(event("DESTROY", e, 299), { timestamp: false }),
    "[DESTROY] 299 proto=6 src=203.0.113.47 dst=10.1.2.3 sport=0 dport=40141 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 master-src=10.1.2.3 master-dst=203.0.113.47 sport=52214 dport=21 class=0 helper=ftp",
  );
});

test("expect text: IPv6 masks in full, addresses compressed (ftp-ipv6-eprt-epsv)", () => {
  const e = expectation("2001:db8:2::47", "2001:db8:1::3", 34607, [
    "2001:db8:1::3",
    "2001:db8:2::47",
    57186,
    21,
  ]);
  assert.equal(
    formatExpectEvent(event("NEW", e, 300), { timestamp: false }),
    "    [NEW] 300 proto=6 src=2001:db8:2::47 dst=2001:db8:1::3 sport=0 dport=34607 mask-src=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-dst=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff sport=0 dport=65535 master-src=2001:db8:1::3 master-dst=2001:db8:2::47 sport=57186 dport=21 class=0 helper=ftp",
  );
});

test("expect text: the timestamp prefix is %-8ld.%-6ld (microseconds space-padded, leading zeros lost)", () => {
  assert.equal(expectTimestampPrefix(1795616309, 87756000), "[1795616309.87756 ]\t");
  assert.equal(expectTimestampPrefix(1795616309, 130314999), "[1795616309.130314]\t");
  assert.equal(expectTimestampPrefix(1795616309, 5000), "[1795616309.5     ]\t");
  assert.equal(expectTimestampPrefix(12, 0), "[12      .0     ]\t");
});

test("expect text: /proc/net/nf_conntrack_expect lines (the seed's line, IPv6 in full form, flags)", () => {
  const e = expectation("203.0.113.47", "198.51.100.32", 41603, ["10.1.2.3", "203.0.113.47", 47800, 21]);
  assert.equal(
    formatExpectProcLine(e, { now: 6e9 }),
    "295 l3proto = 2 proto=6 src=203.0.113.47 dst=198.51.100.32 sport=0 dport=41603 ftp",
  );
  assert.equal(
    formatExpectProcLine(e, { now: 6.004e9 }),
    "294 l3proto = 2 proto=6 src=203.0.113.47 dst=198.51.100.32 sport=0 dport=41603 ftp",
  );
  assert.equal(formatExpectProcLine(e, { now: 400e9 }).split(" ")[0], "0");
  const v6 = expectation(
    "2001:db8:2::47",
    "2001:db8:1::3",
    69,
    ["2001:db8:1::3", "2001:db8:2::47", 40000, 69],
    17,
    "tftp",
  );
  v6.flags = 1 | 2;
  assert.equal(
    formatExpectProcLine(v6, { now: 1e9 }),
    "300 l3proto = 10 proto=17 src=2001:0db8:0002:0000:0000:0000:0000:0047 dst=2001:0db8:0001:0000:0000:0000:0000:0003 sport=0 dport=69 PERMANENT,INACTIVE tftp",
  );
  assert.equal(
    formatExpectEvent(event("NEW", v6, 300), { timestamp: false }),
    "    [NEW] 300 proto=17 src=2001:db8:2::47 dst=2001:db8:1::3 sport=0 dport=69 mask-src=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-dst=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff sport=0 dport=65535 master-src=2001:db8:1::3 master-dst=2001:db8:2::47 sport=40000 dport=69 PERMANENT,INACTIVE class=0 helper=tftp",
  );
});
