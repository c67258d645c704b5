/**
 * `report --only`: the files asked for, equal to the full report's, and nothing else written; with
 * --jobs too; with --shard, also what merging them reads; unknown names refused.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../support/cli.js";
import { repoRoot } from "../support/corpus.js";

const scratch = mkdtempSync(join(tmpdir(), "report-only-"));
test.after(() => rmSync(scratch, { recursive: true, force: true }));
const sample = join(repoRoot, "samples", "ftp-passive-nat-masquerade");
const common = [join(sample, "inside.pcap"), "--sysctl", join(sample, "sysctl.txt"), "--drain"];

function report(name: string, extra: string[]): string {
  const dir = join(scratch, name);
  const result = runCli(["report", ...common, "-o", dir, ...extra]);
  assert.equal(result.status, 0, result.stderr);
  return dir;
}

test("report --only writes just the files asked for, each as the full report has it", () => {
  const full = report("full", []);
  for (const [name, only, jobs] of [
    ["flows", ["flows.csv"], "1"],
    ["two", ["flows.ndjson,summary.json"], "1"],
    ["page", ["index.html", "--only", "nat.csv"], "1"],
    ["orphans", ["orphans.csv", "--only", "events.csv", "--only", "expectations.csv"], "1"],
    ["jobs", ["flows.csv,nat.ndjson"], "2"],
    ["jobs-flows", ["flows.csv"], "2"],
    ["jobs-orphans", ["orphans.csv,expectations.csv"], "3"],
    ["jobs-summary", ["summary.json", "--only", "events.csv"], "2"],
  ] as const) {
    const dir = report(name, ["--only", ...only, "--jobs", jobs]);
    const wanted = only.flatMap((item) => (item === "--only" ? [] : item.split(","))).sort();
    assert.deepEqual(readdirSync(dir).sort(), wanted, name);
    for (const file of wanted)
      assert.equal(
        readFileSync(join(dir, file), "utf8"),
        readFileSync(join(full, file), "utf8"),
        `${name}: ${file}`,
      );
  }
});

test("report --shard --only also writes what merging the files asked for reads, and counts orphans only for them", () => {
  for (const [only, written, orphansCounted] of [
    ["flows.csv", "flows.csv summary.json", false],
    ["events.csv", "events.csv flows.csv summary.json", false],
    ["orphans.csv", "flows.csv orphans.csv summary.json", true],
    ["nat.csv", "flows.ndjson nat.csv nat.ndjson summary.json", false],
    ["index.html", "events.csv flows.ndjson index.html nat.ndjson orphans.csv summary.json", true],
  ] as const) {
    const dir = report(`shard-${only}`, ["--only", only, "--shard", "1/2"]);
    assert.equal(readdirSync(dir).sort().join(" "), written, only);
    // summary.json written for the merge only: orphans not tracked, and it says so.
    const summary = JSON.parse(readFileSync(join(dir, "summary.json"), "utf8")) as { orphans: unknown };
    assert.equal(summary.orphans !== null, orphansCounted, only);
  }
});

test("report --only refuses a name that is not a report file", () => {
  const result = runCli(["report", ...common, "-o", join(scratch, "bad"), "--only", "flows.cv"]);
  assert.equal(result.status, 2);
  assert.match(result.stderr, /--only: "flows\.cv" is not a report file/);
});
