/**
 * Golden tests against the kernel recordings without NAT: replaying either capture of an FTP or TFTP
 * sample must give the recorded connection events (with `helper=`) and expectation events line for
 * line (timestamp prefixes aside), and every data connection must be linked to its control connection.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parseSysctl } from "../../lib/conntrack/settings.js";
import { replayCaptures } from "../../lib/pipeline/replay.js";
import { formatConntrackEvent } from "../../lib/report/conntrack-text.js";
import { formatExpectEvent } from "../../lib/report/expect-text.js";

const SAMPLES = new URL("../../../samples/", import.meta.url);

function recordedLines(path: URL): string[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => line.replace(/^\[[^\]]*\]\t/, ""));
}

async function replay(sample: string, capture: string) {
  const folder = new URL(`${sample}/`, SAMPLES);
  const { overrides } = parseSysctl(readFileSync(new URL("sysctl.txt", folder), "utf8"));
  const connectionLines: string[] = [];
  const expectLines: string[] = [];
  /** [id, master id, original destination port] of every connection, in creation order. */
  const created: [number, number, number][] = [];
  const { engine } = await replayCaptures([new URL(capture, folder).pathname], {
    settings: overrides,
    drain: true,
    onEvent: (event) => {
      connectionLines.push(formatConntrackEvent(event, { timestamp: false }));
      const c = event.connection;
      if (event.type === "NEW") created.push([c.id, c.masterId, c.original.dstPort]);
    },
    onExpectEvent: (event) => expectLines.push(formatExpectEvent(event, { timestamp: false })),
  });
  return {
    engine,
    connectionLines,
    expectLines,
    created,
    kernelConnections: recordedLines(new URL("conntrack-events.txt", folder)),
    kernelExpectations: recordedLines(new URL("expect-events.txt", folder)),
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
      assert.deepEqual(run.connectionLines, run.kernelConnections);
      assert.deepEqual(run.expectLines, run.kernelExpectations);
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
