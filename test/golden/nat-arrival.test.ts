/**
 * Golden tests for configured NAT seen as packets arrive (engine `nat.vantage: "arrival"`): for each
 * MASQUERADE recording, the packets that reached the router (the client's frames from the inside
 * capture, the server's from the outside capture) replayed with the router's rule must give the
 * kernel's connection and expectation events. In the FTP recordings the client's PORT is rewritten
 * 5 bytes longer (10,1,2,3 → 198,51,100,32) and the server's acknowledgements arrive in the shifted
 * sequence space: the model's sequence adjustment must take it off (no packet invalid).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { replayCaptures } from "../../lib/pipeline/replay.js";
import { ConntrackEngine, Verdict } from "../../lib/conntrack/engine.js";
import { formatConntrackEvent } from "../../lib/report/conntrack-text.js";
import { formatExpectEvent } from "../../lib/report/expect-text.js";
import { settingsFromArguments } from "../../cli/commands/events.js";
import {
  compareEventStreams,
  compareExpectStreams,
  parseEventLine,
  parseEventText,
  parseExpectLine,
  type ExpectLine,
} from "./event-comparison.js";
import { NAT_KNOWN_DIFFERENCES, natOptionsFor, recordedSamples } from "./sample-golden.js";

const SAMPLES_DIR = fileURLToPath(new URL("../../../samples", import.meta.url));
/** Fixed MAC addresses of samples/record.sh: frames the router received on each interface. */
const CLIENT_MAC = Buffer.from([0x02, 0x00, 0x0a, 0x01, 0x02, 0x03]);
const SERVER_MAC = Buffer.from([0x02, 0x00, 0xcb, 0x00, 0x71, 0x2f]);

/** A classic pcap file with only the Ethernet frames whose source is `mac` (either byte order). */
function framesFrom(file: string, mac: Buffer): Buffer {
  const data = readFileSync(file);
  const magic = data.readUInt32LE(0);
  const littleEndian = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  assert.ok(littleEndian || data.readUInt32BE(0) === 0xa1b2c3d4 || data.readUInt32BE(0) === 0xa1b23c4d, file);
  const kept: Buffer[] = [data.subarray(0, 24)];
  for (let offset = 24; offset + 16 <= data.length;) {
    const captured = littleEndian ? data.readUInt32LE(offset + 8) : data.readUInt32BE(offset + 8);
    const end = offset + 16 + captured;
    assert.ok(end <= data.length, `${file}: record at byte ${offset} runs past the end`);
    if (captured >= 12 && data.subarray(offset + 16 + 6, offset + 16 + 12).equals(mac))
      kept.push(data.subarray(offset, end));
    offset = end;
  }
  return Buffer.concat(kept);
}

const samples = recordedSamples(SAMPLES_DIR).filter((name) => {
  const metadata = JSON.parse(readFileSync(join(SAMPLES_DIR, name, "scenario.json"), "utf8"));
  return metadata.nat === "masquerade";
});

test("MASQUERADE recordings are present for the arrival replay", { skip: samples.length === 0 }, () => {
  assert.ok(samples.length >= 2);
});

for (const name of samples) {
  const randomPort = NAT_KNOWN_DIFFERENCES[name]?.portChosenAtRandom === true;
  const title = `${name}: the packets as they reached the router give the kernel's events (arrival vantage)`;
  const skip =
    randomPort && "the router chose a port at random: the outside arrivals go to a port no rule can predict";
  test(title, { skip }, async (t) => {
    const folder = join(SAMPLES_DIR, name);
    const metadata = JSON.parse(readFileSync(join(folder, "scenario.json"), "utf8"));
    const work = mkdtempSync(join(tmpdir(), "pcc-arrival-"));
    try {
      const inbound = join(work, "inside-arrivals.pcap");
      const outbound = join(work, "outside-arrivals.pcap");
      writeFileSync(inbound, framesFrom(join(folder, "inside.pcap"), CLIENT_MAC));
      writeFileSync(outbound, framesFrom(join(folder, "outside.pcap"), SERVER_MAC));
      const settings = await settingsFromArguments(
        { sysctl: join(folder, "sysctl.txt"), hz: metadata.kernelHz ?? undefined },
        (warning) => assert.fail(warning),
      );
      const nat = natOptionsFor(metadata);
      assert.ok(nat !== null);
      const ours: string[] = [];
      const oursExpect: ExpectLine[] = [];
      const result = await replayCaptures([inbound, outbound], {
        settings,
        nat: { ...nat, vantage: "arrival" },
        drain: true,
        onEvent: (event) => ours.push(formatConntrackEvent(event)),
        onExpectEvent: (event) =>
          oursExpect.push({
            timeUs: event.tsSec * 1_000_000 + Math.floor(event.tsNsec / 1000),
            text: formatExpectEvent(event, { timestamp: false }),
            cause: event.cause,
          }),
      });
      assert.deepEqual(result.warnings, []);
      const engine: ConntrackEngine = result.engine;
      assert.equal(engine.stats.verdicts[Verdict.Invalid], 0, "no packet invalid");
      assert.equal(engine.stats.nat.insideMatches, 0, "every packet matched by the kernel's own tuples");
      const helpers = engine.stats.helpers;
      t.diagnostic(`NAT helper rewrites ${helpers.natRewrites}, resized ${helpers.natResized}`);
      if (name.startsWith("ftp-active")) assert.ok(helpers.natResized > 0, "PORT rewritten longer");

      const kernel = parseEventText(readFileSync(join(folder, "conntrack-events.txt"), "utf8"));
      const comparison = compareEventStreams(kernel, ours.map(parseEventLine));
      const known = NAT_KNOWN_DIFFERENCES[name];
      const firstLines = comparison.differences.map((difference) => difference.split("\n")[0]);
      if (known !== undefined && firstLines.length > 0) {
        // The same crossing FINs: their order inside the router shows in neither capture.
        assert.equal(firstLines.length, known.differences.length, firstLines.join("\n"));
        known.differences.forEach((pattern, i) => assert.match(firstLines[i], pattern));
      } else {
        assert.deepEqual(comparison.differences, [], comparison.differences.join("\n"));
      }

      const kernelExpect = readFileSync(join(folder, "expect-events.txt"), "utf8")
        .split("\n")
        .filter((line) => line !== "")
        .map(parseExpectLine);
      const expectComparison = compareExpectStreams(kernelExpect, oursExpect);
      assert.deepEqual(expectComparison.differences, [], expectComparison.differences.join("\n"));
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}
