/**
 * Configured NAT in the engine: reply tuples from the rules, lookups from an inside capture (replies
 * translated back) and from the device's arrival view, port clashes, drops, ICMP errors.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConntrackEngine, Reason, Verdict, type EngineNatOptions } from "../../lib/conntrack/engine.js";
import { formatConntrackEvent } from "../../lib/report/conntrack-text.js";
import { natRulesFromFlags } from "../../lib/conntrack/nat/index.js";
import { IPPROTO_UDP } from "../../lib/decode/packet.js";
import { makeIcmp, makeUdp } from "./conntrack-fixtures.js";

const CLIENT = "10.1.2.3";
const OTHER_CLIENT = "10.1.2.4";
const SERVER = "203.0.113.47";
const ROUTER = "198.51.100.32";

function masquerade(vantage?: "inside" | "arrival", flag = `out0=${ROUTER}`): EngineNatOptions {
  const { rules, errors } = natRulesFromFlags({ masquerade: [flag] });
  assert.deepEqual(errors, []);
  return { rules, vantage };
}

function natEngine(nat: EngineNatOptions): { engine: ConntrackEngine; lines: string[] } {
  const lines: string[] = [];
  const engine = new ConntrackEngine({
    settings: { udpTimeout: 30, acct: 1 },
    nat,
    onEvent: (event) => lines.push(formatConntrackEvent(event, { timestamp: false })),
  });
  return { engine, lines };
}

test("MASQUERADE: the reply tuple goes to the router; an inside capture's reply finds it", () => {
  const { engine, lines } = natEngine(masquerade());
  assert.equal(
    engine.process(makeUdp({ src: CLIENT, dst: SERVER, sport: 5000, dport: 53, ts: 1 })),
    Verdict.New,
  );
  // Captured on the inside interface: the reply was already translated back to the client.
  assert.equal(
    engine.process(makeUdp({ src: SERVER, dst: CLIENT, sport: 53, dport: 5000, ts: 1.1 })),
    Verdict.Established,
  );
  engine.drain();
  assert.deepEqual(lines, [
    `    [NEW] udp      17 30 src=${CLIENT} dst=${SERVER} sport=5000 dport=53 [UNREPLIED] src=${SERVER} dst=${ROUTER} sport=53 dport=5000`,
    ` [UPDATE] udp      17 30 src=${CLIENT} dst=${SERVER} sport=5000 dport=53 src=${SERVER} dst=${ROUTER} sport=53 dport=5000`,
    `[DESTROY] udp      17 src=${CLIENT} dst=${SERVER} sport=5000 dport=53 packets=1 bytes=38 src=${SERVER} dst=${ROUTER} sport=53 dport=5000 packets=1 bytes=38`,
  ]);
  assert.equal(engine.stats.nat.translated, 1);
  assert.equal(engine.stats.nat.insideMatches, 1);
  assert.equal(engine.stats.connectionsCreated, 1);
});

test("arrival vantage: replies are matched as they reach the router, not translated back", () => {
  const { engine } = natEngine(masquerade("arrival"));
  engine.process(makeUdp({ src: CLIENT, dst: SERVER, sport: 5000, dport: 53, ts: 1 }));
  assert.equal(
    engine.process(makeUdp({ src: SERVER, dst: ROUTER, sport: 53, dport: 5000, ts: 1.1 })),
    Verdict.Established,
  );
  // The translated-back form is a stranger here: a new connection of its own.
  assert.equal(
    engine.process(makeUdp({ src: SERVER, dst: CLIENT, sport: 53, dport: 5000, ts: 1.2 })),
    Verdict.New,
  );
  assert.equal(engine.stats.connectionsCreated, 2);
  assert.equal(engine.stats.nat.insideMatches, 0);
});

test("a port clash moves the second client's port, and its replies still find it", () => {
  const { engine, lines } = natEngine(masquerade());
  engine.process(makeUdp({ src: CLIENT, dst: SERVER, sport: 5000, dport: 53, ts: 1 }));
  engine.process(makeUdp({ src: OTHER_CLIENT, dst: SERVER, sport: 5000, dport: 53, ts: 1.01 }));
  const second = /dst=198\.51\.100\.32 sport=53 dport=(\d+)$/.exec(lines[1]);
  assert.ok(second !== null, lines[1]);
  const movedPort = Number(second[1]);
  assert.notEqual(movedPort, 5000);
  assert.ok(movedPort >= 1024 && movedPort <= 65535);
  assert.equal(engine.stats.nat.ownChoice, 1);
  assert.equal(
    engine.process(makeUdp({ src: SERVER, dst: OTHER_CLIENT, sport: 53, dport: 5000, ts: 1.1 })),
    Verdict.Established,
  );
  assert.match(lines[2], new RegExp(`UPDATE.*src=${OTHER_CLIENT} .*dport=${movedPort}$`));
  // Same run, same choice: the pick is a hash of the original tuple, not random.
  const again = natEngine(masquerade());
  again.engine.process(makeUdp({ src: CLIENT, dst: SERVER, sport: 5000, dport: 53, ts: 1 }));
  again.engine.process(makeUdp({ src: OTHER_CLIENT, dst: SERVER, sport: 5000, dport: 53, ts: 1.01 }));
  assert.equal(again.lines[1], lines[1]);
});

test("MASQUERADE without an address for the packet's family drops the first packet", () => {
  const { rules } = natRulesFromFlags({ masquerade: [`out0=${ROUTER}`] });
  rules.interfaceAddresses.clear();
  const { engine, lines } = natEngine({ rules });
  assert.equal(
    engine.process(makeUdp({ src: CLIENT, dst: SERVER, sport: 5000, dport: 53, ts: 1 })),
    Verdict.Dropped,
  );
  assert.equal(engine.reason, Reason.natDropped);
  assert.deepEqual(lines, []);
  assert.equal(engine.liveConnections, 0);
  assert.equal(engine.stats.nat.dropped, 1);
  assert.equal(engine.stats.reasons.get(Reason.natDropped), 1);
});

test("an ICMP error translated back to the inside client is RELATED to the translated flow", () => {
  const { engine } = natEngine(masquerade());
  engine.process(makeUdp({ src: CLIENT, dst: SERVER, sport: 5000, dport: 9, ts: 1 }));
  const error = makeIcmp({
    src: SERVER,
    dst: CLIENT,
    type: 3,
    code: 3,
    ts: 1.1,
    inner: { src: CLIENT, dst: SERVER, protocol: IPPROTO_UDP, sport: 5000, dport: 9 },
  });
  assert.equal(engine.process(error), Verdict.Related);
  // Addressed to someone else than the flow's inside endpoint: not this flow's error.
  const misdirected = makeIcmp({
    src: SERVER,
    dst: OTHER_CLIENT,
    type: 3,
    code: 3,
    ts: 1.2,
    inner: { src: CLIENT, dst: SERVER, protocol: IPPROTO_UDP, sport: 5000, dport: 9 },
  });
  assert.equal(engine.process(misdirected), Verdict.Invalid);
  assert.equal(engine.reason, Reason.icmpOuterMismatch);
});

test("the inside alias leaves with its connection", () => {
  const { engine } = natEngine(masquerade());
  engine.process(makeUdp({ src: CLIENT, dst: SERVER, sport: 5000, dport: 53, ts: 1 }));
  engine.advanceTo(40, 0);
  assert.equal(engine.liveConnections, 0);
  // Same packet as a reply would have been: now a connection of its own, started by the server.
  assert.equal(
    engine.process(makeUdp({ src: SERVER, dst: CLIENT, sport: 53, dport: 5000, ts: 41 })),
    Verdict.New,
  );
  assert.equal(engine.stats.nat.insideMatches, 0);
});

test("a rule that does not match leaves the reply tuple alone; no NAT option changes nothing", () => {
  const restricted = masquerade("inside", `tcp:10.9.0.0/16@out0=${ROUTER}`);
  const { engine, lines } = natEngine(restricted);
  engine.process(makeUdp({ src: CLIENT, dst: SERVER, sport: 5000, dport: 53, ts: 1 }));
  assert.match(lines[0], new RegExp(`src=${SERVER} dst=${CLIENT} sport=53 dport=5000$`));
  assert.equal(engine.stats.nat.translated, 0);
  assert.throws(
    () => new ConntrackEngine({ nat: { ...restricted, vantage: "outside" as "inside" } }),
    /vantage/,
  );
});
