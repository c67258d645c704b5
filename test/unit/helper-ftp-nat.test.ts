/**
 * nf_nat_ftp in the model: under configured NAT the FTP helper's expectation is on the translated
 * address, a clash moves it to another port (nf_nat_exp_find_port), and the rewrite of the command's
 * text changes its length, which shifts the sequence numbers after it (nf_conntrack_seqadj): seen
 * as packets arrive at the device, the far end's acknowledgements count in the shifted space.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ConntrackEngine,
  NAT_EXPECT_PORT_ATTEMPTS,
  Verdict,
  type EngineNatOptions,
  type PacketVerdict,
} from "../../lib/conntrack/engine.js";
import { natRulesFromFlags, SeqAdjust } from "../../lib/conntrack/nat/index.js";
import { Parser, rewrittenLength } from "../../lib/conntrack/helpers/ftp.js";
import { Tuple } from "../../lib/conntrack/connection.js";
import { IPPROTO_TCP } from "../../lib/decode/packet.js";
import { formatConntrackEvent } from "../../lib/report/conntrack-text.js";
import { formatExpectEvent } from "../../lib/report/expect-text.js";
import { makeTcp } from "./conntrack-fixtures.js";
import { withPayload } from "./helper-fixtures.js";

const CLIENT = "10.1.2.3";
const OTHER_CLIENT = "10.1.2.4";
const ROUTER = "198.51.100.32";
const SERVER = "203.0.113.47";

function masquerade(vantage: "inside" | "arrival"): EngineNatOptions {
  const { rules, errors } = natRulesFromFlags({ masquerade: [`out0=${ROUTER}`] });
  assert.deepEqual(errors, []);
  return { rules, vantage };
}

function natEngine(vantage: "inside" | "arrival" = "arrival") {
  const log: string[] = [];
  const engine = new ConntrackEngine({
    nat: masquerade(vantage),
    onEvent: (event) => log.push(`ct: ${formatConntrackEvent(event, { timestamp: false })}`),
    onExpectEvent: (event) => log.push(`exp: ${formatExpectEvent(event, { timestamp: false })}`),
  });
  return { engine, log };
}

/**
 * An FTP control connection through the router, packets as they arrive: the client's to the
 * server, the server's to the router's address (MASQUERADE keeps the client's port). `serverAck`
 * is what the server acknowledges: the client's bytes as the server received them, rewrites
 * included (`rewriteGrowth` bytes more than the client sent).
 */
class ArrivingFtp {
  clientSeq = 1000;
  serverSeq = 70000;
  rewriteGrowth = 0;
  time: number;
  constructor(
    readonly engine: ConntrackEngine,
    readonly client: string,
    readonly clientPort: number,
    start = 10,
    /** Where the server's packets are addressed: the router (arrival), the client (inside capture). */
    readonly serverSendsTo = ROUTER,
    /** Observed NAT: the tuple the SYN left the device with. */
    readonly synTranslation: Tuple | null = null,
  ) {
    this.time = start;
  }

  private tick(): number {
    this.time += 0.001;
    return this.time;
  }

  private get serverAck(): number {
    return (this.clientSeq + this.rewriteGrowth) >>> 0;
  }

  private fromClient(flags: string, payload = ""): PacketVerdict {
    const packet = makeTcp({
      src: this.client,
      dst: SERVER,
      sport: this.clientPort,
      dport: 21,
      flags,
      seq: this.clientSeq,
      ack: flags === "S" ? 0 : this.serverSeq,
      len: payload.length,
      ts: this.tick(),
    });
    if (payload !== "") withPayload(packet, payload);
    const verdict = this.engine.process(packet, flags === "S" ? this.synTranslation : null);
    this.clientSeq = (this.clientSeq + payload.length + (flags.includes("S") ? 1 : 0)) >>> 0;
    return verdict;
  }

  private fromServer(flags: string, payload = ""): PacketVerdict {
    const packet = makeTcp({
      src: SERVER,
      dst: this.serverSendsTo,
      sport: 21,
      dport: this.clientPort,
      flags,
      seq: this.serverSeq,
      ack: this.serverAck,
      len: payload.length,
      ts: this.tick(),
    });
    if (payload !== "") withPayload(packet, payload);
    const verdict = this.engine.process(packet);
    this.serverSeq = (this.serverSeq + payload.length + (flags.includes("S") ? 1 : 0)) >>> 0;
    return verdict;
  }

  open(): PacketVerdict[] {
    return [
      this.fromClient("S"),
      this.fromServer("SA"),
      this.fromClient("A"),
      this.fromServer("PA", "220 ready\r\n"),
      this.fromClient("PA", "USER anonymous\r\n"),
      this.fromServer("PA", "331 password please\r\n"),
    ];
  }

  /** The client sends a command; the server acknowledges what it received (with its reply). */
  command(text: string, growth = 0, reply = "200 ok\r\n"): PacketVerdict[] {
    const sent = this.fromClient("PA", text);
    this.rewriteGrowth += growth;
    return [sent, this.fromServer("PA", reply)];
  }
}

const expectText = (port: number, masterPort: number) =>
  `proto=6 src=${SERVER} dst=${ROUTER} sport=0 dport=${port} mask-src=255.255.255.255 ` +
  `mask-dst=255.255.255.255 sport=0 dport=65535 master-src=${CLIENT} master-dst=${SERVER} ` +
  `sport=${masterPort} dport=21 class=0 helper=ftp`;

test("nat ftp (arrival): PORT expects on the router's address; acks after the longer rewrite are in window", () => {
  const { engine, log } = natEngine();
  const control = new ArrivingFtp(engine, CLIENT, 40000);
  assert.ok(control.open().every((verdict) => verdict !== Verdict.Invalid));
  log.length = 0;
  // "10,1,2,3,156,65" becomes "198,51,100,32,156,65": 5 bytes longer on the way to the server.
  const portSeq = control.clientSeq;
  assert.deepEqual(control.command("PORT 10,1,2,3,156,65\r\n", 5), [
    Verdict.Established,
    Verdict.Established,
  ]);
  assert.equal(log[0], `exp:     [NEW] 300 ${expectText(40001, 40000)}`);
  const master = [...engine.entries()][0];
  assert.ok(master.seqAdjust !== null);
  assert.equal(master.seqAdjust.correctionPos[0], portSeq);
  assert.deepEqual([master.seqAdjust.offsetBefore[0], master.seqAdjust.offsetAfter[0]], [0, 5]);
  assert.equal(engine.stats.helpers.natRewrites, 1);
  assert.equal(engine.stats.helpers.natResized, 1);

  // The helper keeps reading the connection: a later PORT (another 5 bytes) is found and expected.
  assert.deepEqual(control.command("LIST\r\n", 0, "150 here it comes\r\n"), [
    Verdict.Established,
    Verdict.Established,
  ]);
  const second = control.clientSeq;
  assert.deepEqual(control.command("PORT 10,1,2,3,156,66\r\n", 5), [
    Verdict.Established,
    Verdict.Established,
  ]);
  assert.ok(log.includes(`exp:     [NEW] 300 ${expectText(40002, 40000)}`));
  assert.equal(master.seqAdjust.correctionPos[0], second);
  assert.deepEqual([master.seqAdjust.offsetBefore[0], master.seqAdjust.offsetAfter[0]], [5, 10]);
  assert.deepEqual(control.command("RETR x\r\n"), [Verdict.Established, Verdict.Established]);
  assert.equal(engine.stats.verdicts[Verdict.Invalid], 0);

  // The data connection arrives from the server on the router's address and follows the master.
  const syn = makeTcp({ src: SERVER, dst: ROUTER, sport: 20, dport: 40002, flags: "S", seq: 5, ts: 11 });
  assert.equal(engine.process(syn), Verdict.Related);
  assert.match(
    log.at(-1)!,
    new RegExp(
      `\\[NEW\\] tcp {6}6 120 SYN_SENT src=${SERVER} dst=${ROUTER} sport=20 dport=40002 \\[UNREPLIED\\] ` +
        `src=${CLIENT} dst=${SERVER} sport=40002 dport=20$`,
    ),
  );
});

test("nat ftp (arrival): without the sequence adjustment the server's acks would be beyond the data seen", () => {
  const { engine } = natEngine();
  // The same exchange with the engine forgetting the rewrite's length change.
  engine.adjustSequence = () => {};
  const control = new ArrivingFtp(engine, CLIENT, 40000);
  control.open();
  assert.deepEqual(control.command("PORT 10,1,2,3,156,65\r\n", 5), [Verdict.Established, Verdict.Invalid]);
  assert.equal(engine.reason, "tcp: ACK for data not seen yet");
});

test("nat ftp (inside vantage): the capture shows acks shifted back, so no adjustment is kept", () => {
  const { engine, log } = natEngine("inside");
  // An inside capture shows the server's packets translated back: to the client, acks unshifted.
  const control = new ArrivingFtp(engine, CLIENT, 40000, 10, CLIENT);
  control.open();
  assert.deepEqual(control.command("PORT 10,1,2,3,156,65\r\n"), [Verdict.Established, Verdict.Established]);
  assert.ok(log.includes(`exp:     [NEW] 300 ${expectText(40001, 40000)}`));
  assert.equal([...engine.entries()][0].seqAdjust, null);
  assert.equal(engine.stats.helpers.natResized, 1);
  assert.equal(engine.stats.verdicts[Verdict.Invalid], 0);
});

test("nat ftp (observed NAT): each packet comes with the ack it left with, so no adjustment is kept", () => {
  const engine = new ConntrackEngine();
  const translation = new Tuple();
  translation.family = 4;
  translation.protocol = IPPROTO_TCP;
  translation.src0 = ((198 << 24) | (51 << 16) | (100 << 8) | 32) >>> 0;
  translation.dst0 = ((203 << 24) | (113 << 8) | 47) >>> 0;
  translation.srcPort = 40000;
  translation.dstPort = 21;
  const control = new ArrivingFtp(engine, CLIENT, 40000, 10, ROUTER, translation);
  control.open();
  assert.equal(engine.stats.nat.observed, 1);
  // The pairing stage already replaced the server's ack by the unshifted one it left with.
  assert.deepEqual(control.command("PORT 10,1,2,3,156,65\r\n"), [Verdict.Established, Verdict.Established]);
  assert.equal(engine.stats.helpers.natResized, 1);
  assert.equal([...engine.entries()][0].seqAdjust, null);
  assert.equal(engine.stats.verdicts[Verdict.Invalid], 0);
});

test("nat ftp: a port another master's expectation holds moves to the next free one; the data connection is translated back", () => {
  const { engine, log } = natEngine();
  const first = new ArrivingFtp(engine, CLIENT, 40000);
  first.open();
  first.command("PORT 10,1,2,3,156,65\r\n", 5);
  // A second client behind the same router announces the same port number.
  const second = new ArrivingFtp(engine, OTHER_CLIENT, 40010, first.time);
  second.open();
  log.length = 0;
  assert.deepEqual(second.command("PORT 10,1,2,4,156,65\r\n", 5), [Verdict.Established, Verdict.Established]);
  assert.equal(log.length, 1);
  assert.match(
    log[0],
    /dport=40002 .*master-src=10\.1\.2\.4 master-dst=203\.0\.113\.47 sport=40010 dport=21/,
  );
  assert.equal(engine.stats.expectations.refused, 0);
  assert.equal(engine.stats.nat.ownChoice, 1);
  assert.equal(
    [...engine.stats.nat.notes.keys()].filter((note) => note.includes("expectation port")).length,
    1,
  );

  // The server connects to the port the rewritten PORT named; the router sends it to 10.1.2.4:40001.
  const syn = makeTcp({ src: SERVER, dst: ROUTER, sport: 20, dport: 40002, flags: "S", seq: 5, ts: 20 });
  assert.equal(engine.process(syn), Verdict.Related);
  assert.match(
    log.at(-1)!,
    /SYN_SENT src=203\.0\.113\.47 dst=198\.51\.100\.32 sport=20 dport=40002 \[UNREPLIED\] src=10\.1\.2\.4 dst=203\.0\.113\.47 sport=40001 dport=20$/,
  );
  const data = [...engine.entries()].find((connection) => connection.original.srcPort === 20)!;
  assert.equal(data.master?.original.srcPort, 40010);
});

test("nat ftp: with no other port left the command is dropped ('all ports in use')", () => {
  const { engine } = natEngine();
  const first = new ArrivingFtp(engine, CLIENT, 40000);
  first.open();
  first.command("PORT 10,1,2,3,255,254\r\n", 5);
  const second = new ArrivingFtp(engine, OTHER_CLIENT, 40010, first.time);
  second.open();
  // 65534 taken, and the kernel's search never goes to 65535.
  assert.equal(second.command("PORT 10,1,2,4,255,254\r\n")[0], Verdict.Dropped);
  assert.equal(engine.stats.helpers.refusedDrops, 1);
  assert.equal(engine.stats.expectations.refused, 1);
  assert.equal(NAT_EXPECT_PORT_ATTEMPTS, 128);
});

test("nat ftp: the search gives up after 128 other ports", () => {
  const { engine } = natEngine();
  // 129 masters hold 30000..30128; the next client asking for 30000 finds nothing within 128 tries.
  let time = 10;
  for (let i = 0; i <= NAT_EXPECT_PORT_ATTEMPTS; i++) {
    const control = new ArrivingFtp(engine, CLIENT, 41000 + i, time);
    control.open();
    const port = 30000 + i;
    assert.equal(control.command(`PORT 10,1,2,3,${port >> 8},${port & 255}\r\n`)[0], Verdict.Established);
    time = control.time;
  }
  assert.equal(engine.liveExpectations, NAT_EXPECT_PORT_ATTEMPTS + 1);
  const last = new ArrivingFtp(engine, OTHER_CLIENT, 42000, time);
  last.open();
  assert.equal(last.command("PORT 10,1,2,4,117,48\r\n")[0], Verdict.Dropped);
  const other = new ArrivingFtp(engine, OTHER_CLIENT, 42001, last.time);
  other.open();
  // One port further up there is room: 30129 is the 128th try from 30001.
  assert.equal(other.command("PORT 10,1,2,4,117,49\r\n")[0], Verdict.Established);
  assert.equal(engine.liveExpectations, NAT_EXPECT_PORT_ATTEMPTS + 2);
});

test("seqadj: offsets before and after the last resized segment; retransmissions leave it alone", () => {
  const adjust = new SeqAdjust();
  adjust.set(0, 1000, 5);
  assert.deepEqual([adjust.offset(0, 1000), adjust.offset(0, 1001)], [0, 5]);
  assert.equal(adjust.offset(1, 1001), 0);
  adjust.set(0, 2000, -2);
  assert.deepEqual([adjust.offset(0, 1500), adjust.offset(0, 2001)], [5, 3]);
  // A retransmission of the first rewritten segment: already accounted for.
  adjust.set(0, 1000, 5);
  assert.deepEqual([adjust.correctionPos[0], adjust.offsetBefore[0], adjust.offsetAfter[0]], [2000, 5, 3]);
  // Sequence numbers wrap.
  const wrapping = new SeqAdjust();
  wrapping.set(1, 0xfffffff0, 3);
  assert.equal(wrapping.offset(1, 0x10), 3);
  assert.equal(wrapping.offset(1, 0xffffff00), 0);
});

test("nf_nat_ftp text lengths: PORT/227, EPRT (IPv4 dotted, IPv6 as %pI6), 229", () => {
  const tuple = new Tuple();
  tuple.family = 4;
  tuple.protocol = IPPROTO_TCP;
  tuple.dst0 = ((198 << 24) | (51 << 16) | (100 << 8) | 32) >>> 0;
  assert.equal(rewrittenLength(Parser.Rfc959, tuple, 40001), "198,51,100,32,156,65".length);
  assert.equal(rewrittenLength(Parser.Rfc1123, tuple, 5), "198,51,100,32,0,5".length);
  assert.equal(rewrittenLength(Parser.Eprt, tuple, 40001), "|1|198.51.100.32|40001|".length);
  assert.equal(rewrittenLength(Parser.EpsvResponse, tuple, 40001), "|||40001|".length);
  tuple.family = 6;
  assert.equal(
    rewrittenLength(Parser.Eprt, tuple, 8),
    "|2|2001:0db8:0002:0000:0000:0000:0000:0032|8|".length,
  );
});
