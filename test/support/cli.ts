import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./corpus.js";

/** The built command line, as a user runs it. */
export const CLI = join(repoRoot, "dist/cli/main.js");

/**
 * Runs `pcap-conntrack ARGS…` in a child process, `input` on its standard input; killed after
 * `timeoutMs` if given (its status is then null).
 */
export function runCli(args: string[], input?: Buffer, timeoutMs?: number) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    input,
    encoding: "utf8",
    maxBuffer: 1 << 26,
    timeout: timeoutMs,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A recorded sample's kernel event lines (conntrack-events.txt) without the `[sec.usec]\t` prefix. */
export function kernelEventLines(sampleDir: string): string[] {
  return readFileSync(join(sampleDir, "conntrack-events.txt"), "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => line.slice(line.indexOf("\t") + 1));
}
