/**
 * `--shard I/N`: every connection is tracked by exactly one shard, with the events a single run gives
 * it; merged by time, the shards' events are the single run's.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { replayCaptures } from "../../lib/pipeline/replay.js";
import { parseShard, shardOf } from "../../lib/pipeline/shard.js";
import { formatConntrackEvent } from "../../lib/report/conntrack-text.js";
import { parseSysctl } from "../../lib/conntrack/settings.js";
import { makeTcp, makeUdp } from "./conntrack-fixtures.js";
import { repoRoot } from "../support/corpus.js";
import { runCli } from "../support/cli.js";

const SAMPLES = join(repoRoot, "samples");

test("parseShard reads I/N and names what is wrong", () => {
  assert.deepEqual(parseShard("2/5"), { index: 2, count: 5 });
  assert.throws(() => parseShard("5/5"), /I must be below N/);
  assert.throws(() => parseShard("1/0"), /N must be at least 1/);
  assert.throws(() => parseShard("one of two"), /is not I\/N/);
});

test("shardOf: both directions of a connection, and any ports between two hosts, share a shard", () => {
  for (let k = 0; k < 200; k++) {
    const a = `10.${k % 7}.${k % 251}.${(k * 7) % 253}`;
    const b = `203.0.113.${k % 250}`;
    const forward = shardOf(makeTcp({ src: a, dst: b, sport: 1000 + k, dport: 21, flags: "S", ts: 1 }), 8);
    const back = shardOf(makeTcp({ src: b, dst: a, sport: 21, dport: 1000 + k, flags: "SA", ts: 1 }), 8);
    const data = shardOf(makeTcp({ src: b, dst: a, sport: 20, dport: 5000 + k, flags: "S", ts: 1 }), 8);
    const udp = shardOf(makeUdp({ src: a, dst: b, sport: 53, dport: 53, ts: 1 }), 8);
    assert.deepEqual([back, data, udp], [forward, forward, forward]);
  }
  const spread = new Set<number>();
  for (let k = 0; k < 64; k++)
    spread.add(
      shardOf(makeTcp({ src: `10.0.0.${k}`, dst: "203.0.113.1", sport: 1, dport: 2, flags: "S", ts: 1 }), 4),
    );
  assert.equal(spread.size, 4, "connections spread over the shards");
});

/** The events of a sample's inside capture, in the kernel's text, for shard `shard` (null: all). */
async function eventLines(sample: string, shard: { index: number; count: number } | null): Promise<string[]> {
  const folder = join(SAMPLES, sample);
  const lines: string[] = [];
  const result = await replayCaptures([join(folder, "inside.pcap")], {
    settings: parseSysctl(readFileSync(join(folder, "sysctl.txt"), "utf8")).overrides,
    shard,
    drain: true,
    onEvent: (event) => lines.push(formatConntrackEvent(event)),
  });
  assert.equal(
    result.accounting.classes.decoded,
    result.tracked + result.accounting.otherShards,
    "decoded = tracked + other shards",
  );
  return lines;
}

/** Merges lines by their [sec.usec] stamp, keeping each shard's own order (a stable merge). */
function mergeByTime(shards: string[][]): string[] {
  const stamp = (line: string) => Number(/^\[(\d+\.\d+)\]/.exec(line)![1]);
  return shards
    .flatMap((lines, shard) => lines.map((line, at) => ({ line, shard, at })))
    .sort((a, b) => stamp(a.line) - stamp(b.line) || a.shard - b.shard || a.at - b.at)
    .map((entry) => entry.line);
}

for (const sample of [
  "ftp-active-nat-none",
  "icmp-port-unreachable",
  "tcp-port-reuse-after-timewait",
  "ftp-passive",
]) {
  test(`${sample}: three shards together give the single run's events`, async () => {
    const single = await eventLines(sample, null);
    const shards = await Promise.all([0, 1, 2].map((index) => eventLines(sample, { index, count: 3 })));
    assert.deepEqual(mergeByTime(shards), single);
  });
}

test("--shard on the command line: usage errors name what is wrong", () => {
  const pcap = join(SAMPLES, "ping", "inside.pcap");
  const bad = runCli(["events", pcap, "--shard", "3/3"]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--shard: "3\/3": I must be below N/);
  const observed = runCli([
    "events",
    pcap,
    join(SAMPLES, "ping", "outside.pcap"),
    "--nat-observe",
    "--shard",
    "0/2",
  ]);
  assert.equal(observed.status, 2);
  assert.match(observed.stderr, /--shard: .*--nat-observe/);
  const ok = runCli(["events", pcap, "--shard", "0/1", "--summary", "-o", "/dev/null"]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stderr, /other shards' packets \(this is 0\/1\)\s+0/);
});
