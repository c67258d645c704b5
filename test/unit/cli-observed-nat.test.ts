/** Observed NAT on the command line: `--nat-observe` and `--nat-window` on events, table and report. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { UsageError } from "../../cli/errors.js";
import { natOptionsFromArguments, observedNatFromArguments } from "../../cli/nat-options.js";
import { kernelEventLines, runCli } from "../support/cli.js";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const SAMPLE = join(ROOT, "samples/tcp-client-close-nat-masquerade");
const INSIDE = join(SAMPLE, "inside.pcap");
const OUTSIDE = join(SAMPLE, "outside.pcap");
const SYSCTL = join(SAMPLE, "sysctl.txt");
const skip = !existsSync(OUTSIDE) && "samples/tcp-client-close-nat-masquerade is not committed";

test("--nat-window: a positive duration, only with --nat-observe", () => {
  assert.equal(observedNatFromArguments({}), null);
  assert.deepEqual(observedNatFromArguments({ "nat-observe": true }), { windowNs: 50e6 });
  assert.deepEqual(observedNatFromArguments({ "nat-observe": true, "nat-window": "5ms" }), { windowNs: 5e6 });
  assert.throws(
    () => observedNatFromArguments({ "nat-window": "5ms" }),
    /--nat-window: only with --nat-observe/,
  );
  assert.throws(() => observedNatFromArguments({ "nat-observe": true, "nat-window": "0" }), UsageError);
  assert.throws(() => observedNatFromArguments({ "nat-observe": true, "nat-window": "soon" }), UsageError);
});

test("--nat-observe with rules: they apply as packets arrive; an inside vantage contradicts it", () => {
  const masquerade = { masquerade: ["out0=198.51.100.32"], "nat-observe": true };
  assert.equal(natOptionsFromArguments(masquerade)!.vantage, "arrival");
  assert.throws(
    () => natOptionsFromArguments({ ...masquerade, "nat-vantage": "inside" }),
    /--nat-vantage inside: with --nat-observe/,
  );
});

test(
  "events --nat-observe: inside and outside captures give the kernel's lines, no rule given",
  { skip },
  () => {
    const result = runCli([
      "events",
      INSIDE,
      OUTSIDE,
      "--nat-observe",
      "--sysctl",
      SYSCTL,
      "--drain",
      "--no-timestamp",
      "--summary",
    ]);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(result.stdout.trimEnd().split("\n"), kernelEventLines(SAMPLE));
    assert.match(result.stderr, /observed NAT: packets seen twice +16\n/);
    assert.match(result.stderr, /second sightings \(not tracked\) +16\n/);
    // Without it the outside capture's packets are connections of their own.
    const plain = runCli(["events", INSIDE, OUTSIDE, "--sysctl", SYSCTL, "--drain", "--no-timestamp"]);
    assert.notDeepEqual(plain.stdout.trimEnd().split("\n"), kernelEventLines(SAMPLE));
  },
);

test("table --nat-observe: the entry holds the reply tuple the router recorded", { skip }, () => {
  const result = runCli(["table", INSIDE, OUTSIDE, "--nat-observe", "--sysctl", SYSCTL, "--at", "+0.01"]);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /src=203\.0\.113\.47 dst=198\.51\.100\.32 sport=\d+ dport=\d+/);
});

test(
  "report --nat-observe: nat.csv says the translation was observed; the accounting reconciles",
  { skip },
  () => {
    const directory = mkdtempSync(join(tmpdir(), "cli-observed-nat-"));
    try {
      const result = runCli([
        "report",
        INSIDE,
        OUTSIDE,
        "--nat-observe",
        "--sysctl",
        SYSCTL,
        "--drain",
        "-o",
        directory,
      ]);
      assert.equal(result.status, 0, result.stderr);
      const rows = readFileSync(join(directory, "nat.csv"), "utf8").trimEnd().split("\n");
      assert.equal(rows[0].split(",")[2], "origin");
      assert.equal(rows.length, 2);
      assert.match(
        rows[1],
        /^tcp,snat,observed,kept,10\.1\.2\.3,\d+,198\.51\.100\.32,\d+,203\.0\.113\.47,8000,/,
      );
      const summary = JSON.parse(readFileSync(join(directory, "summary.json"), "utf8"));
      assert.deepEqual(summary.packets.reconciles, { records: true, decoded: true });
      assert.equal(summary.packets.duplicateSightings, 16);
      assert.equal(summary.options.natObserve, true);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  },
);
