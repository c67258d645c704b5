/** index.html rendering: packet-derived text is escaped, caps are announced, nothing is fetched. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { renderHtmlReport } from "../../lib/report/html.js";
import { escapeHtml, jsonForScript, safeCsvCell } from "../../lib/report/escape.js";
import type { FlowRecord } from "../../lib/report/flows.js";
import type { ReportSummary } from "../../lib/report/summary.js";

const EVIL = `</script><script>alert(1)</script><img src=x onerror=alert(2)>`;

function summary(): ReportSummary {
  return {
    packets: {
      records: 3,
      classes: { decoded: 3 },
      classReasons: {},
      decoded: 3,
      verdicts: { NEW: 1, ESTABLISHED: 1, INVALID: 1 },
      verdictReasons: { [EVIL]: 1 },
      tcpAcceptedWithoutUpdate: 0,
      earlierThanClock: 0,
      reconciles: { records: true, decoded: true },
    },
    connections: {
      total: 2,
      created: 2,
      liveAtEnd: 0,
      mostLiveAtOnce: 1,
      assured: 0,
      unreplied: 0,
      related: 0,
      byProtocol: { tcp: 2 },
      byFinalState: { "tcp CLOSE": 2 },
      byEndReason: { timeout: 2 },
      byNat: { none: 2 },
    },
    orphans: { total: 1, byKind: { [EVIL]: 1 }, byReason: {} },
    events: { NEW: 2, UPDATE: 0, DESTROY: 2 },
    expectations: { created: 0, used: 0, expired: 0, liveAtEnd: 0, events: { NEW: 0, DESTROY: 0 } },
    topTalkers: [{ address: EVIL, bytes: 1, packets: 1, flows: 1 }],
    topTalkersUndercountAtMost: 0,
    capture: {
      inputs: [{ file: EVIL, records: 3 }],
      firstPacket: "2025-11-24T16:00:00.000000000Z",
      lastPacket: "2025-11-24T16:00:01.000000000Z",
      spanSeconds: 1,
      stoppedEarly: false,
      order: null,
      warnings: [],
    },
    settings: {},
  };
}

function flow(id: number): FlowRecord {
  return {
    id,
    protocol: "tcp",
    protocolNumber: 6,
    family: 4,
    original: { src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2 },
    reply: { src: "10.0.0.2", dst: "10.0.0.1", sport: 2, dport: 1 },
    nat: "none",
    firstPacket: "2025-11-24T16:00:00.000000000Z",
    lastPacket: "2025-11-24T16:00:01.000000000Z",
    duration: 1,
    history: [{ state: "SYN_SENT", time: "2025-11-24T16:00:00.000000000Z", offset: 0 }],
    historyOmitted: 0,
    finalState: "SYN_SENT",
    endReason: "timeout",
    endDetail: "timeout in SYN_SENT",
    endTime: "2025-11-24T16:00:02.000000000Z",
    expiresAt: null,
    expiresIn: null,
    flags: ["UNREPLIED"],
    replyAfter: null,
    assuredAfter: null,
    originalPackets: 1,
    originalBytes: 60,
    replyPackets: 0,
    replyBytes: 0,
    helper: EVIL,
    masterId: null,
    communityId: "1:x",
  };
}

test("escapeHtml, jsonForScript and safeCsvCell", () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  assert.equal(jsonForScript({ s: "</script>&\u2028" }), '{"s":"\\u003c/script\\u003e\\u0026\\u2028"}');
  assert.deepEqual(JSON.parse(jsonForScript({ s: EVIL })), { s: EVIL });
  assert.deepEqual(["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "plain", "", 5, -5, null].map(safeCsvCell), [
    "'=1+2",
    "'+1",
    "'-1",
    "'@SUM(A1)",
    "'\tx",
    "plain",
    "",
    5,
    -5,
    null,
  ]);
});

test("the page escapes packet-derived text and keeps it out of markup", () => {
  const html = renderHtmlReport({
    title: EVIL,
    summary: summary(),
    flows: [flow(1)],
    totalFlows: 2,
    natMappings: [],
    totalNatMappings: 0,
    orphans: [],
    totalOrphans: 1,
    timelineRows: 500,
    generator: "test",
  });
  assert.ok(!html.includes("<img"), "no raw <img");
  assert.ok(!html.includes("alert(1)</script>"), "no script closed by the data");
  assert.equal(html.split("<script").length - 1, 2, "exactly the JSON block and the page script");
  assert.ok(html.includes("&lt;/script&gt;&lt;script&gt;alert(1)"), "the title shows the text");
  assert.ok(html.includes("The page shows the first 1 of 2 connections; flows.csv has them all."));
  assert.ok(!/https?:\/\//.test(html), "no network address in the page");
  assert.ok(html.includes(`id="count-records">3<`));
  assert.ok(html.includes(`id="count-orphans">1<`));
});
