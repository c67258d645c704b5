/**
 * Records a few scenarios afresh on the running kernel (samples/record.sh into a temporary folder)
 * and runs the golden comparison over them: the committed samples show what one kernel did once,
 * this shows the model still agrees with the kernel the tests run on.
 *
 * The comparison is the golden test's own (sample-golden.ts: same replay, same comparison, same
 * tolerances), registered here over the fresh folder. So the recording happens while this module
 * loads, before any test runs.
 *
 * Needs root, network namespaces and the recording tools; otherwise every test here is skipped with
 * the reason. PCAP_CONNTRACK_FRESH=0 skips it on purpose (it takes about 30 s);
 * PCAP_CONNTRACK_FRESH_KEEP=1 keeps the recording (its folder is printed) for inspection.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { registerSampleTests } from "./sample-golden.js";

/** Short, answered or closing on their own, no helper, no NAT: about 6 + 4 + 15 s of kernel timeouts. */
const SCENARIOS = ["ping", "tcp-client-close", "udp-stream-assured"];
const RECORD_SCRIPT = fileURLToPath(new URL("../../../samples/record.sh", import.meta.url));
/** The tools record.sh refuses to start without. */
const RECORDING_TOOLS = [
  "ip",
  "iptables",
  "ip6tables",
  "conntrack",
  "tcpdump",
  "ethtool",
  "sysctl",
  "python3",
  "timeout",
  "stdbuf",
];
/** SIGTERM to the script after this long (its trap then stops its processes and deletes the namespaces). */
const RECORDING_LIMIT_MS = 90_000;
/** SIGKILL to the script's process group if the trap has not finished by then. */
const TERMINATION_GRACE_MS = 15_000;

function whyRecordingIsUnavailable(): string | null {
  if (process.env.PCAP_CONNTRACK_FRESH === "0") return "PCAP_CONNTRACK_FRESH=0";
  if (process.platform !== "linux") return `needs Linux network namespaces (platform ${process.platform})`;
  if (process.getuid?.() !== 0) return "needs root (network namespaces, iptables, conntrack)";
  const missing = RECORDING_TOOLS.filter(
    (tool) => spawnSync("sh", ["-c", 'command -v "$1"', "sh", tool]).status !== 0,
  );
  if (missing.length > 0) return `recording tools missing: ${missing.join(", ")} (see samples/README.md)`;
  const probe = `pcc-probe-${process.pid}`;
  const added = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" });
  spawnSync("ip", ["netns", "del", probe]);
  if (added.status !== 0)
    return `this machine does not allow network namespaces (ip netns add: ${added.stderr.trim() || added.status})`;
  return null;
}

interface Recording {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  log: string;
  durationMs: number;
}

/** Runs record.sh into `directory`, bounded; afterwards no namespace of the run is left behind. */
function recordAfresh(directory: string): Promise<Recording> {
  const started = Date.now();
  // A file, not a pipe: if this process dies, the script must not die of SIGPIPE before its trap cleans up.
  const logPath = join(directory, "record.log");
  const logFd = openSync(logPath, "w");
  const script = spawn("bash", [RECORD_SCRIPT, "--out-dir", directory, ...SCENARIOS], {
    // REAPER: on a near-empty host the kernel's garbage collector may wait up to a minute before it
    // deletes an expired entry; listing the table deletes it on sight and keeps the run short.
    env: { ...process.env, REAPER: "1", WAIT_MAX: "30", NAT: "" },
    stdio: ["ignore", logFd, logFd],
    // Its own process group, so that a script that ignores SIGTERM can be killed with its children.
    detached: true,
  });
  closeSync(logFd);
  let timedOut = false;
  let killer: NodeJS.Timeout | undefined;
  const limiter = setTimeout(() => {
    timedOut = true;
    script.kill("SIGTERM");
    killer = setTimeout(() => {
      try {
        if (script.pid !== undefined) process.kill(-script.pid, "SIGKILL");
      } catch {
        // The group is already gone.
      }
    }, TERMINATION_GRACE_MS);
  }, RECORDING_LIMIT_MS);
  return new Promise((resolve) => {
    script.on("close", (exitCode, signal) => {
      clearTimeout(limiter);
      if (killer !== undefined) clearTimeout(killer);
      // The script's trap deletes its namespaces; a SIGKILLed script cannot, so do it here too.
      for (const role of ["client", "router", "server"])
        spawnSync("ip", ["netns", "del", `pcc-${role}-${script.pid}`], { stdio: "ignore" });
      const log = readFileSync(logPath, "utf8");
      resolve({ exitCode, signal, timedOut, log, durationMs: Date.now() - started });
    });
  });
}

const unavailable = whyRecordingIsUnavailable();

if (unavailable !== null) {
  test("fresh kernel recording agrees with the model", { skip: unavailable }, () => {});
} else {
  const directory = mkdtempSync(join(tmpdir(), "pcc-fresh-"));
  // Not a root `after` hook: that may run as soon as the tests registered so far have finished, while
  // this module is still importing the golden tests that read the folder.
  process.once("exit", () => {
    if (process.env.PCAP_CONNTRACK_FRESH_KEEP !== "1") rmSync(directory, { recursive: true, force: true });
  });
  const recording = await recordAfresh(directory);
  const recorded = SCENARIOS.filter((name) => existsSync(join(directory, name, "scenario.json")));

  test(`record.sh records ${SCENARIOS.join(", ")} afresh on this kernel`, (t) => {
    t.diagnostic(`recorded in ${(recording.durationMs / 1000).toFixed(1)} s into ${directory}`);
    for (const name of recorded) {
      const metadata = JSON.parse(readFileSync(join(directory, name, "scenario.json"), "utf8")) as {
        kernel: string;
        listenerPriority?: string;
        reaper: { enabled: boolean };
      };
      t.diagnostic(
        `${name}: kernel ${metadata.kernel}, listeners at ${metadata.listenerPriority ?? "?"}, ` +
          `reaper ${metadata.reaper.enabled ? "on" : "off"}`,
      );
    }
    const ending = recording.timedOut
      ? `stopped after ${RECORDING_LIMIT_MS / 1000} s`
      : `exit ${recording.exitCode ?? recording.signal}`;
    assert.ok(
      recording.exitCode === 0 && !recording.timedOut,
      `record.sh failed (${ending}):\n${recording.log.split("\n").slice(-30).join("\n")}`,
    );
    assert.deepEqual(recorded, SCENARIOS);
  });

  if (recorded.length > 0) registerSampleTests(directory);
}
