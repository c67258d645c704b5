/**
 * `report` over recorded kernel samples: each flow's final state, counters and flags against the
 * kernel's own DESTROY line in conntrack-events.txt, and summary.json's accounting reconciles.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeReport } from "../../lib/pipeline/report.js";
import type { FlowRecord } from "../../lib/report/flows.js";
import type { TupleRecord } from "../../lib/report/event-formats.js";
import { settingsFromArguments } from "../../cli/commands/events.js";
import { parseEventText } from "./event-comparison.js";

const SAMPLES = fileURLToPath(new URL("../../../samples", import.meta.url));
const NAMES = [
  "tcp-client-close",
  "tcp-server-close",
  "tcp-refused",
  "tcp-reset-midstream",
  "tcp-port-reuse-after-timewait",
  "ping-unanswered",
  "ping-ipv6",
  "udp-request-response",
  "udp-stream-assured",
  "icmp-port-unreachable",
  "ftp-passive",
  "tftp-read",
];

function tupleText(tuple: TupleRecord): string {
  return (["src", "dst", "sport", "dport", "type", "code", "id"] as const)
    .filter((key) => tuple[key] !== undefined)
    .map((key) => `${key}=${tuple[key]}`)
    .join(" ");
}

for (const name of NAMES) {
  const directory = join(SAMPLES, name);
  const present = existsSync(join(directory, "conntrack-events.txt"));
  test(
    `report ${name}: flows end as the kernel's DESTROY lines say`,
    { skip: !present && "sample not recorded" },
    async () => {
      const scenario = JSON.parse(readFileSync(join(directory, "scenario.json"), "utf8")) as {
        kernelHz: number | null;
      };
      const settings = await settingsFromArguments(
        { sysctl: join(directory, "sysctl.txt"), hz: scenario.kernelHz ?? undefined },
        () => undefined,
      );
      const out = mkdtempSync(join(tmpdir(), `report-${name}-`));
      try {
        const { summary } = await writeReport([join(directory, "inside.pcap")], {
          outputDir: out,
          settings,
          drain: true,
        });
        const flows = readFileSync(join(out, "flows.ndjson"), "utf8")
          .trim()
          .split("\n")
          .map((line) => JSON.parse(line) as FlowRecord);
        const destroys = parseEventText(readFileSync(join(directory, "conntrack-events.txt"), "utf8")).filter(
          (event) => event.type === "DESTROY",
        );
        assert.equal(flows.length, destroys.length, "one flow per kernel connection");
        const unmatched = [...flows];
        for (const kernel of destroys) {
          const at = unmatched.findIndex((flow) => tupleText(flow.original) === kernel.original);
          assert.ok(at >= 0, `no flow for the kernel's ${kernel.line}`);
          const flow = unmatched.splice(at, 1)[0];
          const label = `${name} connection ${flow.id}`;
          assert.equal(tupleText(flow.reply), kernel.reply, `${label}: reply tuple`);
          if (kernel.state !== null) assert.equal(flow.finalState, kernel.state, `${label}: final state`);
          assert.equal(
            `packets=${flow.originalPackets} bytes=${flow.originalBytes}`,
            kernel.originalCounters,
            `${label}: original counters`,
          );
          assert.equal(
            `packets=${flow.replyPackets} bytes=${flow.replyBytes}`,
            kernel.replyCounters,
            `${label}: reply counters`,
          );
          assert.equal(flow.flags.includes("ASSURED"), kernel.assured, `${label}: ASSURED`);
          assert.equal(flow.flags.includes("UNREPLIED"), kernel.unreplied, `${label}: UNREPLIED`);
          assert.notEqual(flow.endReason, "live", `${label}: drained, so ended`);
          // Our end is the entry's expiry; the kernel's GC reports it up to a few seconds later.
          const endUs =
            Date.parse(flow.endTime!.slice(0, 23) + "Z") * 1000 + Number(flow.endTime!.slice(23, 26));
          assert.ok(
            endUs <= kernel.timeUs + 2_000,
            `${label}: ends ${(endUs - kernel.timeUs) / 1000} ms after the kernel`,
          );
          assert.ok(
            kernel.timeUs - endUs < 3_000_000,
            `${label}: ends ${(kernel.timeUs - endUs) / 1000} ms before the kernel`,
          );
        }
        const { packets } = summary;
        assert.deepEqual(packets.reconciles, { records: true, decoded: true });
        assert.equal(
          Object.values(packets.classes).reduce((sum, n) => sum + n, 0),
          packets.records,
        );
        assert.equal(
          Object.values(packets.verdicts).reduce((sum, n) => sum + n, 0),
          packets.decoded,
        );
        assert.equal(summary.connections.total, destroys.length);
        const written = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
        assert.deepEqual(written.packets, JSON.parse(JSON.stringify(packets)));
        const eventsCsv = readFileSync(join(out, "events.csv"), "utf8").trim().split("\n");
        assert.equal(
          eventsCsv.length - 1,
          parseEventText(readFileSync(join(directory, "conntrack-events.txt"), "utf8")).length,
        );
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    },
  );
}

const refused = join(SAMPLES, "tcp-refused");
test(
  "report tcp-refused: the RST ends the connection as the kernel does",
  { skip: !existsSync(refused) && "sample not recorded" },
  async () => {
    const directory = refused;
    const settings = await settingsFromArguments({ sysctl: join(directory, "sysctl.txt") }, () => undefined);
    const out = mkdtempSync(join(tmpdir(), "report-refused-"));
    try {
      await writeReport([join(directory, "inside.pcap")], { outputDir: out, settings, drain: true });
      const [flow] = readFileSync(join(out, "flows.ndjson"), "utf8")
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as FlowRecord);
      assert.deepEqual(
        flow.history.map((change) => change.state),
        ["SYN_SENT", "CLOSE"],
      );
      // The RST answering the SYN kills the entry at once, still UNREPLIED (as the kernel's DESTROY says).
      assert.deepEqual(flow.flags, ["UNREPLIED"]);
      assert.equal(flow.endReason, "reset");
      assert.equal(flow.endDetail, "RST in CLOSE");
      assert.equal(flow.endTime, flow.lastPacket);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
);
