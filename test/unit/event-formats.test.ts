import { test } from "node:test";
import assert from "node:assert/strict";
import { Connection, Status, TcpConnectionState, TcpState, Tuple } from "../../lib/conntrack/connection.js";
import { ConntrackEvent } from "../../lib/conntrack/engine.js";
import {
  EVENT_CSV_COLUMNS,
  JsonArrayFormatter,
  connectionRecord,
  createEventFormatter,
  csvRow,
  eventRecord,
  formatConntrackListLine,
  isoTimeNs,
  tupleRecord,
} from "../../lib/report/event-formats.js";
import { parseAddress } from "./conntrack-fixtures.js";

function setTuple(
  tuple: Tuple,
  protocol: number,
  src: string,
  dst: string,
  sport: number,
  dport: number,
): void {
  const bytes = new Uint8Array(16);
  const words = () =>
    [0, 1, 2, 3].map(
      (i) =>
        ((bytes[4 * i] << 24) | (bytes[4 * i + 1] << 16) | (bytes[4 * i + 2] << 8) | bytes[4 * i + 3]) >>> 0,
    );
  tuple.protocol = protocol;
  tuple.family = parseAddress(src, bytes);
  [tuple.src0, tuple.src1, tuple.src2, tuple.src3] = words();
  parseAddress(dst, bytes);
  [tuple.dst0, tuple.dst1, tuple.dst2, tuple.dst3] = words();
  if (tuple.family === 4) tuple.src1 = tuple.src2 = tuple.src3 = tuple.dst1 = tuple.dst2 = tuple.dst3 = 0;
  tuple.srcPort = sport;
  tuple.dstPort = dport;
}

function tcpConnection(): Connection {
  const c = new Connection();
  c.id = 7;
  setTuple(c.original, 6, "127.0.0.1", "127.0.0.1", 55102, 5555);
  setTuple(c.reply, 6, "127.0.0.1", "127.0.0.1", 5555, 55102);
  c.tcp = new TcpConnectionState();
  c.tcp.state = TcpState.Established;
  c.status = Status.SeenReply | Status.Assured;
  c.originalPackets = 3;
  c.originalBytes = 165;
  c.replyPackets = 2;
  c.replyBytes = 112;
  return c;
}

test("conntrack -L line matches what conntrack 1.4.7 printed on a 6.18 kernel", () => {
  // Recorded here: `conntrack -L` with nf_conntrack_acct=1 and nf_conntrack_timestamp=1, just after
  // the handshake of a loopback connection (432000 s timeout, one tick gone).
  const c = tcpConnection();
  const now = 5.5e9;
  c.startedAt = now - 1e6;
  c.expiresAt = now + 432000e9 - 4e6;
  assert.equal(
    formatConntrackListLine(c, { now, accounting: true, timestamps: true, hz: 250 }),
    "tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=55102 dport=5555 packets=3 bytes=165 " +
      "src=127.0.0.1 dst=127.0.0.1 sport=5555 dport=55102 packets=2 bytes=112 [ASSURED] mark=0 delta-time=0 use=1",
  );
  // Without accounting and timestamps, unreplied, with a helper, past its expiry (clamped to 0).
  c.status = 0;
  c.helper = "ftp";
  c.expiresAt = now - 1e9;
  assert.equal(
    formatConntrackListLine(c, { now, accounting: false, timestamps: false, hz: 250 }),
    "tcp      6 0 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=55102 dport=5555 [UNREPLIED] " +
      "src=127.0.0.1 dst=127.0.0.1 sport=5555 dport=55102 mark=0 helper=ftp use=1",
  );
});

test("tuples carry the fields of their protocol only", () => {
  const tuple = new Tuple();
  setTuple(tuple, 58, "2001:db8:1::3", "2001:db8:2::47", 0x1234, (128 << 8) | 0);
  assert.deepEqual(tupleRecord(tuple), {
    src: "2001:db8:1::3",
    dst: "2001:db8:2::47",
    type: 128,
    code: 0,
    id: 4660,
  });
  setTuple(tuple, 47, "10.0.0.1", "10.0.0.2", 0, 0x2a);
  assert.deepEqual(tupleRecord(tuple), { src: "10.0.0.1", dst: "10.0.0.2", srckey: "0x0", dstkey: "0x2a" });
  setTuple(tuple, 89, "10.0.0.1", "10.0.0.2", 0, 0);
  assert.deepEqual(tupleRecord(tuple), { src: "10.0.0.1", dst: "10.0.0.2" });
});

function destroyEvent(): ConntrackEvent {
  const event = new ConntrackEvent();
  event.type = "DESTROY";
  event.connection = tcpConnection();
  event.tsSec = 1764000000;
  event.tsNsec = 4_567_891;
  event.state = TcpState.TimeWait;
  event.timeout = -1;
  event.seenReply = true;
  event.assured = true;
  event.hasCounters = true;
  event.originalPackets = 3;
  event.originalBytes = 165;
  event.replyPackets = 2;
  event.replyBytes = 112;
  event.deltaTime = 5;
  event.destroyCause = "expired";
  return event;
}

test("an event record copies every field, absent ones as null", () => {
  assert.deepEqual(eventRecord(destroyEvent()), {
    time: "2025-11-24T16:00:00.004567891Z",
    epoch: 1764000000.004567,
    type: "DESTROY",
    protocol: "tcp",
    protocolNumber: 6,
    timeout: null,
    state: "TIME_WAIT",
    original: { src: "127.0.0.1", dst: "127.0.0.1", sport: 55102, dport: 5555 },
    reply: { src: "127.0.0.1", dst: "127.0.0.1", sport: 5555, dport: 55102 },
    flags: ["ASSURED"],
    originalPackets: 3,
    originalBytes: 165,
    replyPackets: 2,
    replyBytes: 112,
    deltaTime: 5,
    helper: null,
    id: 7,
    masterId: null,
    cause: "expired",
  });
});

test("formatters: text, csv with header, ndjson, json array", () => {
  const event = destroyEvent();
  const text = createEventFormatter("text");
  assert.equal(
    text.header() + text.format(event) + text.footer(),
    "[1764000000.004567]\t[DESTROY] tcp      6 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=55102 dport=5555 " +
      "packets=3 bytes=165 src=127.0.0.1 dst=127.0.0.1 sport=5555 dport=55102 packets=2 bytes=112 [ASSURED] delta-time=5\n",
  );
  assert.ok(createEventFormatter("text", { timestamp: false }).format(event).startsWith("[DESTROY] tcp"));

  const csv = createEventFormatter("csv");
  assert.equal(csv.header(), `${EVENT_CSV_COLUMNS.join(",")}\n`);
  assert.equal(
    csv.format(event),
    "2025-11-24T16:00:00.004567891Z,1764000000.004567,DESTROY,tcp,6,,TIME_WAIT," +
      "127.0.0.1,127.0.0.1,55102,5555,,,,,,127.0.0.1,127.0.0.1,5555,55102,,,,,,ASSURED,3,165,2,112,5,,7,,expired\n",
  );
  assert.equal(csv.footer(), "");

  const ndjson = createEventFormatter("ndjson");
  assert.deepEqual(JSON.parse(ndjson.format(event)), eventRecord(event));

  const json = createEventFormatter("json");
  const whole = json.header() + json.format(event) + json.format(event) + json.footer();
  assert.deepEqual(JSON.parse(whole), [eventRecord(event), eventRecord(event)]);
  const empty = new JsonArrayFormatter((x: number) => x);
  assert.equal(empty.header() + empty.footer(), "[]\n");
});

test("csv cells with separators or quotes are quoted", () => {
  assert.equal(csvRow(["a,b", 'say "hi"', null, 3]), '"a,b","say ""hi""",,3\n');
});

test("a table entry as a record: remaining time, counters and delta-time as conntrack -L", () => {
  const c = tcpConnection();
  c.startedAt = 0.9e9;
  c.expiresAt = 30e9;
  const record = connectionRecord(c, { now: 1.2e9, accounting: true, timestamps: true, hz: 100 });
  assert.equal(record.timeout, 28);
  assert.equal(record.deltaTime, 1);
  assert.deepEqual(record.flags, ["ASSURED"]);
  assert.equal(record.originalBytes, 165);
  const bare = connectionRecord(c, { now: 31e9, accounting: false, timestamps: false, hz: 100 });
  assert.equal(bare.timeout, 0);
  assert.equal(bare.originalBytes, null);
  assert.equal(bare.deltaTime, null);
});

test("isoTimeNs: ISO 8601 with nine digits of nanoseconds, whatever second came before", () => {
  const reference = (sec: number, nsec: number): string =>
    `${new Date(sec * 1000).toISOString().slice(0, 19)}.${String(nsec).padStart(9, "0")}Z`;
  assert.equal(isoTimeNs(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
  assert.equal(isoTimeNs(0, 999_999_999), "1970-01-01T00:00:00.999999999Z");
  // Seconds 512 apart share a cache slot; far years print as Date prints them.
  for (const sec of [1_700_000_000, 1_700_000_512, 1_700_000_000, 253_402_300_800, -1, 4_294_967_295]) {
    for (const nsec of [0, 1, 999, 1000, 123_456_789, 999_999_999])
      assert.equal(isoTimeNs(sec, nsec), reference(sec, nsec), `${sec} ${nsec}`);
  }
  let state = 3;
  for (let i = 0; i < 5000; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const sec = 1_600_000_000 + (state % 2000);
    const nsec = Math.imul(state, 2654435761) >>> 0;
    assert.equal(isoTimeNs(sec, nsec % 1e9), reference(sec, nsec % 1e9));
  }
  // Out of range nanoseconds (not from a capture) still print as before: padded, not wrapped.
  assert.equal(isoTimeNs(0, 1_000_000_000), "1970-01-01T00:00:00.1000000000Z");
  assert.throws(() => isoTimeNs(Number.NaN, 0), RangeError);
});
