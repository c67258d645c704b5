/**
 * CSV event rows and NDJSON event lines written as bytes (lib/report/event-csv.ts, event-json.ts) are
 * the string path's, byte for byte.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConntrackEngine } from "../../lib/conntrack/engine.js";
import { EventCsvEncoder } from "../../lib/report/event-csv.js";
import { EventNdjsonEncoder } from "../../lib/report/event-json.js";
import { eventCsvRow, eventRecord } from "../../lib/report/event-formats.js";
import { randomPacket } from "./conntrack-fixtures.js";
import { Tuple } from "../../lib/conntrack/connection.js";
import { formatIpv6Words } from "../../lib/decode/address.js";
import { writeTupleAddress } from "../../lib/report/conntrack-text.js";

function compare(seed: number, settings: Record<string, number>): number {
  let state = seed;
  const random = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  const encoder = new EventCsvEncoder();
  const ndjson = new EventNdjsonEncoder();
  const buffer = Buffer.alloc(1 << 16);
  let rows = 0;
  const engine = new ConntrackEngine({
    settings: { "net.netfilter.nf_conntrack_tcp_loose": 1, ...settings },
    onEvent: (event) => {
      const length = encoder.encode(event, buffer, 0);
      assert.ok(length <= encoder.maxBytes(event));
      assert.equal(buffer.toString("utf8", 0, length), eventCsvRow(eventRecord(event)), `seed ${seed}`);
      const lineLength = ndjson.encode(event, buffer, 0);
      assert.ok(lineLength <= ndjson.maxBytes(event));
      assert.equal(
        buffer.toString("utf8", 0, lineLength),
        `${JSON.stringify(eventRecord(event))}\n`,
        `seed ${seed} (ndjson)`,
      );
      rows++;
    },
  });
  // Seconds near 0, today, 2^31 and 2^32 (where the fast path hands over to the string path).
  let sec = [0, 1_764_000_000, 2 ** 31 - 3, 2 ** 32 - 3][seed % 4];
  for (let i = 0; i < 800; i++) {
    if (random(30) === 0) sec += 3600 * (1 + random(48));
    else if (random(3) === 0) sec += 1;
    const nsec = [0, 999, 1000, 999_999_999, random(1e9)][random(5)];
    const packet = randomPacket(random);
    packet.tsSec = sec;
    packet.tsNsec = nsec;
    engine.process(packet);
    const connection = engine.lastConnection;
    // Names an input could choose: a delimiter, quotes, non-ASCII, a line break.
    if (connection !== null && random(30) === 0)
      connection.helper = ['x"y', "a,b", "naïve ☃", "line\nbreak", "ftp", "tftp"][random(6)];
  }
  engine.drain();
  return rows;
}

test("CSV rows and NDJSON lines of events as bytes equal the string path's", () => {
  let rows = 0;
  for (let seed = 1; seed <= 8; seed++)
    rows += compare(seed, {
      "net.netfilter.nf_conntrack_acct": seed % 2,
      "net.netfilter.nf_conntrack_timestamp": (seed >> 1) % 2,
    });
  assert.ok(rows > 2000, `only ${rows} rows`);
});

test("an IPv6 address written as bytes is formatIpv6Words's text (zero runs, IPv4-mapped and -compatible forms)", () => {
  let state = 7;
  const random = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  // Groups mostly zero, so that runs of every length and place occur; some all-ones and mapped forms.
  const group = (): number => [0, 0, 0, 1, 0xffff, 0xdb8, random(0x10000)][random(7)];
  const tuple = new Tuple();
  tuple.family = 6;
  const buffer = Buffer.alloc(64);
  const cases: number[][] = [
    [0, 0, 0, 0],
    [0, 0, 0, 1],
    [0, 0, 0xffff, 0xc0000209],
    [0, 0, 0, 0xc0000209],
    [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
    [0x20010db8, 0, 0, 1],
    [0x20010db8, 0x10000, 0, 0],
  ];
  for (let i = 0; i < 5000; i++) cases.push([0, 0, 0, 0].map(() => ((group() << 16) | group()) >>> 0));
  for (const [w0, w1, w2, w3] of cases) {
    tuple.src0 = w0;
    tuple.src1 = w1;
    tuple.src2 = w2;
    tuple.src3 = w3;
    const end = writeTupleAddress(buffer, 0, tuple, true);
    assert.equal(buffer.toString("latin1", 0, end), formatIpv6Words(w0, w1, w2, w3), [w0, w1, w2, w3].join());
  }
});
