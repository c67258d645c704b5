/** `report -o DIR`: missing parents are made, with --jobs too; a directory that cannot be made fails at once. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, runCli } from "../support/cli.js";
import { repoRoot } from "../support/corpus.js";

const sample = join(repoRoot, "samples", "ftp-active", "inside.pcap");
/** The uid and gid of `nobody` on Debian. */
const NOBODY = 65534;

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
    // Only the report's files: the workers' scratch directory (inside the output) is gone.
    assert.deepEqual(readdirSync(jobs).sort(), readdirSync(single).sort());
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("report --jobs -o . needs no right beyond the output directory (as a user who cannot write its parent)", (t) => {
  // As nobody: root, runuser, and a node and checkout that nobody can read (not under /root, say).
  const asNobody = (args: string[], cwd?: string) =>
    spawnSync("runuser", ["-u", "nobody", "--", process.execPath, CLI, ...args], { cwd, encoding: "utf8" });
  if (process.getuid?.() !== 0) {
    t.skip("needs root to run as nobody");
    return;
  }
  const parent = mkdtempSync(join(tmpdir(), "report-rights-"));
  try {
    chmodSync(parent, 0o755);
    const home = join(parent, "home");
    mkdirSync(home);
    copyFileSync(sample, join(home, "x.pcap"));
    chownSync(home, NOBODY, NOBODY);
    chownSync(join(home, "x.pcap"), NOBODY, NOBODY);
    if (asNobody(["stats", join(home, "x.pcap")], home).status !== 0) {
      t.skip("runuser, or a node, checkout or temporary directory nobody can reach, is missing");
      return;
    }
    const result = asNobody(["report", "x.pcap", "--jobs", "2", "-o", "."], home);
    assert.equal(result.status, 0, result.stderr);
    assert.ok(existsSync(join(home, "flows.csv")));
    assert.deepEqual(readdirSync(parent), ["home"]);
  } finally {
    rmSync(parent, { recursive: true, force: true });
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
