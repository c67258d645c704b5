/**
 * Golden tests: our events for each recorded sample (samples/<scenario>/inside.pcap under the
 * router's sysctl.txt) against the kernel's own `conntrack -E -o timestamp` recording.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { compareEventStreams, parseEventText } from "./event-comparison.js";
import { registerSampleTests } from "./sample-golden.js";

registerSampleTests(fileURLToPath(new URL("../../../samples", import.meta.url)));

// ------------------------------------------------------------------ the comparison can fail

const KERNEL = [
  "[1764000000.100000]\t    [NEW] tcp      6 5 SYN_SENT src=10.1.2.3 dst=203.0.113.47 sport=40000 dport=7000 [UNREPLIED] src=203.0.113.47 dst=10.1.2.3 sport=7000 dport=40000",
  "[1764000000.100100]\t [UPDATE] tcp      6 4 SYN_RECV src=10.1.2.3 dst=203.0.113.47 sport=40000 dport=7000 src=203.0.113.47 dst=10.1.2.3 sport=7000 dport=40000",
  "[1764000000.100200]\t [UPDATE] tcp      6 30 ESTABLISHED src=10.1.2.3 dst=203.0.113.47 sport=40000 dport=7000 src=203.0.113.47 dst=10.1.2.3 sport=7000 dport=40000 [ASSURED]",
  "[1764000030.120000]\t[DESTROY] tcp      6 ESTABLISHED src=10.1.2.3 dst=203.0.113.47 sport=40000 dport=7000 packets=3 bytes=180 src=203.0.113.47 dst=10.1.2.3 sport=7000 dport=40000 packets=1 bytes=60 [ASSURED] delta-time=30",
];

test("the comparison accepts the allowed tolerances and nothing else", () => {
  const ours = [...KERNEL];
  // Ours: a full 5 where the kernel printed 4 after a tick; our DESTROY 20 ms before the GC's.
  ours[1] = ours[1].replace(" 4 SYN_RECV", " 5 SYN_RECV");
  ours[3] = ours[3].replace("1764000030.120000", "1764000030.100200");
  const comparison = compareEventStreams(parseEventText(KERNEL.join("\n")), parseEventText(ours.join("\n")));
  assert.deepEqual(comparison.differences, []);
  assert.equal(comparison.timeoutOneShort, 1);
  assert.equal(comparison.maxGcLateUs, 19_800);
  assert.equal(comparison.connections, 1);
});

test("the comparison reports an altered kernel line", () => {
  const altered = [...KERNEL];
  altered[2] = altered[2].replace("ESTABLISHED", "FIN_WAIT").replace(" 30 ", " 28 ");
  altered[3] = altered[3].replace("packets=1 bytes=60", "packets=2 bytes=120");
  const comparison = compareEventStreams(
    parseEventText(altered.join("\n")),
    parseEventText(KERNEL.join("\n")),
  );
  const key = "tcp src=10.1.2.3 dst=203.0.113.47 sport=40000 dport=7000 (connection 1)";
  assert.deepEqual(
    comparison.differences.map((difference) => difference.split("\n")[0]),
    [
      `${key} event 3: state: kernel FIN_WAIT, ours ESTABLISHED; timeout: kernel 28, ours 30`,
      `${key} event 4: reply counters: kernel packets=2 bytes=120, ours packets=1 bytes=60`,
    ],
  );
});

test("the comparison reports missing and extra events, early DESTROYs and the helper field", () => {
  const kernel = parseEventText(KERNEL.join("\n"));
  const key = "tcp src=10.1.2.3 dst=203.0.113.47 sport=40000 dport=7000 (connection 1)";
  const missing = compareEventStreams(kernel, kernel.slice(0, 3));
  assert.deepEqual(missing.differences, [`${key}: missing event, kernel has: ${KERNEL[3]}`]);

  // Our DESTROY after the kernel's: we would have kept a connection the kernel had already dropped.
  const late = [...KERNEL];
  late[3] = late[3].replace("1764000030.120000", "1764000030.130000");
  const lateComparison = compareEventStreams(kernel, parseEventText(late.join("\n")));
  assert.equal(lateComparison.differences.length, 1);
  assert.match(lateComparison.differences[0], /event 4: time: ours 10\.000 ms after the kernel's/);

  // A NEW 6 ms before the kernel printed it is beyond the listener's read lag; 4 ms is within it.
  const early = [...KERNEL];
  early[0] = early[0].replace("1764000000.100000", "1764000000.094000");
  assert.match(
    compareEventStreams(kernel, parseEventText(early.join("\n"))).differences[0],
    /event 1: time: kernel 6\.000 ms after ours \(beyond the listener's read lag\)/,
  );
  early[0] = KERNEL[0].replace("1764000000.100000", "1764000000.096000");
  const withinLag = compareEventStreams(kernel, parseEventText(early.join("\n")));
  assert.deepEqual(withinLag.differences, []);
  assert.equal(withinLag.maxListenerLagUs, 4_000);

  const withHelper = KERNEL.map((line) => (line.includes("DESTROY") ? line : `${line} helper=ftp`));
  const helperKernel = parseEventText(withHelper.join("\n"));
  assert.equal(compareEventStreams(helperKernel, kernel).differences.length, 3);
  assert.deepEqual(compareEventStreams(helperKernel, kernel, { ignoreHelper: true }).differences, []);
});
