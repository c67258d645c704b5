/**
 * `merge DIR…`: the report directories of the shards of one `report --shard I/N` run, merged, are the
 * single run's report, file by file and byte for byte (summary.json without its `mergedShards` note);
 * what the note names as approximate is asserted where it differs. Directories that are not the shards
 * of one run are refused, naming the file. And docs/k8s-shards-job.yaml wires the completion index to
 * --shard.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  cpSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { writeSyntheticCapture } from "../bench/synth.js";
import { runCli } from "../support/cli.js";
import { REPORT_FILES } from "../../lib/pipeline/report.js";
import { mergeReports } from "../../lib/pipeline/merge-reports.js";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const SAMPLES = join(ROOT, "samples");
const scratch = mkdtempSync(join(tmpdir(), "merge-reports-"));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

function report(inputs: string[], options: string[], out: string): void {
  const result = runCli(["report", ...inputs, ...options, "-o", out]);
  assert.equal(result.status, 0, result.stderr);
}

/** The single run's report and the N shards' merged, in `scratch/name/`. */
function singleAndMerged(name: string, inputs: string[], options: string[], count: number) {
  const base = join(scratch, `${name}-${count}`);
  mkdirSync(base, { recursive: true });
  const single = join(base, "single");
  report(inputs, options, single);
  const shards = Array.from({ length: count }, (_, index) => join(base, `shard${index}`));
  shards.forEach((dir, index) => report(inputs, [...options, "--shard", `${index}/${count}`], dir));
  const merged = join(base, "merged");
  // Given in another order than their indices: the shard numbers in summary.json decide.
  const result = runCli(["merge", ...[...shards].reverse(), "-o", merged]);
  assert.equal(result.status, 0, result.stderr);
  return { single, shards, merged };
}

interface Expected {
  /** Patterns the `mergedShards.approximate` entries must match, one each (none: exact). */
  approximate?: RegExp[];
  /** Files allowed to differ (what an approximate entry names); summary.json's keys likewise. */
  differing?: string[];
  summaryKeysDiffering?: string[];
}

function read(dir: string, file: string): string {
  return readFileSync(join(dir, file), "utf8");
}

function assertSameReport(single: string, merged: string, count: number, expected: Expected = {}): void {
  const differing = expected.differing ?? [];
  for (const file of REPORT_FILES) {
    if (file === "summary.json") {
      const summary = JSON.parse(read(merged, file)) as Record<string, unknown>;
      const note = summary.mergedShards as { count: number; approximate: string[] };
      delete summary.mergedShards;
      assert.equal(note.count, count);
      const patterns = expected.approximate ?? [];
      assert.equal(note.approximate.length, patterns.length, note.approximate.join("\n"));
      patterns.forEach((pattern, index) => assert.match(note.approximate[index], pattern));
      const singleSummary = JSON.parse(read(single, file)) as Record<string, unknown>;
      for (const key of expected.summaryKeysDiffering ?? []) {
        assert.notDeepEqual(summary[key], singleSummary[key], `summary.json's ${key} differs, as noted`);
        summary[key] = singleSummary[key];
      }
      if (expected.summaryKeysDiffering === undefined)
        assert.equal(`${JSON.stringify(summary, null, 2)}\n`, read(single, file), "summary.json");
      else assert.deepEqual(summary, singleSummary, "summary.json but for the keys noted");
    } else if (differing.includes(file)) {
      assert.notEqual(read(merged, file), read(single, file), `${file} differs, as noted`);
    } else {
      assert.equal(read(merged, file), read(single, file), file);
    }
  }
}

const SAMPLE_CASES: { name: string; nat?: boolean; counts: number[] }[] = [
  { name: "ftp-passive", counts: [3, 2] },
  { name: "tftp-read", counts: [3] },
  { name: "tcp-port-reuse-after-timewait", counts: [3] },
  { name: "icmp-port-unreachable", counts: [3] },
  { name: "ping-ipv6", counts: [2] },
  { name: "ftp-passive-nat-masquerade", nat: true, counts: [3] },
];

for (const { name, nat, counts } of SAMPLE_CASES) {
  const dir = join(SAMPLES, name);
  const present = existsSync(join(dir, "inside.pcap")) && existsSync(join(dir, "sysctl.txt"));
  for (const count of counts)
    test(`merge: ${name}'s ${count} shard reports are the single run's report`, { skip: !present }, () => {
      const options = ["--sysctl", join(dir, "sysctl.txt"), "--drain"];
      if (nat === true) options.push("--masquerade", "out0=198.51.100.32");
      const { single, merged } = singleAndMerged(name, [join(dir, "inside.pcap")], options, count);
      assertSameReport(single, merged, count);
    });
}

const synth = join(scratch, "synth.pcap");
test.before(async () => {
  await new Promise<void>((resolve, reject) => {
    const out = createWriteStream(synth);
    out.once("error", reject);
    out.once("close", resolve);
    void writeSyntheticCapture(out, { packets: 20_000, conversations: 1_500, seed: 7 });
  });
});

for (const count of [3, 2])
  test(`merge: ${count} shard reports of a synthetic capture are the single run's report`, () => {
    const { single, shards, merged } = singleAndMerged("synth", [synth], ["--drain"], count);
    for (const shard of shards)
      assert.ok(read(shard, "flows.csv").split("\n").length > 300, `${shard} has its share of flows`);
    assertSameReport(single, merged, count);
    // Ids are renumbered: the shards' own ids alone would repeat.
    const ids = read(merged, "flows.csv")
      .split("\n")
      .slice(1, -1)
      .map((line) => Number(line.slice(0, line.indexOf(","))));
    assert.equal(new Set(ids).size, 1500);
  });

test("merge: shards written with --only merge into the files theirs make, as the single run's", async () => {
  const base = join(scratch, "only");
  const shards = [0, 1].map((index) => join(base, `shard${index}`));
  shards.forEach((dir, index) =>
    report([synth], ["--drain", "--only", "flows.csv,orphans.csv", "--shard", `${index}/2`], dir),
  );
  const single = join(base, "single");
  report([synth], ["--drain", "--only", "flows.csv,flows.ndjson,orphans.csv,events.csv"], single);
  const merged = join(base, "merged");
  const result = runCli(["merge", ...shards, "-o", merged]);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /written with --only: writing flows\.csv, orphans\.csv \(not /);
  // flows.csv alone in the shards (no flow records): no flows.ndjson; no events.csv: no summary.json
  // or page (they follow the table through it).
  assert.deepEqual(readdirSync(merged).sort(), ["flows.csv", "orphans.csv"]);
  for (const file of ["flows.csv", "orphans.csv"]) assert.equal(read(merged, file), read(single, file), file);
  // Shards without flows.csv: its rows are made from the flow records.
  const ndjsonShards = [0, 1].map((index) => join(base, `ndjson${index}`));
  ndjsonShards.forEach((dir, index) =>
    report([synth], ["--drain", "--only", "flows.ndjson", "--shard", `${index}/2`], dir),
  );
  const fromRecords = join(base, "from-records");
  assert.equal(runCli(["merge", ...ndjsonShards, "-o", fromRecords]).status, 0);
  assert.equal(read(fromRecords, "flows.csv"), read(single, "flows.csv"));
  // Shards written for flow records and events: events.csv numbered from the records, flows.csv made
  // from them, but no summary.json (these shards counted no orphans: `orphans: null`), even if asked.
  const eventShards = [0, 1].map((index) => join(base, `events${index}`));
  eventShards.forEach((dir, index) =>
    report([synth], ["--drain", "--only", "flows.ndjson,events.csv", "--shard", `${index}/2`], dir),
  );
  const fromEvents = join(base, "from-events");
  assert.equal(runCli(["merge", ...eventShards, "-o", fromEvents]).status, 0);
  assert.deepEqual(readdirSync(fromEvents).sort(), ["events.csv", "flows.csv", "flows.ndjson"]);
  for (const file of ["events.csv", "flows.csv", "flows.ndjson"])
    assert.equal(read(fromEvents, file), read(single, file), file);
  await assert.rejects(
    mergeReports(eventShards, { outputDir: join(base, "summary"), files: ["summary.json"] }),
    /events0\/summary\.json: written with --only files that count no orphans/,
  );
  // Without a flows file nothing can be merged: named.
  rmSync(join(shards[1], "flows.csv"));
  const missing = runCli(["merge", ...shards, "-o", join(base, "merged2")]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /shard1\/flows\.csv: missing \(.*shard0 has it\)/);
  rmSync(join(shards[0], "flows.csv"));
  const none = runCli(["merge", ...shards, "-o", join(base, "merged2")]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /shard0\/flows\.ndjson: missing$/m);
});

// Timeouts of 0 end connections before their replies: orphans of every kind, connections live at
// the end (no --drain), small page caps.
const EXPIRING = [
  "--timeout",
  "udp_timeout=0",
  "--timeout",
  "tcp_timeout_syn_sent=0",
  "--timeout",
  "icmp_timeout=0",
  "--html-max-orphans",
  "50",
  "--html-max-flows",
  "70",
  "--timeline-rows",
  "20",
];
const ORPHAN_NOTE =
  /^orphans \(orphans\.csv, summary\.json's orphans, the page's\): 4\d{3} connections ended/;

test("merge: orphans, live connections and the page's caps merged as the single run writes them", () => {
  const { single, merged } = singleAndMerged("synth-orphans", [synth], EXPIRING, 3);
  const orphans = read(single, "orphans.csv").split("\n").length - 2;
  assert.ok(orphans > 1000, `${orphans} orphans`);
  assert.match(read(single, "flows.csv"), /,live,/);
  // More connections ended than the orphan memory holds, so the note is there; here the shards
  // still told every orphan as the single run did.
  assertSameReport(single, merged, 3, { approximate: [ORPHAN_NOTE] });
});

test("merge: with a small --orphan-memory the orphans differ, as the note says; the rest is exact", () => {
  const { single, merged } = singleAndMerged(
    "synth-memory",
    [synth],
    [...EXPIRING, "--orphan-memory", "10"],
    3,
  );
  assertSameReport(single, merged, 3, {
    approximate: [ORPHAN_NOTE],
    differing: ["orphans.csv", "index.html"],
    summaryKeysDiffering: ["orphans"],
  });
});

function refused(args: string[], message: RegExp): void {
  const result = runCli(["merge", ...args]);
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, message);
  assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
}

test("merge: directories that are not the shards of one run are refused, naming the file", () => {
  const base = join(scratch, "synth-3");
  const shard = (index: number) => join(base, `shard${index}`);
  if (!existsSync(shard(2))) singleAndMerged("synth", [synth], ["--drain"], 3);
  const two = join(scratch, "synth-2");
  if (!existsSync(join(two, "shard1"))) singleAndMerged("synth", [synth], ["--drain"], 2);
  const out = join(scratch, "refused");
  refused([shard(0), shard(1), "-o", out], /shard 2\/3 missing/);
  const copy = join(scratch, "copy-of-shard0");
  cpSync(shard(0), copy, { recursive: true });
  refused([shard(0), copy, shard(2), "-o", out], /copy-of-shard0\/summary\.json: shard 0\/3 again/);
  refused(
    [shard(0), join(two, "shard1"), shard(2), "-o", out],
    /synth-2\/shard1\/summary\.json: shard 1\/2, but/,
  );
  refused([join(base, "single"), shard(1), "-o", out], /single\/summary\.json: not a shard's report/);
  const undrained = join(scratch, "undrained1");
  report([synth], ["--shard", "1/3"], undrained);
  refused([shard(0), undrained, shard(2), "-o", out], /undrained1\/summary\.json: other options than/);
  const sample = join(SAMPLES, "ping-ipv6", "inside.pcap");
  if (existsSync(sample)) {
    const other = join(scratch, "other-input1");
    report([sample], ["--drain", "--shard", "1/3"], other);
    refused([shard(0), other, shard(2), "-o", out], /other-input1\/summary\.json: other inputs than/);
  }
  const broken = join(scratch, "broken2");
  cpSync(shard(2), broken, { recursive: true });
  rmSync(join(broken, "events.csv"));
  refused([shard(0), shard(1), broken, "-o", out], /broken2\/events\.csv: missing/);
  // Shard files cut short (a copy that stopped, a full disk): inside a line, at a line end, a CSV row.
  const cut = join(scratch, "cut2");
  const cutFile = (file: string, keep: (text: string) => string) => {
    rmSync(cut, { recursive: true, force: true });
    cpSync(shard(2), cut, { recursive: true });
    writeFileSync(join(cut, file), keep(read(shard(2), file)));
  };
  cutFile("events.csv", (text) => text.slice(0, Math.floor(text.length / 2)));
  refused([shard(0), shard(1), cut, "-o", out], /cut2\/events\.csv: line \d+: the last line has no line end/);
  cutFile("flows.ndjson", (text) => text.slice(0, text.lastIndexOf("\n", text.length / 2) + 1));
  refused(
    [shard(0), shard(1), cut, "-o", out],
    /cut2\/flows\.ndjson: line \d+: \d+ rows where its summary\.json counts \d+: the file is cut short/,
  );
  cutFile("flows.csv", (text) => text.slice(0, text.lastIndexOf("\n", text.length / 2) + 1));
  refused(
    [shard(0), shard(1), cut, "-o", out],
    /cut2\/flows\.csv: row \d+: fewer rows than flows\.ndjson has lines/,
  );
  refused([shard(0), shard(1), synth, "-o", out], /synth\.pcap is not a directory/);
  refused([shard(0), shard(1), shard(2)], /give it with -o DIR/);
  refused([shard(0), shard(1), shard(2), "-o", shard(1)], /is one of the shards being merged/);
  assert.equal(existsSync(out), false, "nothing written when refused");
  // An existing report is replaced only with --force, as `report` does it.
  const merged = join(base, "merged");
  refused([shard(0), shard(1), shard(2), "-o", merged], /holds a report already/);
  const forced = runCli(["merge", shard(0), shard(1), shard(2), "-o", merged, "--force"]);
  assert.equal(forced.status, 0, forced.stderr);
});

test("docs/k8s-shards-job.yaml: an indexed Job whose index is the shard, then a merge", () => {
  const documents = parseAllDocuments(readFileSync(join(ROOT, "docs", "k8s-shards-job.yaml"), "utf8"));
  const objects = documents.map((document) => {
    assert.deepEqual(document.errors, []);
    return document.toJS() as {
      kind: string;
      metadata: { name: string };
      spec: {
        completionMode?: string;
        completions?: number;
        parallelism?: number;
        template: { spec: { containers: { command?: string[]; args?: string[] }[] } };
      };
    };
  });
  const jobs = objects.filter((object) => object.kind === "Job");
  const commandOf = (job: (typeof jobs)[number]) =>
    job.spec.template.spec.containers
      .map((c) => [...(c.command ?? []), ...(c.args ?? [])].join(" "))
      .join("\n");
  const sharded = jobs.find((job) => job.spec.completionMode === "Indexed");
  assert.ok(sharded, "an Indexed Job");
  const count = sharded.spec.completions!;
  assert.ok(count > 1);
  assert.equal(sharded.spec.parallelism, count);
  const shardCommand = commandOf(sharded);
  assert.match(shardCommand, new RegExp(`--shard "?\\$\\{?JOB_COMPLETION_INDEX\\}?/${count}\\b`));
  assert.match(shardCommand, /report /);
  assert.match(shardCommand, /-o "?\/data\/out\/shard\$\{?JOB_COMPLETION_INDEX\b/);
  const merge = jobs.find((job) => job !== sharded && /\bmerge\b/.test(commandOf(job)));
  assert.ok(merge, "a Job that merges");
  for (let index = 0; index < count; index++)
    assert.match(commandOf(merge), new RegExp(`/data/out/shard${index}\\b`), `merges shard ${index}`);
});
