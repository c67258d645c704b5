/**
 * `merge`: the shards of a `--shard I/N` run, merged, are the single run's events, in every line format;
 * inputs it cannot merge are named.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { syntheticCaptureFile } from "../support/synth-file.js";
import { runCli } from "../support/cli.js";

const scratch = mkdtempSync(join(tmpdir(), "cli-merge-"));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

function syntheticCapture(): Promise<string> {
  return syntheticCaptureFile(join(scratch, "synth.pcap"), {
    packets: 20_000,
    conversations: 1_500,
    seed: 7,
  });
}

for (const format of ["text", "csv", "ndjson"] as const) {
  test(`merge: four shards' ${format} events are the single run's`, async () => {
    const capture = join(scratch, "synth.pcap");
    if (format === "text") await syntheticCapture();
    const events = (extra: string[], output: string) => {
      const result = runCli(["events", capture, "--format", format, "--drain", ...extra, "-o", output]);
      assert.equal(result.status, 0, result.stderr);
      return readFileSync(output, "utf8");
    };
    const single = events([], join(scratch, `single.${format}`));
    const shards = [0, 1, 2, 3].map((index) =>
      events(["--shard", `${index}/4`], join(scratch, `shard${index}.${format}`)),
    );
    assert.ok(
      shards.every((text) => text.split("\n").length > 100),
      "every shard has its share",
    );
    const merged = runCli([
      "merge",
      ...[0, 1, 2, 3].map((index) => join(scratch, `shard${index}.${format}`)),
      "-o",
      join(scratch, `merged.${format}`),
    ]);
    assert.equal(merged.status, 0, merged.stderr);
    assert.equal(readFileSync(join(scratch, `merged.${format}`), "utf8"), single);
  });
}

test("merge: inputs it cannot merge are named, exit code 2", () => {
  const text = join(scratch, "a.txt");
  const csv = join(scratch, "b.csv");
  const bare = join(scratch, "c.txt");
  writeFileSync(
    text,
    "[1764000000.100000]\t    [NEW] udp      17 30 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2\n",
  );
  writeFileSync(csv, "time,epoch,type\n2025-11-24T16:00:00.000000000Z,1764000000.000000,NEW\n");
  writeFileSync(bare, "    [NEW] udp      17 30 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2\n");
  const mixed = runCli(["merge", text, csv]);
  assert.equal(mixed.status, 2);
  assert.match(mixed.stderr, /b\.csv: csv events, the inputs before it are text/);
  const noStamp = runCli(["merge", bare]);
  assert.equal(noStamp.status, 2);
  assert.match(noStamp.stderr, /c\.txt: line 1: not an event line with a time/);
  // An input cut short inside its last line is named, not merged as an event.
  const cut = join(scratch, "d.csv");
  writeFileSync(
    cut,
    "time,epoch,type\n2025-11-24T16:00:00.000000000Z,1764000000.000000,NEW\n2025-11-24T16:00:01.0",
  );
  const cutShort = runCli(["merge", csv, cut]);
  assert.equal(cutShort.status, 2);
  assert.match(cutShort.stderr, /d\.csv: line 2: the last line has no line end/);
});
