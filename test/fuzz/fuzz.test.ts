/**
 * The short, deterministic part of the fuzzing (`npm run fuzz` runs the long one): a fixed seed and
 * a small count per target, fast-check properties over raw bytes and generated packets, and every
 * stored regression input. A finding fails the test with the target's message; the input is saved
 * under test/fuzz/findings/ for `npm run fuzz -- --target NAME --replay FILE`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { fuzzTarget, runInput, saveFinding } from "./fuzz.js";
import { policyMessageIsSafe, TARGETS, targetNamed } from "./targets.js";
import { frameSequenceArb } from "./generators.js";
import { repoRoot } from "../support/corpus.js";

const SEED = 20261125;
/** Inputs per target: together a few seconds on a shared machine. */
const COUNTS: Record<string, number> = {
  capture: 300,
  decode: 1500,
  ftp: 1500,
  tftp: 1000,
  sysctl: 2000,
  "nat-rules": 800,
  policy: 300,
};

for (const target of TARGETS) {
  test(`fuzz ${target.name}: ${COUNTS[target.name] ?? 200} inputs, seed ${SEED}, no finding`, async () => {
    const result = await fuzzTarget(target, { seed: SEED, count: COUNTS[target.name] ?? 200 });
    if (result.finding !== null) {
      const path = saveFinding(result.finding);
      assert.fail(
        `${result.finding.kind} at input ${result.finding.iteration} (${path}):\n${result.finding.message}`,
      );
    }
    assert.equal(result.executions, COUNTS[target.name] ?? 200);
  });
}

const REGRESSIONS = join(repoRoot, "test", "fuzz", "regressions");

/** The target a regression file belongs to: the longest target name its file name starts with. */
function targetOfFile(name: string) {
  const matches = TARGETS.filter((t) => name.startsWith(`${t.name}-`));
  matches.sort((a, b) => b.name.length - a.name.length);
  return matches[0];
}

// A regression that hangs again (the NAT walk) fails at the timeout instead of stalling the run.
test(
  "every stored regression input runs through its target without a finding",
  { timeout: 120_000 },
  async () => {
    const files = readdirSync(REGRESSIONS).filter((name) => !name.endsWith(".md"));
    assert.ok(files.length >= 3, `${files.length} regression inputs`);
    for (const name of files) {
      const target = targetOfFile(name);
      assert.ok(target !== undefined, `${name} names no target`);
      const finding = await runInput(target, readFileSync(join(REGRESSIONS, name)));
      assert.equal(finding, null, `${name}: ${finding?.message}`);
    }
  },
);

test("property: any bytes after a classic pcap header are read, decoded and tracked", async () => {
  const capture = targetNamed("capture");
  const header = Buffer.from("d4c3b2a1020004000000000000000000ffff000001000000", "hex");
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async (body) => {
      await capture.execute(Buffer.concat([header, body]));
    }),
    { seed: SEED, numRuns: 150 },
  );
});

test("property: any bytes after a pcapng section header are read, decoded and tracked", async () => {
  const capture = targetNamed("capture");
  const header = Buffer.from("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000", "hex");
  const idb = Buffer.from("01000000140000000100000000000000" + "14000000", "hex");
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async (body) => {
      await capture.execute(Buffer.concat([header, idb, body]));
    }),
    { seed: SEED, numRuns: 150 },
  );
});

test("property: generated frame sequences decode and track with every invariant held", () => {
  const decode = targetNamed("decode");
  fc.assert(
    fc.property(frameSequenceArb(), (input) => {
      decode.execute(input);
    }),
    { seed: SEED, numRuns: 300 },
  );
});

test("property: any text through the sysctl, NAT-rules and policy parsers", async () => {
  for (const name of ["sysctl", "nat-rules", "policy"]) {
    const target = targetNamed(name);
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 300, unit: "binary" }), async (text) => {
        await target.execute(Buffer.from(text));
      }),
      { seed: SEED, numRuns: 200 },
    );
  }
});

test("a policy error is one line per problem and quotes no control characters of the input", () => {
  assert.ok(policyMessageIsSafe(readFileSync(join(REGRESSIONS, "policy-json-error-quotes-input.bin"))));
});
