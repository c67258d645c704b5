/** CSV event rows written as bytes (lib/report/event-csv.ts) are the string path's rows, byte for byte. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConntrackEngine } from "../../lib/conntrack/engine.js";
import { EventCsvEncoder } from "../../lib/report/event-csv.js";
import { eventCsvRow, eventRecord } from "../../lib/report/event-formats.js";
import { makeGeneric, makeIcmp, makeTcp, makeUdp } from "./conntrack-fixtures.js";

function compare(seed: number, settings: Record<string, number>): number {
  let state = seed;
  const random = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  const encoder = new EventCsvEncoder();
  const buffer = Buffer.alloc(1 << 16);
  let rows = 0;
  const engine = new ConntrackEngine({
    settings: { "net.netfilter.nf_conntrack_tcp_loose": 1, ...settings },
    onEvent: (event) => {
      const length = encoder.encode(event, buffer, 0);
      assert.ok(length <= encoder.maxBytes(event));
      assert.equal(buffer.toString("utf8", 0, length), eventCsvRow(eventRecord(event)), `seed ${seed}`);
      rows++;
    },
  });
  const hosts = ["10.0.0.1", "10.0.0.2", "192.0.2.9", "2001:db8::1", "2001:db8::2", "fe80::9"];
  // Seconds near 0, today, 2^31 and 2^32 (where the fast path hands over to the string path).
  let sec = [0, 1_764_000_000, 2 ** 31 - 3, 2 ** 32 - 3][seed % 4];
  for (let i = 0; i < 800; i++) {
    if (random(30) === 0) sec += 3600 * (1 + random(48));
    else if (random(3) === 0) sec += 1;
    const nsec = [0, 999, 1000, 999_999_999, random(1e9)][random(5)];
    const v6 = random(3) === 0;
    const a = hosts[(v6 ? 3 : 0) + random(3)];
    const b = hosts[(v6 ? 3 : 0) + random(3)];
    const [src, dst] = random(2) === 0 ? [a, b] : [b, a];
    const sport = 1000 + random(4);
    const dport = [80, 53, 1000][random(3)];
    const kind = random(10);
    const packet =
      kind < 5
        ? makeTcp({ src, dst, sport, dport, ts: 1, flags: ["S", "SA", "A", "FA", "R", "PA"][random(6)] })
        : kind < 7
          ? makeUdp({ src, dst, sport, dport, ts: 1 })
          : kind < 9
            ? makeIcmp({
                src,
                dst,
                type: v6 ? [128, 129][random(2)] : [8, 0][random(2)],
                id: random(3),
                ts: 1,
              })
            : makeGeneric({ src, dst, protocol: [47, 132, 99][random(3)], ts: 1 });
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

test("CSV event rows as bytes equal eventCsvRow of the event's record", () => {
  let rows = 0;
  for (let seed = 1; seed <= 8; seed++)
    rows += compare(seed, {
      "net.netfilter.nf_conntrack_acct": seed % 2,
      "net.netfilter.nf_conntrack_timestamp": (seed >> 1) % 2,
    });
  assert.ok(rows > 2000, `only ${rows} rows`);
});
