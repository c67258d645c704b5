/** `report -o DIR`: missing parents are made, with --jobs too; a directory that cannot be made fails at once. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../support/cli.js";
import { repoRoot } from "../support/corpus.js";

const sample = join(repoRoot, "samples", "ftp-active", "inside.pcap");

test("report makes the output's missing parents, with one thread and with --jobs, alike", () => {
  const directory = mkdtempSync(join(tmpdir(), "report-dirs-"));
  try {
    const single = join(directory, "one", "a", "b");
    const jobs = join(directory, "two", "a", "b");
    assert.equal(runCli(["report", sample, "-o", single]).status, 0);
    const result = runCli(["report", sample, "-o", jobs, "--jobs", "2"]);
    assert.equal(result.status, 0, result.stderr);
    for (const file of readdirSync(single))
      assert.equal(readFileSync(join(jobs, file), "utf8"), readFileSync(join(single, file), "utf8"), file);
    // The workers' scratch directory is gone.
    assert.deepEqual(readdirSync(join(directory, "two", "a")), ["b"]);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("an output directory that cannot be made (under /proc) is an error at once, not a loop", (t) => {
  if (!existsSync("/proc/self")) {
    t.skip("no /proc here");
    return;
  }
  for (const extra of [[], ["--jobs", "2"]]) {
    // It spun for good before: given 30 s, a loop ends as a failure, not a hung test.
    const result = runCli(
      ["report", sample, "-o", "/proc/pcap-conntrack-test/out", ...extra],
      undefined,
      30_000,
    );
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /\/proc\/pcap-conntrack-test: no such file or directory/);
  }
});
