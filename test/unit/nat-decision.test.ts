/**
 * The NAT decision: kept ports, clashes, DNAT/REDIRECT, rule order and chains, address choice from a
 * range against what the 6.18 kernel chose, and the reply tuples of the MASQUERADE recordings.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { Tuple } from "../../lib/conntrack/connection.js";
import {
  followMasterDecision,
  natDecision,
  invertTuple,
  type NatTableView,
} from "../../lib/conntrack/nat/decision.js";
import { parseNatRules } from "../../lib/conntrack/nat/iptables.js";
import { natRulesFromFlags } from "../../lib/conntrack/nat/flags.js";
import { parseIpv4 } from "../../lib/conntrack/nat/rules.js";
import { openCapture } from "../../lib/capture/open.js";
import { forEachRecord } from "../../lib/capture/source.js";
import { PacketDecoder } from "../../lib/decode/decoder.js";
import { PacketClass } from "../../lib/decode/packet.js";
import { formatIpv4 } from "../../lib/conntrack/address.js";

function ip(text: string): number {
  const value = parseIpv4(text);
  if (value === null) throw new Error(text);
  return value;
}

function tuple(protocol: number, src: string, sport: number, dst: string, dport: number): Tuple {
  const t = new Tuple();
  t.family = 4;
  t.protocol = protocol;
  t.src0 = ip(src);
  t.dst0 = ip(dst);
  t.srcPort = sport;
  t.dstPort = dport;
  return t;
}

/** Tuple text as conntrack prints it (ports, or ICMP type/code/id). */
function show(t: Tuple): string {
  const ends = `src=${formatIpv4(t.src0)} dst=${formatIpv4(t.dst0)}`;
  if (t.isIcmp) return `${ends} type=${t.icmpType} code=${t.icmpCode} id=${t.icmpId}`;
  return `${ends} sport=${t.srcPort} dport=${t.dstPort}`;
}

/** A table holding connections' tuples (both directions), as the engine's would. */
class FakeTable implements NatTableView {
  readonly entries: [Tuple, Tuple][] = [];
  add(original: Tuple, reply: Tuple): void {
    this.entries.push([original, reply]);
  }
  isTaken(candidate: Tuple, newOriginal: Tuple): boolean {
    return this.entries.some(
      ([o, r]) => (o.equals(candidate) || r.equals(candidate)) && !o.equals(newOriginal),
    );
  }
}

const TCP = 6;
const UDP = 17;
const ICMP = 1;
const masquerade = natRulesFromFlags({ masquerade: ["out0=198.51.100.32"] }).rules;
const forward = { inInterface: "in0", outInterface: "out0" };

test("MASQUERADE keeps the source port when the reply tuple is free", () => {
  const table = new FakeTable();
  const d = natDecision(masquerade, tuple(TCP, "10.1.2.3", 40000, "203.0.113.47", 8000), forward, table);
  assert.equal(show(d.reply), "src=203.0.113.47 dst=198.51.100.32 sport=8000 dport=40000");
  assert.equal(d.dstNat, null);
  assert.equal(d.srcNat?.kind, "MASQUERADE");
  assert.equal(d.srcNat?.port, 40000);
  assert.equal(d.srcNat?.ownChoice, false);
  assert.equal(d.dropped, null);
});

test("MASQUERADE on a clash picks another port in 1024-65535 (our choice, stable), as the kernel does", () => {
  const table = new FakeTable();
  const first = tuple(TCP, "10.1.2.3", 40000, "203.0.113.47", 8000);
  const d1 = natDecision(masquerade, first, forward, table);
  table.add(first, d1.reply);
  const second = tuple(TCP, "10.1.2.4", 40000, "203.0.113.47", 8000);
  const d2 = natDecision(masquerade, second, forward, table);
  assert.equal(d2.srcNat?.ownChoice, true);
  const port = d2.reply.dstPort;
  assert.notEqual(port, 40000);
  assert.ok(port >= 1024 && port <= 65535);
  assert.equal(show(d2.reply), `src=203.0.113.47 dst=198.51.100.32 sport=8000 dport=${port}`);
  // Deterministic: the same question gives the same answer.
  assert.equal(natDecision(masquerade, second, forward, table).reply.dstPort, port);
  // A port below 1024 stays below 512 (1-511) or in 600-1023, as the kernel's default ranges.
  const low = tuple(UDP, "10.1.2.3", 123, "203.0.113.47", 123);
  table.add(low, natDecision(masquerade, low, forward, table).reply);
  const low2 = natDecision(masquerade, tuple(UDP, "10.1.2.4", 123, "203.0.113.47", 123), forward, table);
  assert.ok(low2.reply.dstPort >= 1 && low2.reply.dstPort <= 511 && low2.reply.dstPort !== 123);
});

test("MASQUERADE --to-ports: kept when in range, else searched in the range; a full range drops", () => {
  const { rules } = natRulesFromFlags({ masquerade: ["out0=198.51.100.32:20000-20001"] });
  const table = new FakeTable();
  const a = tuple(TCP, "10.1.2.3", 40000, "203.0.113.47", 8000);
  const da = natDecision(rules, a, forward, table);
  assert.ok([20000, 20001].includes(da.reply.dstPort));
  table.add(a, da.reply);
  const b = tuple(TCP, "10.1.2.4", 40000, "203.0.113.47", 8000);
  const db = natDecision(rules, b, forward, table);
  assert.equal(db.reply.dstPort, da.reply.dstPort === 20000 ? 20001 : 20000);
  table.add(b, db.reply);
  const c = natDecision(rules, tuple(TCP, "10.1.2.5", 40000, "203.0.113.47", 8000), forward, table);
  assert.match(c.dropped ?? "", /no free port/);
  // In range already: kept.
  const inRange = natDecision(
    rules,
    tuple(TCP, "10.1.2.3", 20001, "203.0.113.9", 80),
    forward,
    new FakeTable(),
  );
  assert.equal(inRange.reply.dstPort, 20001);
});

test("SNAT to a single address keeps the port; no rule matching leaves the tuple alone", () => {
  const { rules } = natRulesFromFlags({ snat: ["10.0.0.0/8=192.0.2.1"] });
  const d = natDecision(rules, tuple(UDP, "10.1.2.3", 5353, "203.0.113.47", 53), forward, new FakeTable());
  assert.equal(show(d.reply), "src=203.0.113.47 dst=192.0.2.1 sport=53 dport=5353");
  const none = natDecision(
    rules,
    tuple(UDP, "172.16.0.1", 5353, "203.0.113.47", 53),
    forward,
    new FakeTable(),
  );
  assert.equal(show(none.reply), "src=203.0.113.47 dst=172.16.0.1 sport=53 dport=5353");
  assert.equal(none.srcNat, null);
});

test("SNAT to an address range picks the address the 6.18 kernel picked (jhash of source and destination)", () => {
  // Recorded on 6.18 with `-o out0 -j SNAT --to-source 198.51.100.32-198.51.100.40` (and --persistent).
  const cases: [string, string, string, string][] = [
    ["", "10.1.2.3", "203.0.113.47", "198.51.100.33"],
    ["", "10.1.2.4", "203.0.113.47", "198.51.100.40"],
    [",persistent", "10.1.2.3", "203.0.113.47", "198.51.100.39"],
    [",persistent", "10.1.2.4", "203.0.113.47", "198.51.100.34"],
  ];
  for (const [option, src, dst, expected] of cases) {
    const { rules } = natRulesFromFlags({ snat: [`any@out0=198.51.100.32-198.51.100.40${option}`] });
    for (const dport of [8000, 8001]) {
      const d = natDecision(rules, tuple(TCP, src, 45135, dst, dport), forward, new FakeTable());
      assert.equal(formatIpv4(d.reply.dst0), expected, `${src} -> ${dst}${option}`);
      assert.equal(d.reply.dstPort, 45135);
    }
  }
});

test("DNAT with a port change, and a port range searched from its first port as the kernel does", () => {
  const { rules, errors } = parseNatRules(
    `*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i out0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.2.3:8000-8002
-A PREROUTING -i out0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 10.1.2.3:8000-8002
-A PREROUTING -i out0 -p tcp -m tcp --dport 8082 -j DNAT --to-destination 10.1.2.3:8000-8002
-A PREROUTING -i out0 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.1.2.9:80
-A POSTROUTING -o out0 -j MASQUERADE
COMMIT
`,
    "dnat.txt",
  );
  assert.deepEqual(errors, []);
  const inbound = { inInterface: "out0", outInterface: "in0" };
  const single = natDecision(
    rules,
    tuple(TCP, "203.0.113.47", 5000, "198.51.100.32", 9090),
    inbound,
    new FakeTable(),
  );
  assert.equal(show(single.reply), "src=10.1.2.9 dst=203.0.113.47 sport=80 dport=5000");
  assert.equal(single.dstNat?.kind, "DNAT");
  assert.equal(single.dstNat?.ownChoice, false);
  assert.equal(single.srcNat, null);
  // Recorded on 6.18 (the kernel chose 8000, 8001, 8002 in three runs out of three).
  const table = new FakeTable();
  const replies: string[] = [];
  for (const dport of [8080, 8081, 8082]) {
    const original = tuple(TCP, "203.0.113.47", 5000, "198.51.100.32", dport);
    const d = natDecision(rules, original, inbound, table);
    table.add(original, d.reply);
    replies.push(show(d.reply));
  }
  assert.deepEqual(replies, [
    "src=10.1.2.3 dst=203.0.113.47 sport=8000 dport=5000",
    "src=10.1.2.3 dst=203.0.113.47 sport=8001 dport=5000",
    "src=10.1.2.3 dst=203.0.113.47 sport=8002 dport=5000",
  ]);
});

test("REDIRECT lands on the incoming interface's address (or 127.0.0.1 on OUTPUT)", () => {
  const { rules } = natRulesFromFlags({
    redirect: ["tcp:any:80@in0=3128"],
    interfaceAddress: ["in0=10.1.2.1"],
  });
  const d = natDecision(rules, tuple(TCP, "10.1.2.3", 41000, "93.184.216.34", 80), forward, new FakeTable());
  assert.equal(show(d.reply), "src=10.1.2.1 dst=10.1.2.3 sport=3128 dport=41000");
  assert.equal(d.dstNat?.kind, "REDIRECT");
  const other = natDecision(
    rules,
    tuple(TCP, "10.1.2.3", 41000, "93.184.216.34", 443),
    forward,
    new FakeTable(),
  );
  assert.equal(other.dstNat, null);
  const { rules: out } = parseNatRules(
    "*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p tcp --dport 80 -j REDIRECT --to-ports 8080\nCOMMIT\n",
    "o",
  );
  const local = natDecision(
    out,
    tuple(TCP, "10.1.2.1", 41000, "93.184.216.34", 80),
    { inInterface: null, outInterface: "out0", path: "output" },
    new FakeTable(),
  );
  assert.equal(show(local.reply), "src=127.0.0.1 dst=10.1.2.1 sport=8080 dport=41000");
  // Unknown interface address: the destination address is kept and the decision says so.
  const { rules: bare } = natRulesFromFlags({ redirect: ["tcp:any:80=3128"] });
  const kept = natDecision(bare, tuple(TCP, "10.1.2.3", 41000, "10.1.2.1", 80), forward, new FakeTable());
  assert.equal(show(kept.reply), "src=10.1.2.1 dst=10.1.2.3 sport=3128 dport=41000");
  assert.match(kept.note ?? "", /REDIRECT \(--redirect tcp:any:80=3128\): address of interface in0 unknown/);
});

test("rule order, user chains with RETURN, negation and interface wildcards", () => {
  const { rules, errors } = parseNatRules(
    `*nat
:POSTROUTING ACCEPT [0:0]
:OUT - [0:0]
-A POSTROUTING -o eth+ -j OUT
-A POSTROUTING -s 10.9.0.0/16 -j SNAT --to-source 192.0.2.9
-A OUT -p udp -j RETURN
-A OUT ! -d 203.0.113.0/24 -j SNAT --to-source 192.0.2.1
-A OUT -j SNAT --to-source 192.0.2.2
-A OUT -j SNAT --to-source 192.0.2.3
COMMIT
`,
    "order.txt",
  );
  assert.deepEqual(errors, []);
  const run = (p: number, src: string, dst: string, out: string): string =>
    show(
      natDecision(
        rules,
        tuple(p, src, 1234, dst, 80),
        { inInterface: "in0", outInterface: out },
        new FakeTable(),
      ).reply,
    );
  assert.equal(
    run(TCP, "10.9.1.1", "203.0.113.47", "eth1"),
    "src=203.0.113.47 dst=192.0.2.2 sport=80 dport=1234",
  );
  assert.equal(
    run(TCP, "10.9.1.1", "198.18.0.1", "eth0"),
    "src=198.18.0.1 dst=192.0.2.1 sport=80 dport=1234",
  );
  assert.equal(
    run(UDP, "10.9.1.1", "203.0.113.47", "eth1"),
    "src=203.0.113.47 dst=192.0.2.9 sport=80 dport=1234",
  );
  assert.equal(
    run(TCP, "10.9.1.1", "203.0.113.47", "wlan0"),
    "src=203.0.113.47 dst=192.0.2.9 sport=80 dport=1234",
  );
  assert.equal(
    run(TCP, "10.8.1.1", "203.0.113.47", "wlan0"),
    "src=203.0.113.47 dst=10.8.1.1 sport=80 dport=1234",
  );
});

test("ICMP: the echo id is kept, and moved on a clash (SNAT and null binding alike)", () => {
  const table = new FakeTable();
  const ping = (src: string): Tuple => tuple(ICMP, src, 16962, "203.0.113.47", 8 << 8);
  const d1 = natDecision(masquerade, ping("10.1.2.3"), forward, table);
  assert.equal(show(d1.reply), "src=203.0.113.47 dst=198.51.100.32 type=0 code=0 id=16962");
  table.add(ping("10.1.2.3"), d1.reply);
  const d2 = natDecision(masquerade, ping("10.1.2.4"), forward, table);
  assert.notEqual(d2.reply.icmpId, 16962);
  assert.equal(d2.reply.icmpType, 0);
  assert.equal(d2.srcNat?.ownChoice, true);
  // The router's own ping with the same id clashes with the masqueraded one: the null binding moves it.
  const own = natDecision(
    masquerade,
    tuple(ICMP, "198.51.100.32", 16962, "203.0.113.47", 8 << 8),
    { inInterface: null, outInterface: "out0", path: "output" },
    table,
  );
  assert.equal(own.srcNat?.kind, "MASQUERADE");
  assert.notEqual(own.reply.icmpId, 16962);
});

test("a connection from the NAT device itself that clashes gets a new port from the null binding", () => {
  const { rules } = natRulesFromFlags({ snat: ["10.0.0.0/8@out0=198.51.100.32"] });
  const table = new FakeTable();
  const inside = tuple(TCP, "10.1.2.3", 40000, "203.0.113.47", 80);
  table.add(inside, natDecision(rules, inside, forward, table).reply);
  const own = tuple(TCP, "198.51.100.32", 40000, "203.0.113.47", 80);
  const d = natDecision(rules, own, { inInterface: null, outInterface: "out0", path: "output" }, table);
  assert.equal(d.srcNat?.kind, "null-binding");
  assert.equal(d.srcNat?.rule, null);
  assert.notEqual(d.reply.dstPort, 40000);
  assert.equal(formatIpv4(d.reply.dst0), "198.51.100.32");
});

test("an existing mapping of the same inside endpoint is re-used when the table view offers it", () => {
  const table = new FakeTable();
  const first = tuple(UDP, "10.1.2.3", 40000, "203.0.113.47", 53);
  // Suppose the first connection had been moved to 50000 by an earlier clash.
  const reply = invertTuple(first);
  reply.dst0 = ip("198.51.100.32");
  reply.dstPort = 50000;
  table.add(first, reply);
  const view: NatTableView = {
    isTaken: (t, o) => table.isTaken(t, o),
    sourceMappings: (o) => (o.src0 === first.src0 && o.srcPort === first.srcPort ? [reply] : []),
  };
  const d = natDecision(masquerade, tuple(UDP, "10.1.2.3", 40000, "203.0.113.99", 53), forward, view);
  assert.equal(show(d.reply), "src=203.0.113.99 dst=198.51.100.32 sport=53 dport=50000");
  assert.equal(d.srcNat?.ownChoice, false);
});

test("MASQUERADE with an unknown interface address drops, as the kernel does without an address", () => {
  const { rules } = parseNatRules(
    "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o out0 -j MASQUERADE\nCOMMIT\n",
    "m",
  );
  const d = natDecision(rules, tuple(TCP, "10.1.2.3", 40000, "203.0.113.47", 80), forward, new FakeTable());
  assert.equal(d.dropped, "MASQUERADE (m:3): no IPv4 address known for interface out0");
});

// ---------------------------------------------------------------- the kernel recordings

const SAMPLES = new URL("../../../samples/", import.meta.url);

/** First packet of each connection in inside.pcap, in order (a tuple seen in neither direction before). */
async function firstPackets(path: string): Promise<Tuple[]> {
  const source = await openCapture(path);
  const decoder = new PacketDecoder();
  const firsts: Tuple[] = [];
  const seen = new Set<string>();
  await forEachRecord(source, (record) => {
    if (decoder.decode(record) !== PacketClass.Decoded) return;
    const p = decoder.packet;
    if (p.ipVersion !== 4 || !p.hasPorts) return;
    const t = new Tuple();
    t.family = 4;
    t.protocol = p.protocol;
    t.src0 = p.srcV4;
    t.dst0 = p.dstV4;
    if (p.protocol === ICMP) {
      if (p.icmpType !== 8) return;
      t.srcPort = p.icmpId;
      t.dstPort = p.icmpType << 8;
    } else {
      t.srcPort = p.srcPort;
      t.dstPort = p.dstPort;
    }
    const key = show(t);
    const back = show(invertTuple(t));
    if (seen.has(key) || seen.has(back)) return;
    seen.add(key);
    firsts.push(t);
  });
  await source.close();
  return firsts;
}

const natSamples = readdirSync(SAMPLES).filter(
  (name) => name.endsWith("-nat-masquerade") || name === "ftp-active",
);

test("kernel recordings through MASQUERADE: every client-initiated connection's reply tuple", async () => {
  assert.ok(natSamples.length >= 6, `MASQUERADE recordings: ${natSamples.join(", ")}`);
  let checked = 0;
  for (const sample of natSamples) {
    const folder = new URL(`${sample}/`, SAMPLES);
    const scenario = JSON.parse(readFileSync(new URL("scenario.json", folder), "utf8"));
    assert.equal(scenario.natRule, "nat POSTROUTING -o out0 -j MASQUERADE");
    const { rules } = natRulesFromFlags({
      masquerade: [`${scenario.topology.router.outside.interface}=${scenario.topology.router.outside.ipv4}`],
    });
    const kernel = new Map<string, string>();
    for (const line of readFileSync(new URL("conntrack-events.txt", folder), "utf8").split("\n")) {
      const m =
        /\[NEW\] \S+\s+\d+ \d+ (?:SYN_SENT )?(src=\S+ dst=\S+ (?:sport=\d+ dport=\d+|type=\d+ code=\d+ id=\d+)) \[UNREPLIED\] (src=\S+ dst=\S+ (?:sport=\d+ dport=\d+|type=\d+ code=\d+ id=\d+))/.exec(
          line,
        );
      if (m !== null) kernel.set(m[1], m[2]);
    }
    const table = new FakeTable();
    for (const first of await firstPackets(new URL("inside.pcap", folder).pathname)) {
      // Connections the server opens (active FTP data, TFTP's reply port) are translated by the
      // helper's expectation (nf_nat_follow_master), not by the rules: they arrive from out0.
      const fromClient = formatIpv4(first.src0) === scenario.topology.client.ipv4;
      if (!fromClient) continue;
      const d = natDecision(rules, first, { inInterface: "in0", outInterface: "out0" }, table);
      table.add(first, d.reply);
      // Entries the kernel printed without [UNREPLIED] (picked up mid-stream) are not in the map.
      const expected = kernel.get(show(first));
      if (expected === undefined) continue;
      assert.equal(show(d.reply), expected, `${sample}: ${show(first)}`);
      checked++;
    }
  }
  // At least ftp-passive 3, ping 1, tcp-client-close 1, tftp-read 1, udp-request-response 1, ftp-active 1.
  assert.ok(checked >= 8, `${checked} connections checked`);
});

test("a related connection follows its master (nf_nat_follow_master): active FTP's data connection", () => {
  const master = tuple(TCP, "10.1.2.3", 60084, "203.0.113.47", 21);
  // The server connects to where the rewritten PORT pointed: the router's address and the saved port.
  const data = tuple(TCP, "203.0.113.47", 20, "198.51.100.32", 35977);
  const free: NatTableView = { isTaken: () => false };
  const decision = followMasterDecision(data, master, 35977, free);
  assert.equal(show(decision.reply), show(tuple(TCP, "10.1.2.3", 35977, "203.0.113.47", 20)));
  assert.equal(decision.srcNat, null);
  assert.equal(decision.dstNat?.kind, "follow-master");
  assert.equal(decision.dstNat?.port, 35977);
  assert.equal(formatIpv4(decision.dstNat!.address0), "10.1.2.3");
  assert.equal(decision.dropped, null);
  // The destination and port are fixed: if that reply is taken there is nowhere else to go.
  const taken: NatTableView = { isTaken: () => true };
  assert.match(followMasterDecision(data, master, 35977, taken).dropped ?? "", /no free port/);
});

test("a related connection follows its master: passive FTP's data connection is source-translated", () => {
  const masterReply = tuple(TCP, "203.0.113.47", 21, "198.51.100.32", 40468);
  const data = tuple(TCP, "10.1.2.3", 34122, "203.0.113.47", 32787);
  const decision = followMasterDecision(data, masterReply, 32787, { isTaken: () => false });
  assert.equal(show(decision.reply), show(tuple(TCP, "203.0.113.47", 32787, "198.51.100.32", 34122)));
  assert.equal(decision.srcNat?.kind, "follow-master");
  assert.equal(decision.srcNat?.ownChoice, false);
  assert.equal(decision.dstNat, null);
});
