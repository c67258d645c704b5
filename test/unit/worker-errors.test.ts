/**
 * A failure in a --jobs worker reaches the command as what it was: a damaged capture is named with its
 * offset (exit 2, as one thread says it), not reported as an internal error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CaptureError } from "../../lib/capture/source.js";
import { errorFromWorker, workerErrorMessage } from "../../lib/pipeline/one-shot-worker.js";
import { runCli } from "../support/cli.js";

test("a worker's capture error, system error and plain error cross as themselves", () => {
  // Through a structured clone, as a worker's message is.
  const cross = (error: unknown, prefix?: string): Error =>
    errorFromWorker(structuredClone(workerErrorMessage(error)), prefix);
  const capture = cross(new CaptureError("a.pcap", 24, 3, "damaged"));
  assert.ok(capture instanceof CaptureError);
  assert.equal(capture.message, "a.pcap: damaged (byte offset 24, packet 3)");
  const system = Object.assign(new Error("ENOSPC: no space left on device, write"), {
    code: "ENOSPC",
    path: "/out/flows.csv",
  });
  const crossed = cross(system) as NodeJS.ErrnoException;
  assert.equal(crossed.code, "ENOSPC");
  assert.equal(crossed.path, "/out/flows.csv");
  const plain = cross(new RangeError("a bug"), "--jobs worker 1: ");
  assert.equal(plain.message, "--jobs worker 1: a bug");
  assert.match(plain.stack ?? "", /RangeError: a bug/);
});

test("report, table and events --jobs name a capture that is not one, exit code 2", () => {
  const directory = mkdtempSync(join(tmpdir(), "worker-errors-"));
  try {
    const bad = join(directory, "bad.pcap");
    writeFileSync(bad, "not a capture file, only text");
    for (const args of [
      ["report", bad, "-o", join(directory, "out")],
      ["table", bad],
      ["events", bad, "-o", "/dev/null"],
    ]) {
      const result = runCli([...args, "--jobs", "2"]);
      assert.equal(result.status, 2, `${args[0]}: ${result.stderr}`);
      assert.match(result.stderr, /bad\.pcap: not a pcap or pcapng file: magic 0x[0-9a-f]+ at offset 0/);
      assert.doesNotMatch(result.stderr, /internal error/);
    }
    const empty = runCli(["report", "-", "--jobs", "2", "-o", join(directory, "empty")], Buffer.alloc(0));
    assert.equal(empty.status, 2, empty.stderr);
    assert.match(empty.stderr, /<stdin>: empty file/);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
