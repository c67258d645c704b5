/**
 * The seed's FTP walk-through: an active FTP session from 10.1.2.3 behind a MASQUERADE router
 * (198.51.100.32) to 203.0.113.47, whose data connection from port 20 the seed shows going NEW
 * SYN_SENT, SYN_RECV, ESTABLISHED [ASSURED], FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, DESTROY.
 * samples/ftp-active-close-wait is a kernel recording of that path (the client acks the server's FIN
 * before it sends its own); both the kernel's events and ours must give the seed's sequence for every
 * data connection, with the seed's tuples, RELATED to the control connection, and the expectation the
 * seed reads from /proc/net/nf_conntrack_expect.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { replayCaptures } from "../../lib/pipeline/replay.js";
import { formatConntrackEvent } from "../../lib/report/conntrack-text.js";
import { formatExpectProcLine } from "../../lib/report/expect-text.js";
import { settingsFromArguments } from "../../cli/commands/events.js";
import { parseEventLine, type ParsedEvent } from "./event-comparison.js";
import { natOptionsFor } from "./sample-golden.js";

const SAMPLE = fileURLToPath(new URL("../../../samples/ftp-active-close-wait", import.meta.url));

/** The seed's data connection, as it prints it (timeouts of its kernel's defaults; port 41603). */
const SEED_DATA_CONNECTION = [
  "    [NEW] tcp      6 120 SYN_SENT src=203.0.113.47 dst=198.51.100.32 sport=20 dport=41603 [UNREPLIED] src=10.1.2.3 dst=203.0.113.47 sport=41603 dport=20",
  " [UPDATE] tcp      6 60 SYN_RECV src=203.0.113.47 dst=198.51.100.32 sport=20 dport=41603 src=10.1.2.3 dst=203.0.113.47 sport=41603 dport=20",
  " [UPDATE] tcp      6 432000 ESTABLISHED src=203.0.113.47 dst=198.51.100.32 sport=20 dport=41603 src=10.1.2.3 dst=203.0.113.47 sport=41603 dport=20 [ASSURED]",
  " [UPDATE] tcp      6 120 FIN_WAIT src=203.0.113.47 dst=198.51.100.32 sport=20 dport=41603 src=10.1.2.3 dst=203.0.113.47 sport=41603 dport=20 [ASSURED]",
  " [UPDATE] tcp      6 60 CLOSE_WAIT src=203.0.113.47 dst=198.51.100.32 sport=20 dport=41603 src=10.1.2.3 dst=203.0.113.47 sport=41603 dport=20 [ASSURED]",
  " [UPDATE] tcp      6 30 LAST_ACK src=203.0.113.47 dst=198.51.100.32 sport=20 dport=41603 src=10.1.2.3 dst=203.0.113.47 sport=41603 dport=20 [ASSURED]",
  " [UPDATE] tcp      6 120 TIME_WAIT src=203.0.113.47 dst=198.51.100.32 sport=20 dport=41603 src=10.1.2.3 dst=203.0.113.47 sport=41603 dport=20 [ASSURED]",
  "[DESTROY] tcp      6 src=203.0.113.47 dst=198.51.100.32 sport=20 dport=41603 src=10.1.2.3 dst=203.0.113.47 sport=41603 dport=20 [ASSURED]",
].map((line) => parseEventLine(`[0.000000]\t${line}`));
const SEED_EXPECT_PROC_LINE =
  "295 l3proto = 2 proto=6 src=203.0.113.47 dst=198.51.100.32 sport=0 dport=41603 ftp";
const SEED_DATA_PORT = "41603";

/**
 * What the seed shows of one event: type, state, flags and tuples with the data port as `PORT`. The
 * seed's kernel printed no state on DESTROY (6.x prints the last one), and timeouts are its defaults.
 */
function shape(event: ParsedEvent, dataPort: string): string {
  const state = event.type === "DESTROY" ? "" : ` ${event.state}`;
  const flags = `${event.unreplied ? " [UNREPLIED]" : ""}${event.assured ? " [ASSURED]" : ""}`;
  const tuples = `${event.original} | ${event.reply}`.replaceAll(`=${dataPort}`, "=PORT");
  return `${event.type}${state}${flags} ${tuples}`;
}

/** Events of each connection whose original source port is 20 (the data connections), in order. */
function dataConnections(events: ParsedEvent[]): Map<string, ParsedEvent[]> {
  const byTuple = new Map<string, ParsedEvent[]>();
  for (const event of events) {
    if (!/ sport=20 /.test(` ${event.original} `)) continue;
    const list = byTuple.get(event.original) ?? [];
    list.push(event);
    byTuple.set(event.original, list);
  }
  return byTuple;
}

function dataPortOf(original: string): string {
  const port = /dport=(\d+)/.exec(original);
  assert.ok(port !== null, original);
  return port[1];
}

const SEED_SHAPE = SEED_DATA_CONNECTION.map((event) => shape(event, SEED_DATA_PORT));

test("the seed's data connection shape reads as the walk-through describes it", () => {
  assert.deepEqual(
    SEED_DATA_CONNECTION.map((event) => `${event.type} ${event.state ?? "-"}`),
    [
      "NEW SYN_SENT",
      "UPDATE SYN_RECV",
      "UPDATE ESTABLISHED",
      "UPDATE FIN_WAIT",
      "UPDATE CLOSE_WAIT",
      "UPDATE LAST_ACK",
      "UPDATE TIME_WAIT",
      "DESTROY -",
    ],
  );
  // The shape can fail: the recorded ftp-active, whose client sent its FIN with the ack, skips CLOSE_WAIT.
  const otherPath = readFileSync(join(SAMPLE, "..", "ftp-active", "conntrack-events.txt"), "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map(parseEventLine);
  const [[original, events]] = [...dataConnections(otherPath)];
  assert.notDeepEqual(
    events.map((event) => shape(event, dataPortOf(original))),
    SEED_SHAPE,
  );
});

test("ftp-active-close-wait: the kernel's data connections take the seed's path", () => {
  const kernel = readFileSync(join(SAMPLE, "conntrack-events.txt"), "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map(parseEventLine);
  const connections = dataConnections(kernel);
  assert.equal(connections.size, 2, "LIST and RETR");
  for (const [original, events] of connections) {
    assert.deepEqual(
      events.map((event) => shape(event, dataPortOf(original))),
      SEED_SHAPE,
      original,
    );
  }
});

test("ftp-active-close-wait: our data connections take the seed's path, RELATED to the control connection", async () => {
  const metadata = JSON.parse(readFileSync(join(SAMPLE, "scenario.json"), "utf8"));
  const settings = await settingsFromArguments({ sysctl: join(SAMPLE, "sysctl.txt"), hz: 250 }, (warning) =>
    assert.fail(warning),
  );
  const ours: ParsedEvent[] = [];
  const masters = new Map<string, number>();
  let controlId = 0;
  const procLines: string[] = [];
  const result = await replayCaptures([join(SAMPLE, "inside.pcap")], {
    settings,
    nat: natOptionsFor(metadata),
    drain: true,
    onEvent: (event) => {
      const parsed = parseEventLine(formatConntrackEvent(event));
      ours.push(parsed);
      if (event.connection.helper === "ftp") controlId = event.connection.id;
      if (event.type === "NEW") masters.set(parsed.original, event.connection.masterId);
    },
    onExpectEvent: (event) => {
      // The seed read the expectation from /proc while it was live: as the table shows it when made.
      if (event.type === "NEW")
        procLines.push(formatExpectProcLine(event.expectation, { now: event.expectation.createdAt }));
    },
  });
  assert.deepEqual(result.warnings, []);
  const connections = dataConnections(ours);
  assert.equal(connections.size, 2, "LIST and RETR");
  assert.notEqual(controlId, 0);
  for (const [original, events] of connections) {
    const dataPort = dataPortOf(original);
    assert.deepEqual(
      events.map((event) => shape(event, dataPort)),
      SEED_SHAPE,
      original,
    );
    assert.equal(masters.get(original), controlId, `${original} is RELATED to the control connection`);
  }
  // The seed's /proc line but for the port and the remaining seconds (its 295: five seconds old).
  assert.equal(procLines.length, 2);
  for (const [i, original] of [...connections.keys()].entries()) {
    const dataPort = dataPortOf(original);
    assert.equal(
      procLines[i].replace(/^\d+ /, "295 ").replaceAll(`=${dataPort} `, `=${SEED_DATA_PORT} `),
      SEED_EXPECT_PROC_LINE,
    );
  }
});
