import { readFile } from "node:fs/promises";
import {
  ConntrackEngine,
  PacketClass,
  PacketDecoder,
  createEventFormatter,
  createExpectEventFormatter,
  forEachRecord,
  openCapture,
  parseSysctl,
  writeReport,
} from "../../lib/index.js";

/** Replays one capture under a router's `sysctl -a` settings, then writes every report of it. */
export async function replayCapture(capture: string, sysctlFile: string, reportDir: string) {
  const settings = parseSysctl(await readFile(sysctlFile, "utf8")).overrides;
  const eventText = createEventFormatter("text"); // `conntrack -E -o timestamp` lines
  const expectText = createExpectEventFormatter("text"); // `conntrack -E expect -o timestamp` lines
  const events: string[] = [];
  const expectations: string[] = [];
  const engine = new ConntrackEngine({
    settings,
    helperPorts: { ftp: [21, 2121] },
    // One event object is reused: format or copy it inside the callback.
    onEvent: (event) => events.push(eventText.format(event)),
    onExpectEvent: (event) => expectations.push(expectText.format(event)),
  });
  const decoder = new PacketDecoder();
  const source = await openCapture(capture); // pcap or pcapng, gzip or not; "-" is standard input
  let lastSec = 0;
  let lastNsec = 0;
  try {
    await forEachRecord(source, (record) => {
      lastSec = record.tsSec;
      lastNsec = record.tsNsec;
      if (decoder.decode(record) === PacketClass.Decoded) engine.process(decoder.packet);
    });
  } finally {
    await source.close();
  }
  decoder.finish();
  engine.advanceTo(lastSec + 1, lastNsec); // the clock runs on: entries expire as time passes
  const liveOneSecondLater = engine.liveConnections;
  engine.drain(); // every entry left expires at its own time, with its DESTROY event

  // The same replay writing flows.csv, flows.ndjson, events.csv, orphans.csv, nat.csv,
  // expectations.csv, summary.json and index.html into reportDir.
  const report = await writeReport([capture], {
    outputDir: reportDir,
    settings,
    helperPorts: { ftp: [21, 2121] },
    drain: true,
  });
  return { events, expectations, liveOneSecondLater, connections: report.summary.connections.total };
}
