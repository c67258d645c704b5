/**
 * The port-clash recording (samples/tcp-port-clash): two inside hosts connect from the same source port
 * to the same server port while both are open, so MASQUERADE must give the second another port. The
 * kernel chose one at random; the configured way must re-map the clashing connection too, keep the
 * first one's port, and say that the port it chose is its own choice.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { replayCaptures } from "../../lib/pipeline/replay.js";
import { parseSysctl } from "../../lib/conntrack/settings.js";
import type { Connection } from "../../lib/conntrack/connection.js";
import { natOptionsFor, type ScenarioMetadata } from "./sample-golden.js";
import { runCli } from "../support/cli.js";

const SAMPLE = fileURLToPath(new URL("../../../samples/tcp-port-clash", import.meta.url));

test("tcp-port-clash: the configured way re-maps the clashing connection and marks the port its own", async () => {
  const metadata = JSON.parse(readFileSync(join(SAMPLE, "scenario.json"), "utf8")) as ScenarioMetadata;
  const settings = parseSysctl(readFileSync(join(SAMPLE, "sysctl.txt"), "utf8")).overrides;
  const created: { original: string; replyDport: number; natted: boolean }[] = [];
  const result = await replayCaptures([join(SAMPLE, "inside.pcap")], {
    settings,
    nat: natOptionsFor(metadata),
    onEvent: (event) => {
      if (event.type !== "NEW") return;
      const connection: Connection = event.connection;
      created.push({
        original: `${connection.original.src0.toString(16)}:${connection.original.srcPort}`,
        replyDport: connection.reply.dstPort,
        natted: connection.natted,
      });
    },
  });
  assert.deepEqual(
    created.map((c) => c.original),
    ["a010203:40001", "a010204:40001"],
    "two connections from port 40001, 10.1.2.3 first",
  );
  assert.equal(created[0].replyDport, 40001, "the first keeps its port, as the kernel's did");
  assert.notEqual(created[1].replyDport, 40001, "the second cannot have the taken port");
  assert.ok(created.every((c) => c.natted));
  const nat = result.engine.stats.nat;
  assert.equal(nat.ownChoice, 1, "exactly one port was our own choice");
  assert.ok(
    [...nat.notes.keys()].some((note) => /random|own choice|cannot be predicted/i.test(note)),
    `a note says why: ${[...nat.notes.keys()].join("; ")}`,
  );
});

test("tcp-port-clash: the kernel's recording shows the clash it must", () => {
  const kernel = readFileSync(join(SAMPLE, "conntrack-events.txt"), "utf8");
  const news = kernel.split("\n").filter((line) => line.includes("[NEW]"));
  assert.equal(news.length, 2);
  assert.match(news[0], /src=10\.1\.2\.3 .*sport=40001 .*dst=198\.51\.100\.32 sport=8000 dport=40001$/);
  assert.match(
    news[1],
    /src=10\.1\.2\.4 .*sport=40001 .*dst=198\.51\.100\.32 sport=8000 dport=(?!40001)\d+$/,
  );
});

/** nat.csv's rows of a report over the sample, as column → value records. */
function natRows(args: string[]): Record<string, string>[] {
  const directory = mkdtempSync(join(tmpdir(), "pcc-port-clash-"));
  try {
    const result = runCli([
      "report",
      ...args,
      "--sysctl",
      join(SAMPLE, "sysctl.txt"),
      "--drain",
      "-o",
      directory,
    ]);
    assert.equal(result.status, 0, result.stderr);
    const [header, ...rows] = readFileSync(join(directory, "nat.csv"), "utf8").trimEnd().split("\n");
    const columns = header.split(",");
    return rows.map((row) => Object.fromEntries(row.split(",").map((value, i) => [columns[i], value])));
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

test("tcp-port-clash: nat.csv gives the kernel's port when observed, and says when the port is our own", () => {
  const observed = natRows([join(SAMPLE, "inside.pcap"), join(SAMPLE, "outside.pcap"), "--nat-observe"]);
  assert.deepEqual(
    observed.map((row) => [row.inside_address, row.outside_port, row.origin, row.port_choice]),
    [
      ["10.1.2.3", "40001", "observed", "kept"],
      ["10.1.2.4", "53128", "observed", "device"],
    ],
  );
  const configured = natRows([join(SAMPLE, "inside.pcap"), "--masquerade", "out0=198.51.100.32"]);
  assert.deepEqual(
    configured.map((row) => [row.inside_address, row.origin, row.port_choice]),
    [
      ["10.1.2.3", "configured", "kept"],
      ["10.1.2.4", "configured", "own-choice"],
    ],
  );
  assert.notEqual(configured[1].outside_port, "40001");
});
