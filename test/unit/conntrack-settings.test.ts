import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_SETTINGS, makeSettings, parseSysctl } from "../../lib/conntrack/settings.js";
import { ConntrackEngine } from "../../lib/conntrack/engine.js";
import { makeUdp } from "./conntrack-fixtures.js";

test("kernel defaults", () => {
  assert.equal(DEFAULT_SETTINGS.tcpTimeoutEstablished, 432000);
  assert.equal(DEFAULT_SETTINGS.tcpTimeoutSynSent, 120);
  assert.equal(DEFAULT_SETTINGS.udpTimeoutStream, 120);
  assert.equal(DEFAULT_SETTINGS.genericTimeout, 600);
  assert.equal(DEFAULT_SETTINGS.tcpMaxRetrans, 3);
  assert.equal(DEFAULT_SETTINGS.tcpLoose, 1);
});

test("parseSysctl reads sysctl -a lines with or without spaces, ignores others, reports unknown", () => {
  const text = [
    "kernel.hostname = box",
    "net.netfilter.nf_conntrack_tcp_timeout_established = 7200",
    "net.netfilter.nf_conntrack_udp_timeout=15",
    "net.netfilter.nf_conntrack_acct = 1",
    "net.netfilter.nf_conntrack_max = 262144",
    "net.netfilter.nf_conntrack_sctp_timeout_closed = 10",
    "net.netfilter.nf_conntrack_frobnicate = 3",
    "net.netfilter.nf_conntrack_icmp_timeout = soon",
    "",
  ].join("\n");
  const result = parseSysctl(text);
  assert.deepEqual(result.overrides, {
    tcpTimeoutEstablished: 7200,
    udpTimeout: 15,
    acct: 1,
    conntrackMax: 262144,
  });
  assert.deepEqual(result.unknown, ["net.netfilter.nf_conntrack_frobnicate"]);
  assert.deepEqual(result.invalid, [{ line: 8, text: "net.netfilter.nf_conntrack_icmp_timeout = soon" }]);
});

test("overrides by sysctl name or field; unknown names rejected", () => {
  const s = makeSettings({ "net.netfilter.nf_conntrack_udp_timeout": 5, tcpLoose: 0 });
  assert.equal(s.udpTimeout, 5);
  assert.equal(s.tcpLoose, 0);
  assert.throws(() => makeSettings({ "net.netfilter.nf_conntrack_nope": 1 }), /unknown conntrack setting/);
  const engine = new ConntrackEngine({
    settings: parseSysctl("net.netfilter.nf_conntrack_udp_timeout = 5").overrides,
  });
  engine.process(makeUdp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2, ts: 10 }));
  engine.advanceTo(14, 999999999);
  assert.equal(engine.liveConnections, 1);
  engine.advanceTo(15, 0);
  assert.equal(engine.liveConnections, 0);
});
