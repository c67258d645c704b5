/**
 * Golden tests against the kernel recordings without NAT: replaying either capture of an FTP or TFTP
 * sample must give the recorded connection events (with `helper=`) and expectation events, compared
 * as the golden tests compare them (test/golden/event-comparison.ts: every field, timeouts and stamps
 * within the kernel's own timing), the connection events besides in the kernel's order; and every
 * data connection must be linked to its control connection.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parseSysctl } from "../../lib/conntrack/settings.js";
import { replayCaptures } from "../../lib/pipeline/replay.js";
import { formatConntrackEvent } from "../../lib/report/conntrack-text.js";
import { formatExpectEvent } from "../../lib/report/expect-text.js";
import {
  compareEventStreams,
  compareExpectStreams,
  parseEventLine,
  parseEventText,
  parseExpectLine,
  type ExpectLine,
  type ParsedEvent,
} from "../golden/event-comparison.js";

const SAMPLES = new URL("../../../samples/", import.meta.url);

function recordedLines(path: URL): string[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line !== "");
}

/**
 * Which event came when (type, state, protocol, original tuple; the fields themselves are compared
 * with their tolerances by compareEventStreams), but for natural expiries: the GC worker reports
 * those in hash-bucket order, several in one pass, where ours come in expiry order; their stamps are
 * compared instead (within one GC period after ours).
 */
function inPrintedOrder(events: ParsedEvent[]): string[] {
  return events
    .filter((event) => !(event.type === "DESTROY" && event.timeout === null))
    .map((event) => `${event.type} ${event.state} ${event.protocol} ${event.original}`);
}

async function replay(sample: string, capture: string) {
  const folder = new URL(`${sample}/`, SAMPLES);
  const { overrides } = parseSysctl(readFileSync(new URL("sysctl.txt", folder), "utf8"));
  const connectionLines: string[] = [];
  const expectLines: ExpectLine[] = [];
  /** [id, master id, original destination port] of every connection, in creation order. */
  const created: [number, number, number][] = [];
  const { engine } = await replayCaptures([new URL(capture, folder).pathname], {
    settings: overrides,
    drain: true,
    onEvent: (event) => {
      connectionLines.push(formatConntrackEvent(event));
      const c = event.connection;
      if (event.type === "NEW") created.push([c.id, c.masterId, c.original.dstPort]);
    },
    onExpectEvent: (event) =>
      expectLines.push({
        timeUs: event.tsSec * 1_000_000 + Math.floor(event.tsNsec / 1000),
        text: formatExpectEvent(event, { timestamp: false }),
        cause: event.cause,
      }),
  });
  return {
    engine,
    connections: connectionLines.map(parseEventLine),
    expectations: expectLines,
    created,
    kernelConnections: parseEventText(readFileSync(new URL("conntrack-events.txt", folder), "utf8")),
    kernelExpectations: recordedLines(new URL("expect-events.txt", folder)).map(parseExpectLine),
  };
}

const CASES: [string, number, number][] = [
  // sample, control port, data connections
  ["ftp-active-nat-none", 21, 2],
  ["ftp-passive", 21, 2],
  ["ftp-ipv6-eprt-epsv", 21, 2],
  ["tftp-read", 69, 1],
];

for (const [sample, controlPort, dataConnections] of CASES) {
  for (const capture of ["inside.pcap", "outside.pcap"]) {
    test(`kernel recording ${sample} (${capture}): connection and expectation events, master links`, async () => {
      const run = await replay(sample, capture);
      assert.ok(run.kernelConnections.length > 0 && run.kernelExpectations.length > 0);
      const connections = compareEventStreams(run.kernelConnections, run.connections);
      assert.deepEqual(connections.differences, [], connections.differences.join("\n"));
      assert.deepEqual(inPrintedOrder(run.connections), inPrintedOrder(run.kernelConnections));
      const expectations = compareExpectStreams(run.kernelExpectations, run.expectations);
      assert.deepEqual(expectations.differences, [], expectations.differences.join("\n"));
      const [control, ...data] = run.created;
      assert.equal(control[2], controlPort);
      assert.equal(control[1], 0);
      assert.equal(data.length, dataConnections);
      for (const [, masterId] of data) assert.equal(masterId, control[0]);
      assert.equal(run.engine.stats.expectations.used, dataConnections);
      assert.equal(run.engine.liveExpectations, 0);
    });
  }
}
