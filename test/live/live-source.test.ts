/**
 * LiveCaptureSource's queue without a network: a stand-in for `cap` (loaded through
 * PCAP_CONNTRACK_CAP) delivers packets as cap does, in one reused buffer, synchronously. Checks
 * that every packet handed out carries the bytes and length it arrived with, that the record in hand
 * survives later arrivals, that a full queue drops and counts instead of growing, and the stop.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CAP_SNAPLEN, LiveCaptureSource, linkTypeFromCap } from "../../lib/capture/live.js";

const directory = mkdtempSync(join(tmpdir(), "pcl-source-"));
after(() => rmSync(directory, { recursive: true, force: true }));

/** The fake: `open` keeps the caller's buffer; `deliver` copies a packet into it and emits, as cap's C++ does. */
const FAKE_CAP = `
const { EventEmitter } = require("node:events");
class Cap extends EventEmitter {
  open(device, filter, bufferSize, buffer) {
    if (filter === "bad") throw new Error("syntax error");
    this.buffer = buffer;
    Cap.last = this;
    return "ETHERNET";
  }
  close() { this.closed = true; return true; }
  deliver(bytes) {
    const n = Math.min(bytes.length, this.buffer.length);
    bytes.copy(this.buffer, 0, 0, n);
    this.emit("packet", n, bytes.length > this.buffer.length);
  }
  static deviceList() { return [{ name: "fake0" }, { name: "lo" }]; }
}
module.exports = { Cap };
`;
const fakePath = join(directory, "fake-cap.cjs");
writeFileSync(fakePath, FAKE_CAP);
process.env.PCAP_CONNTRACK_CAP = fakePath;

interface FakeCap {
  deliver(bytes: Buffer): void;
  closed?: boolean;
}
const { Cap } = (await import(fakePath)) as { Cap: { last: FakeCap } };

/** A packet whose bytes tell its number and length. */
function packet(number: number, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (number * 31 + i) & 0xff;
  return bytes;
}

function recordBytes(source: LiveCaptureSource): Buffer {
  const { data, offset, caplen } = source.record;
  return Buffer.from(data.subarray(offset, offset + caplen));
}

test("cap's link-type names map to LINKTYPE_* values", () => {
  assert.equal(linkTypeFromCap("ETHERNET"), 1);
  assert.equal(linkTypeFromCap("RAW"), 101);
  assert.equal(linkTypeFromCap("LINKTYPE_LINUX_SLL"), 113);
  assert.equal(linkTypeFromCap("Unknown linktype 276"), 276);
});

test("every packet comes out with its bytes, the record in hand survives later arrivals", async (t) => {
  // The smallest queue (two maximal packets), so that it wraps many times.
  const source = LiveCaptureSource.open({ device: "fake0", queueBytes: 1, idleMs: 10_000 });
  t.after(() => source.stop());
  const cap = Cap.last;
  const expected: Buffer[] = [];
  let delivered = 0;
  let dropped = 0;
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  let lastNs = 0;
  /** Whether the last `next()` returned true: its record must stay intact until the next call. */
  let holding = false;
  for (let round = 0; round < 3000; round++) {
    // A burst of arrivals, then some records read; a held record is checked after the burst.
    const held: Buffer | null = holding ? recordBytes(source) : null;
    const burst = Math.floor(random() * 6);
    for (let i = 0; i < burst; i++) {
      const length = random() < 0.1 ? CAP_SNAPLEN : 40 + Math.floor(random() * 1500);
      const bytes = packet(expected.length + dropped, length);
      const before = source.stats().queueDropped;
      cap.deliver(bytes);
      if (source.stats().queueDropped > before) dropped++;
      else expected.push(bytes);
    }
    if (held !== null) assert.deepEqual(recordBytes(source), held, "the record in hand was overwritten");
    const reads = Math.floor(random() * 6);
    for (let i = 0; i < reads && (holding = source.next()); i++) {
      const want = expected[delivered++];
      assert.equal(source.record.caplen, want.length);
      assert.equal(source.record.origlen, want.length);
      assert.deepEqual(recordBytes(source), want, `packet ${delivered}`);
      const ns = source.record.tsSec * 1e9 + source.record.tsNsec;
      assert.ok(ns >= lastNs, "stamps go backwards");
      lastNs = ns;
      assert.equal(source.record.recordNumber, delivered);
    }
  }
  while (source.next()) assert.deepEqual(recordBytes(source), expected[delivered++]);
  assert.equal(delivered, expected.length);
  assert.ok(dropped > 0, "the queue never filled: the test did not reach the drop path");
  const stats = source.stats();
  assert.equal(stats.received, expected.length + dropped);
  assert.equal(stats.queueDropped, dropped);
  assert.equal(stats.kernel, null);
  await source.close();
  assert.equal(cap.closed, true);
});

test("--snaplen cuts what is kept, origlen keeps the wire length", (t) => {
  const source = LiveCaptureSource.open({ device: "fake0", snaplen: 100, idleMs: 10_000 });
  t.after(() => source.stop());
  Cap.last.deliver(packet(1, 1514));
  assert.ok(source.next());
  assert.equal(source.record.caplen, 100);
  assert.equal(source.record.origlen, 1514);
  assert.deepEqual(recordBytes(source), packet(1, 1514).subarray(0, 100));
  source.stop();
});

test("fill waits for a packet or the idle tick, and ends after the stop once the queue is empty", async (t) => {
  const source = LiveCaptureSource.open({ device: "fake0", idleMs: 20 });
  t.after(() => source.stop());
  assert.equal(source.next(), false);
  const waiting = source.fill();
  Cap.last.deliver(packet(1, 60));
  assert.equal(await waiting, true);
  assert.equal(await source.fill(), true, "a queued packet: fill resolves at once");
  assert.ok(source.next());
  assert.equal(await source.fill(), true, "the idle tick resolves an empty wait");
  assert.equal(source.next(), false);
  Cap.last.deliver(packet(2, 60));
  source.stop();
  Cap.last.deliver(packet(3, 60));
  assert.equal(await source.fill(), true, "packets that arrived before the stop are still handed out");
  assert.ok(source.next());
  assert.deepEqual(recordBytes(source), packet(2, 60));
  assert.equal(source.next(), false, "nothing after the stop");
  assert.equal(await source.fill(), false);
});

test("an unknown device names the ones there are; a filter error is reported as such", () => {
  assert.throws(() => LiveCaptureSource.open({ device: "nosuch0" }), {
    name: "LiveCaptureError",
    kind: "no-such-device",
    message: /no interface "nosuch0" to capture on; the interfaces here are: fake0, lo/,
  });
  assert.throws(() => LiveCaptureSource.open({ device: "fake0", filter: "bad" }), {
    kind: "filter",
    message: /filter "bad" does not compile: syntax error/,
  });
});
