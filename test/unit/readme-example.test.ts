/**
 * The README's library example is this directory's readme-example.ts, word for word (but for the
 * import path), and it works: on a recorded FTP sample it gives the events and expectation events the
 * command line gives, and writes every report.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPORT_FILES } from "../../lib/pipeline/report.js";
import { repoRoot } from "../support/corpus.js";
import { runCli } from "../support/cli.js";
import { replayCapture } from "./readme-example.js";

const EXAMPLE = join(repoRoot, "test/unit/readme-example.ts");
const SAMPLE = join(repoRoot, "samples/ftp-passive");

/** The ```ts blocks of the README's "## Library" section. */
function libraryBlocks(readme: string): string[] {
  const start = readme.indexOf("\n## Library\n");
  assert.ok(start >= 0, 'README.md has a "## Library" section');
  const next = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, next < 0 ? undefined : next);
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]);
}

test("the README's library example is readme-example.ts", () => {
  const blocks = libraryBlocks(readFileSync(join(repoRoot, "README.md"), "utf8"));
  const example = readFileSync(EXAMPLE, "utf8").replace('from "../../lib/index.js"', 'from "pcap-conntrack"');
  assert.ok(
    blocks.some((block) => block === example),
    "a ```ts block of the Library section equals test/unit/readme-example.ts (import from pcap-conntrack)",
  );
});

test(
  "the example replays a sample as the command line does and writes every report",
  {
    skip: !existsSync(join(SAMPLE, "inside.pcap")) && "sample not recorded",
  },
  async () => {
    const capture = join(SAMPLE, "inside.pcap");
    const sysctl = join(SAMPLE, "sysctl.txt");
    const out = mkdtempSync(join(tmpdir(), "readme-example-"));
    try {
      const result = await replayCapture(capture, sysctl, out);
      const cli = ["events", capture, "--sysctl", sysctl, "--helper", "ftp=2121", "--drain"];
      const events = runCli(cli);
      assert.equal(events.status, 0, events.stderr);
      assert.equal(result.events.join(""), events.stdout);
      const expectations = runCli([...cli, "--expect"]);
      assert.equal(expectations.status, 0, expectations.stderr);
      assert.ok(result.expectations.length > 0, "the FTP helper announced the data connections");
      assert.equal(result.expectations.join(""), expectations.stdout);
      const destroys = result.events.filter((line) => line.includes("[DESTROY]")).length;
      assert.equal(result.connections, destroys, "one flow per connection");
      // The three connections end in TIME_WAIT, which this router's settings make last 2 s.
      assert.equal(result.liveOneSecondLater, 3);
      for (const file of REPORT_FILES) assert.ok(existsSync(join(out, file)), file);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
);
