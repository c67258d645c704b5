import { test } from "node:test";
import assert from "node:assert/strict";
import { PerformanceObserver } from "node:perf_hooks";
import { PacketDecoder } from "../../lib/decode/decoder.js";
import type { CaptureRecord } from "../../lib/capture/source.js";
import {
  echoRest,
  ethernet,
  extensionHeader,
  icmp,
  ipv4,
  ipv6,
  record,
  sll2,
  tcp,
  udp,
} from "./packet-builders.js";

function mixedRecords(): CaptureRecord[] {
  const options = [
    2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2,
  ];
  const frames: [number, Buffer][] = [
    [1, ethernet(0x0800, ipv4({}, tcp({ options }, Array(100).fill(7))))],
    [1, ethernet(0x0800, ipv4({ protocol: 17 }, udp(53, 53, [1, 2, 3])), [[0x8100, 10]])],
    [1, ethernet(0x86dd, ipv6({ nextHeader: 0 }, [...extensionHeader(6, 0, 8), ...tcp({})]))],
    [1, ethernet(0x0800, ipv4({ protocol: 1 }, icmp(3, 3, [0, 0, 0, 0], ipv4({ protocol: 17 }, udp(1, 2)))))],
    [1, ethernet(0x86dd, ipv6({ nextHeader: 58 }, icmp(128, 0, echoRest(1, 2))))],
    [276, sll2(0, 0x0800, 3, ipv4({ protocol: 47 }, [0x20, 0, 8, 0, 0, 0, 0, 1]))],
    [1, ethernet(0x0800, ipv4({ ihl: 4 }, tcp({})))],
    [1, ethernet(0x0806, Buffer.alloc(28))],
    [105, Buffer.alloc(40)],
  ];
  return frames.map(([linkType, frame]) => record(linkType, frame));
}

test("steady-state decoding triggers no garbage collection (allocates nothing per packet)", async () => {
  const decoder = new PacketDecoder();
  const records = mixedRecords();
  let sink = 0;
  for (let i = 0; i < 200_000; i++) sink += decoder.decode(records[i % records.length]);

  let collections = 0;
  const observer = new PerformanceObserver((list) => (collections += list.getEntries().length));
  observer.observe({ entryTypes: ["gc"] });
  await new Promise((resolve) => setImmediate(resolve));
  collections = 0;
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 2_000_000; i++) sink += decoder.decode(records[i % records.length]);
  const after = process.memoryUsage().heapUsed;
  await new Promise((resolve) => setTimeout(resolve, 50));
  observer.disconnect();

  assert.ok(sink > 0);
  // 2 million packets allocating even 16 bytes each would fill the young generation several times
  // over; one collection is tolerated for the engine's own work (recompilation).
  assert.ok(collections <= 1, `garbage collections during the loop: ${collections}`);
  // heapUsed also moves with code the optimiser emits in the background (a loaded machine finishes it at
  // other moments), so the collections above are the sharp test; 4 bytes a packet would still show here.
  assert.ok(after - before < 8_000_000, `heap grew by ${after - before} bytes`);
  assert.equal(decoder.stats.records, 2_200_000);
});
