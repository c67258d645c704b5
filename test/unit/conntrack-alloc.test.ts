import { PerformanceObserver } from "node:perf_hooks";
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConntrackEngine, Verdict } from "../../lib/conntrack/engine.js";
import { makeTcp } from "./conntrack-fixtures.js";

// Sequence numbers of 2^31 or more and engine times past 2^31 ns are what V8 cannot keep as small
// integers: passed to or returned from a call it does not inline, each one is a new heap number (which
// calls it inlines depends on what surrounds them, so this guards the common case, not every one).
test("established TCP with sequence numbers and times past 2^31 allocates nothing per packet", async () => {
  const engine = new ConntrackEngine({ onEvent: () => {} });
  const client = { src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80 };
  const server = { src: "10.0.0.2", dst: "10.0.0.1", sport: 80, dport: 40000 };
  const clientIsn = 0xf0000000;
  const serverIsn = 0x90000000;
  engine.process(makeTcp({ ...client, flags: "S", seq: clientIsn, ts: 1 }));
  engine.process(makeTcp({ ...server, flags: "SA", seq: serverIsn, ack: clientIsn + 1, ts: 1.001 }));
  const data = makeTcp({
    ...client,
    flags: "A",
    seq: clientIsn + 1,
    ack: serverIsn + 1,
    len: 100,
    ts: 1.002,
  });
  const ack = makeTcp({ ...server, flags: "A", seq: serverIsn + 1, ack: clientIsn + 101, ts: 1.002 });
  const exchange = (i: number): void => {
    // Ten microseconds a segment: the clock passes 2^31 ns (about two seconds) early on.
    const tsSec = 5 + Math.floor(i / 100_000);
    const tsNsec = (i % 100_000) * 10_000;
    const seq = (clientIsn + 1 + i * 100) >>> 0;
    data.tsSec = ack.tsSec = tsSec;
    data.tsNsec = tsNsec;
    ack.tsNsec = tsNsec + 5_000;
    data.tcpSeq = seq;
    ack.tcpAck = (seq + 100) >>> 0;
    engine.process(data);
    engine.process(ack);
  };
  let i = 0;
  for (; i < 20_000; i++) exchange(i);

  let collections = 0;
  const observer = new PerformanceObserver((list) => (collections += list.getEntries().length));
  observer.observe({ entryTypes: ["gc"] });
  await new Promise((resolve) => setImmediate(resolve));
  collections = 0;
  for (const end = i + 1_500_000; i < end; i++) exchange(i);
  await new Promise((resolve) => setTimeout(resolve, 50));
  observer.disconnect();

  assert.equal(engine.stats.verdicts[Verdict.Invalid], 0);
  assert.equal(engine.liveConnections, 1);
  // 3 million packets allocating even 16 bytes each would fill the young generation (16 MiB at most)
  // three times over; two collections are tolerated for the engine's own work (recompilation).
  assert.ok(collections <= 2, `garbage collections during the loop: ${collections}`);
});
