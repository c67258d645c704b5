/**
 * The benchmark: generates a synthetic capture once (kept in test/bench/out/), then times, on that same
 * file, our read-only loop, our read+decode loop and `tcpdump -r FILE -w /dev/null`, each in a fresh
 * process, best of three. Prints one table and writes it to test/bench/out/bench.json.
 *
 *   npm run bench [-- --packets N --conversations C --repeat R --modes read,read+decode,tcpdump,tshark]
 *
 * Benchmarks report; they do not fail. The exit code is 1 only when a mode crashed.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  openSync,
  readSync,
  readdirSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  createWriteStream,
} from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { writeSyntheticCapture, type SynthOptions, type SynthSummary } from "./synth.js";

const HERE = dirname(fileURLToPath(import.meta.url));
/** dist/test/bench → the repository root. */
const ROOT = join(HERE, "..", "..", "..");
const OUT_DIR = join(ROOT, "test", "bench", "out");
const THIS_SCRIPT = fileURLToPath(import.meta.url);
const SYNTH_SCRIPT = join(HERE, "synth.js");
const CLI_SCRIPT = join(ROOT, "dist", "cli", "main.js");
/** The budget for the conntrack engine alone, packets per second on one core. */
const ENGINE_BUDGET = 3_000_000;
/** `report --only flows.csv`, packets per second on one core. */
const REPORT_FLOWS_BUDGET = 4_000_000;
/** `events --jobs 2` over `events`. */
const JOBS2_BUDGET = 1.7;
/** One-thread modes and their `--jobs 2` twins, compared by CPU time per thread. */
const JOBS_TWINS = [
  ["events", "events-jobs2"],
  ["report-flows", "report-flows-jobs2"],
] as const;
/** Peak memory per live connection above a fixed base, bytes. */
const PER_CONNECTION_BUDGET = 400;
/** Where the report modes write (replaced every run, removed at the end). */
const REPORT_DIR = join(tmpdir(), `pcap-conntrack-bench-report-${process.pid}`);
const TIME_COMMAND = "/usr/bin/time";
const MODE_TIMEOUT_MS = 180_000;

/** Peak RSS growth over live table growth between two captures. */
interface PerConnection {
  smallLive: number;
  smallPeakRssMiB: number;
  largeLive: number;
  largePeakRssMiB: number;
  bytesPerConnection: number;
}

interface BenchSettings {
  packets: number;
  conversations: number;
  seed: number;
  repeat: number;
  modes: string[];
  flatness: boolean;
  memory: boolean;
}

/** What a timed run of one mode reports. */
interface RunResult {
  seconds: number;
  peakRssKiB: number | null;
  /** Records the mode saw (our loops report it; external tools are credited with the capture's count). */
  records: number;
  /** Our loops: time inside the loop, without process start-up. */
  loopSeconds?: number;
  details?: unknown;
}

interface ModeSpec {
  name: string;
  /** Run unless --modes says otherwise. */
  byDefault: boolean;
  /** Our code: the loop run in a child process (see CHILD_LOOPS). */
  childLoop?: keyof typeof CHILD_LOOPS;
  /** An external tool: program and arguments for a capture file. */
  command?: (file: string) => [string, string[]];
}

/** The modes compared. Add a row to compare another loop or tool. */
const MODES: ModeSpec[] = [
  { name: "read", byDefault: true, childLoop: "read" },
  { name: "read+decode", byDefault: true, childLoop: "decode" },
  { name: "flows", byDefault: true, childLoop: "flows" },
  {
    name: "events",
    byDefault: true,
    command: (file) => [process.execPath, [CLI_SCRIPT, "events", file, "-o", "/dev/null", "--drain"]],
  },
  {
    name: "events-jobs2",
    byDefault: true,
    command: (file) => [
      process.execPath,
      [CLI_SCRIPT, "events", file, "-o", "/dev/null", "--drain", "--jobs", "2"],
    ],
  },
  {
    name: "report",
    byDefault: true,
    command: (file) => [
      process.execPath,
      [CLI_SCRIPT, "report", file, "--drain", "--force", "-o", REPORT_DIR],
    ],
  },
  {
    name: "report-flows",
    byDefault: true,
    command: (file) => [
      process.execPath,
      [CLI_SCRIPT, "report", file, "--drain", "--force", "--only", "flows.csv", "-o", REPORT_DIR],
    ],
  },
  {
    name: "report-flows-jobs2",
    byDefault: true,
    command: (file) => [
      process.execPath,
      [
        CLI_SCRIPT,
        "report",
        file,
        "--drain",
        "--force",
        "--only",
        "flows.csv",
        "--jobs",
        "2",
        "-o",
        REPORT_DIR,
      ],
    ],
  },
  {
    name: "check",
    byDefault: true,
    command: (file) => [
      process.execPath,
      [CLI_SCRIPT, "check", file, "--drain", "--policy", join(ROOT, "test/bench/check-policy.yaml")],
    ],
  },
  {
    name: "report-jobs2",
    byDefault: false,
    command: (file) => [
      process.execPath,
      [CLI_SCRIPT, "report", file, "--drain", "--force", "--jobs", "2", "-o", REPORT_DIR],
    ],
  },
  { name: "tcpdump", byDefault: true, command: (file) => ["tcpdump", ["-r", file, "-w", "/dev/null"]] },
  { name: "argus", byDefault: true, command: (file) => ["argus", ["-r", file, "-w", "/dev/null"]] },
  {
    name: "tshark-conv",
    byDefault: true,
    command: (file) => ["tshark", ["-q", "-z", "conv,tcp", "-r", file]],
  },
  { name: "tshark", byDefault: false, command: (file) => ["tshark", ["-r", file, "-w", "/dev/null"]] },
];

/** Loops run inside a child process: each returns the records seen and any details worth keeping. */
const CHILD_LOOPS = {
  async read(file: string): Promise<{ records: number; details?: unknown }> {
    const { openCapture } = await import("../../lib/capture/open.js");
    const { forEachRecord } = await import("../../lib/capture/source.js");
    const source = await openCapture(file);
    let records = 0;
    await forEachRecord(source, () => {
      records++;
    });
    await source.close();
    return { records, details: { warnings: source.warnings.length } };
  },
  async decode(file: string): Promise<{ records: number; details?: unknown }> {
    const { openCapture } = await import("../../lib/capture/open.js");
    const { forEachRecord } = await import("../../lib/capture/source.js");
    const { PacketDecoder } = await import("../../lib/decode/decoder.js");
    const source = await openCapture(file);
    const decoder = new PacketDecoder();
    let records = 0;
    await forEachRecord(source, (record) => {
      decoder.decode(record);
      records++;
    });
    await source.close();
    return { records, details: { warnings: source.warnings.length, decoder: decoder.stats.toJSON() } };
  },
  /** The events pipeline without formatting: read, decode, engine, drain; events only counted. */
  async flows(file: string): Promise<{ records: number; details?: unknown }> {
    const { replayCaptures } = await import("../../lib/pipeline/replay.js");
    let events = 0;
    const result = await replayCaptures([file], { drain: true, onEvent: () => void events++ });
    const stats = result.engine.stats;
    return {
      records: result.records,
      details: { events, connections: stats.connectionsCreated, maxLive: stats.maxLive },
    };
  },
};

/** Runs of each memory capture: its peak RSS is their median. */
const MEMORY_RUNS = 3;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function parseSettings(argv: string[]): BenchSettings {
  const settings: BenchSettings = {
    packets: 2_000_000,
    conversations: 100_000,
    seed: 1,
    repeat: 3,
    modes: MODES.filter((mode) => mode.byDefault).map((mode) => mode.name),
    flatness: true,
    memory: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    const value = argv[i + 1];
    const whole = (): number => {
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} ${value} is not a whole number >= 1`);
      i++;
      return n;
    };
    if (name === "--packets") settings.packets = whole();
    else if (name === "--conversations") settings.conversations = whole();
    else if (name === "--seed") settings.seed = whole();
    else if (name === "--repeat") settings.repeat = whole();
    else if (name === "--no-flatness") settings.flatness = false;
    else if (name === "--no-memory") settings.memory = false;
    else if (name === "--modes") {
      settings.modes = (value ?? "").split(",").filter(Boolean);
      for (const mode of settings.modes)
        if (!MODES.some((known) => known.name === mode))
          throw new Error(`unknown mode ${mode} (known: ${MODES.map((m) => m.name).join(", ")})`);
      i++;
    } else throw new Error(`unknown argument ${name}`);
  }
  return settings;
}

// ------------------------------------------------------------------ the capture

interface CaptureFile {
  path: string;
  summary: SynthSummary;
  generatedSeconds: number | null;
}

/** The generator's identity: its compiled code, so any change to it regenerates the captures. */
function generatorFingerprint(): string {
  return createHash("sha256").update(readFileSync(SYNTH_SCRIPT)).digest("hex").slice(0, 16);
}

async function ensureCapture(options: SynthOptions): Promise<CaptureFile> {
  mkdirSync(OUT_DIR, { recursive: true });
  const live = options.live === undefined ? "" : `-${options.live}live`;
  const stem = `synth-${options.packets}p-${options.conversations}c-seed${options.seed}${live}`;
  const path = join(OUT_DIR, `${stem}.pcap`);
  const sidecar = join(OUT_DIR, `${stem}.json`);
  const wanted = { options, generator: generatorFingerprint() };
  if (existsSync(path) && existsSync(sidecar)) {
    try {
      const recorded = JSON.parse(readFileSync(sidecar, "utf8")) as typeof wanted & { summary: SynthSummary };
      if (
        JSON.stringify({ options: recorded.options, generator: recorded.generator }) ===
          JSON.stringify(wanted) &&
        statSync(path).size === recorded.summary.fileBytes
      )
        return { path, summary: recorded.summary, generatedSeconds: null };
    } catch {
      // An unreadable record of the parameters just means generating again.
    }
  }
  process.stderr.write(`bench: generating ${relative(ROOT, path)} (${options.packets} packets) …\n`);
  rmSync(sidecar, { force: true });
  const started = process.hrtime.bigint();
  const summary = await writeSyntheticCapture(createWriteStream(path), options);
  const generatedSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  writeFileSync(sidecar, JSON.stringify({ ...wanted, summary }, null, 2) + "\n");
  return { path, summary, generatedSeconds };
}

// ------------------------------------------------------------------ running modes

/** Reads the file once so that the first mode timed does not pay for the disk and the others not. */
function warmPageCache(path: string): void {
  const buffer = Buffer.allocUnsafe(4 << 20);
  const fd = openSync(path, "r");
  try {
    while (readSync(fd, buffer, 0, buffer.length, null) > 0);
  } finally {
    closeSync(fd);
  }
}

function runProcess(
  program: string,
  args: string[],
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; seconds: number }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(program, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
    child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
    const timer = setTimeout(() => child.kill("SIGKILL"), MODE_TIMEOUT_MS);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    });
  });
}

/**
 * CPU seconds (user + system) each thread of a process used, busiest first: the process is run once,
 * its /proc entries read every 20 ms (a thread's last reading counts). Null where there is no /proc.
 */
async function threadCpuSeconds(program: string, args: string[]): Promise<number[] | null> {
  if (!existsSync("/proc/self/task")) return null;
  const ticksPerSecond = 100; // USER_HZ, what /proc counts in on Linux
  const child = spawn(program, args, { stdio: ["ignore", "ignore", "ignore"] });
  const byThread = new Map<string, number>();
  const sample = (): void => {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${child.pid}/task`);
    } catch {
      return;
    }
    for (const task of tasks) {
      try {
        const stat = readFileSync(`/proc/${child.pid}/task/${task}/stat`, "utf8");
        // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        byThread.set(task, (Number(fields[11]) + Number(fields[12])) / ticksPerSecond);
      } catch {
        // The thread ended between the listing and the reading.
      }
    }
  };
  const timer = setInterval(sample, 20);
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  clearInterval(timer);
  if (code !== 0) return null;
  return [...byThread.values()].sort((a, b) => b - a);
}

function commandExists(program: string): boolean {
  const paths = (process.env.PATH ?? "").split(":");
  return program.startsWith("/") ? existsSync(program) : paths.some((dir) => existsSync(join(dir, program)));
}

async function runModeOnce(mode: ModeSpec, capture: CaptureFile, scratch: string): Promise<RunResult> {
  if (mode.childLoop) {
    const result = await runProcess(process.execPath, [THIS_SCRIPT, "--child", mode.childLoop, capture.path]);
    if (result.code !== 0)
      throw new Error(
        `${mode.name} exited with ${result.code ?? result.signal}: ${result.stderr.trim().slice(-2000)}`,
      );
    const lastLine = result.stdout.trim().split("\n").pop() ?? "";
    const report = JSON.parse(lastLine) as {
      records: number;
      loopSeconds: number;
      maxRssKiB: number;
      details: unknown;
    };
    return {
      seconds: result.seconds,
      peakRssKiB: report.maxRssKiB,
      records: report.records,
      loopSeconds: report.loopSeconds,
      details: report.details,
    };
  }
  const [program, args] = mode.command!(capture.path);
  const timeFile = join(scratch, "time.txt");
  const timed = commandExists(TIME_COMMAND);
  const result = timed
    ? await runProcess(TIME_COMMAND, ["-f", "%M", "-o", timeFile, program, ...args])
    : await runProcess(program, args);
  if (result.code !== 0)
    throw new Error(
      `${mode.name} exited with ${result.code ?? result.signal}: ${result.stderr.trim().slice(-2000)}`,
    );
  const peak = timed ? Number(readFileSync(timeFile, "utf8").trim().split("\n").pop()) : NaN;
  return {
    seconds: result.seconds,
    peakRssKiB: Number.isFinite(peak) ? peak : null,
    records: capture.summary.packets,
  };
}

interface ModeReport {
  mode: string;
  packets: number;
  seconds: number;
  packetsPerSecond: number;
  peakRssMiB: number | null;
  /** Our packets/s over tcpdump's (tcpdump itself: 1). */
  ratioToTcpdump: number | null;
  /** Packets/s over argus's, a flow tracker (argus itself: 1). */
  ratioToArgus: number | null;
  runs: number[];
  /** Each run's peak RSS (MiB), in run order. */
  peakRssRunsMiB: number[];
  loopSeconds?: number;
  details?: unknown;
  error?: string;
}

/** Best time of `repeat` runs; peak memory is the largest seen over the runs. */
async function measureMode(
  mode: ModeSpec,
  capture: CaptureFile,
  repeat: number,
  scratch: string,
): Promise<ModeReport> {
  const report: ModeReport = {
    mode: mode.name,
    packets: capture.summary.packets,
    seconds: NaN,
    packetsPerSecond: NaN,
    peakRssMiB: null,
    ratioToTcpdump: null,
    ratioToArgus: null,
    runs: [],
    peakRssRunsMiB: [],
  };
  if (mode.command && !commandExists(mode.command(capture.path)[0])) {
    report.error = "not installed";
    return report;
  }
  let best: RunResult | null = null;
  for (let run = 0; run < repeat; run++) {
    let result: RunResult;
    try {
      result = await runModeOnce(mode, capture, scratch);
    } catch (error) {
      report.error = (error as Error).message;
      return report;
    }
    report.runs.push(result.seconds);
    if (result.peakRssKiB !== null) {
      report.peakRssMiB = Math.max(report.peakRssMiB ?? 0, result.peakRssKiB / 1024);
      report.peakRssRunsMiB.push(result.peakRssKiB / 1024);
    }
    if (!best || result.seconds < best.seconds) best = result;
  }
  report.packets = best!.records;
  report.seconds = best!.seconds;
  report.packetsPerSecond = best!.records / best!.seconds;
  if (best!.loopSeconds !== undefined) report.loopSeconds = best!.loopSeconds;
  if (best!.details !== undefined) report.details = best!.details;
  return report;
}

// ------------------------------------------------------------------ output

function formatTable(reports: ModeReport[]): string {
  const header = ["mode", "packets", "seconds", "packets/s", "peak RSS MiB", "vs tcpdump", "vs argus"];
  const ratio = (value: number | null) => (value === null ? "n/a" : `x${value.toFixed(2)}`);
  const rows = reports.map((r) =>
    r.error
      ? [r.mode, "-", "-", "-", "-", r.error.split("\n")[0].slice(0, 60), ""]
      : [
          r.mode,
          r.packets.toLocaleString("en-US"),
          r.seconds.toFixed(3),
          Math.round(r.packetsPerSecond).toLocaleString("en-US"),
          r.peakRssMiB === null ? "n/a" : r.peakRssMiB.toFixed(1),
          ratio(r.ratioToTcpdump),
          ratio(r.ratioToArgus),
        ],
  );
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (c === 0 || c >= 5 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
      .join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

async function childMain(loopName: string, file: string): Promise<void> {
  const loop = CHILD_LOOPS[loopName as keyof typeof CHILD_LOOPS];
  if (!loop) throw new Error(`unknown child loop ${loopName}`);
  const started = process.hrtime.bigint();
  const { records, details } = await loop(file);
  const loopSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(
    JSON.stringify({ records, loopSeconds, maxRssKiB: process.resourceUsage().maxRSS, details }) + "\n",
  );
}

async function main(): Promise<number> {
  const settings = parseSettings(process.argv.slice(2));
  const benchStarted = process.hrtime.bigint();
  const loadAtStart = loadavg()[0];
  const mainOptions: SynthOptions = {
    packets: settings.packets,
    conversations: settings.conversations,
    seed: settings.seed,
  };
  const capture = await ensureCapture(mainOptions);
  warmPageCache(capture.path);
  const scratch = mkdtempSync(join(tmpdir(), "bench-"));
  const reports: ModeReport[] = [];
  let crashed = false;
  try {
    for (const name of settings.modes) {
      const mode = MODES.find((m) => m.name === name)!;
      process.stderr.write(`bench: ${name} ×${settings.repeat} …\n`);
      const report = await measureMode(mode, capture, settings.repeat, scratch);
      if (report.error && report.error !== "not installed") crashed = true;
      reports.push(report);
    }
    // CPU by thread of each one-thread mode and its --jobs 2 twin: with a core for every thread a run
    // takes about its busiest thread's time, so the busiest threads' ratio is what --jobs 2 gives on a
    // machine with the cores (this one may have fewer: its wall-time ratio is the table's).
    const threadCpu: Record<string, number[]> = {};
    for (const pair of JOBS_TWINS)
      for (const name of pair) {
        const mode = MODES.find((m) => m.name === name)!;
        if (!settings.modes.includes(name) || reports.find((r) => r.mode === name)?.error) continue;
        process.stderr.write(`bench: ${name}, CPU by thread …\n`);
        const [program, args] = mode.command!(capture.path);
        const seconds = await threadCpuSeconds(program, args);
        if (seconds !== null) threadCpu[name] = seconds;
      }
    const tcpdump = reports.find((r) => r.mode === "tcpdump" && !r.error);
    for (const r of reports)
      if (tcpdump && !r.error) r.ratioToTcpdump = r.packetsPerSecond / tcpdump.packetsPerSecond;
    const argus = reports.find((r) => r.mode === "argus" && !r.error);
    for (const r of reports)
      if (argus && !r.error) r.ratioToArgus = r.packetsPerSecond / argus.packetsPerSecond;
    // The engine alone: what the flows loop costs beyond the read+decode loop (same process shape).
    const flowsReport = reports.find((r) => r.mode === "flows" && !r.error);
    const decodeLoop = reports.find((r) => r.mode === "read+decode" && !r.error);
    let engineRate: number | null = null;
    if (flowsReport?.loopSeconds !== undefined && decodeLoop?.loopSeconds !== undefined) {
      const engineSeconds = flowsReport.loopSeconds - decodeLoop.loopSeconds;
      if (engineSeconds > 0) engineRate = flowsReport.packets / engineSeconds;
    }

    let flatness: Record<string, unknown> | null = null;
    const decodeMode = MODES.find((m) => m.name === "read+decode")!;
    const decodeReport = reports.find((r) => r.mode === "read+decode" && !r.error);
    if (settings.flatness && decodeReport && settings.packets >= 2) {
      const halfOptions: SynthOptions = {
        packets: Math.floor(settings.packets / 2),
        conversations: Math.max(1, Math.floor(settings.conversations / 2)),
        seed: settings.seed,
      };
      const half = await ensureCapture(halfOptions);
      process.stderr.write(`bench: read+decode on ${halfOptions.packets} packets (memory flatness) …\n`);
      const halfReport = await measureMode(decodeMode, half, 1, scratch);
      if (halfReport.error) crashed = true;
      const small = halfReport.peakRssMiB;
      const large = decodeReport.peakRssMiB;
      const flat = small !== null && large !== null && large <= small * 1.15 + 8;
      flatness = {
        smallPackets: half.summary.packets,
        smallPeakRssMiB: small,
        largePackets: capture.summary.packets,
        largePeakRssMiB: large,
        flat,
      };
    }

    // Memory per live connection: the flows loop (the engine) and `report --only flows.csv` (the
    // command the budget names: the engine, the flow records' state and the output) on two captures
    // alike but for how many conversations are open at once; the growth of peak RSS over the growth of
    // the table (the flows loop says how large it grew; the report's engine is the same). Both tables
    // are large: V8 sizes its young generation by how much of what is allocated survives, up to a cap,
    // and its growth counts here as memory per connection, which it is not; from 2 000 live it was
    // 12 MiB of the 30 up to 80 000 live (4 → 16 MiB). It still grows between these two (16 → 32 MiB),
    // so the figures err high.
    let perConnection: PerConnection | null = null;
    let perConnectionEngine: PerConnection | null = null;
    if (settings.memory) {
      const flowsMode = MODES.find((m) => m.name === "flows")!;
      const reportMode = MODES.find((m) => m.name === "report-flows")!;
      const peaks: { live: number; flowsRss: number; reportRss: number }[] = [];
      // Conntrack keeps entries well past a conversation's end (TIME_WAIT, UDP timeouts), so the table
      // size follows the number of conversations in the capture's span: vary that, keep the packets.
      for (const conversations of [80_000, 240_000]) {
        const memoryCapture = await ensureCapture({ packets: 400_000, conversations, seed: settings.seed });
        process.stderr.write(`bench: flows and report over ${conversations} conversations (memory) …\n`);
        // Peak RSS depends on when the collector ran: the median of three runs steadies it.
        const flows = await measureMode(flowsMode, memoryCapture, MEMORY_RUNS, scratch);
        const report = await measureMode(reportMode, memoryCapture, MEMORY_RUNS, scratch);
        const maxLive = (flows.details as { maxLive?: number } | undefined)?.maxLive;
        if (
          flows.error ||
          report.error ||
          flows.peakRssMiB === null ||
          report.peakRssMiB === null ||
          maxLive === undefined
        ) {
          crashed ||= flows.error !== undefined || report.error !== undefined;
          break;
        }
        peaks.push({
          live: maxLive,
          flowsRss: median(flows.peakRssRunsMiB),
          reportRss: median(report.peakRssRunsMiB),
        });
      }
      if (peaks.length === 2 && peaks[1].live > peaks[0].live) {
        const growth = (small: number, large: number): PerConnection => ({
          smallLive: peaks[0].live,
          smallPeakRssMiB: small,
          largeLive: peaks[1].live,
          largePeakRssMiB: large,
          bytesPerConnection: ((large - small) * 2 ** 20) / (peaks[1].live - peaks[0].live),
        });
        perConnection = growth(peaks[0].reportRss, peaks[1].reportRss);
        perConnectionEngine = growth(peaks[0].flowsRss, peaks[1].flowsRss);
      }
    }
    const eventsReport = reports.find((r) => r.mode === "events" && !r.error);
    const jobsReport = reports.find((r) => r.mode === "events-jobs2" && !r.error);
    const jobsRatio =
      eventsReport && jobsReport ? jobsReport.packetsPerSecond / eventsReport.packetsPerSecond : null;
    const reportFlows = reports.find((r) => r.mode === "report-flows" && !r.error);
    const reportFlowsJobs = reports.find((r) => r.mode === "report-flows-jobs2" && !r.error);
    const reportJobsRatio =
      reportFlows && reportFlowsJobs ? reportFlowsJobs.packetsPerSecond / reportFlows.packetsPerSecond : null;

    const decodeVsTcpdump = decodeReport?.ratioToTcpdump ?? null;
    const budgetMet = decodeVsTcpdump !== null && decodeVsTcpdump >= 1;
    const totalSeconds = Number(process.hrtime.bigint() - benchStarted) / 1e9;

    console.log(
      `\ncapture: ${relative(ROOT, capture.path)}: ${capture.summary.packets.toLocaleString("en-US")} packets, ` +
        `${capture.summary.conversations.toLocaleString("en-US")} conversations, ` +
        `${(capture.summary.fileBytes / 2 ** 20).toFixed(0)} MiB` +
        (capture.generatedSeconds !== null
          ? ` (generated in ${capture.generatedSeconds.toFixed(1)} s)`
          : " (cached)"),
    );
    console.log(
      `best of ${settings.repeat}, each run a fresh process; seconds are wall time including start-up; ` +
        `load average at start ${loadAtStart.toFixed(2)} on ${cpus().length} CPUs (other work skews timings)\n`,
    );
    console.log(formatTable(reports));
    if (flatness) {
      const f = flatness as {
        smallPackets: number;
        smallPeakRssMiB: number | null;
        largePackets: number;
        largePeakRssMiB: number | null;
        flat: boolean;
      };
      console.log(
        `\nmemory flatness (read+decode peak RSS): ${f.smallPackets.toLocaleString("en-US")} packets → ` +
          `${f.smallPeakRssMiB?.toFixed(1) ?? "n/a"} MiB, ${f.largePackets.toLocaleString("en-US")} packets → ` +
          `${f.largePeakRssMiB?.toFixed(1) ?? "n/a"} MiB: ${f.flat ? "flat" : "NOT flat"}`,
      );
    }
    for (const r of reports)
      if (!r.error && r.packets !== capture.summary.packets)
        console.log(
          `WARNING: ${r.mode} saw ${r.packets} records, the capture holds ${capture.summary.packets}`,
        );
    console.log(
      `\nBUDGET read+decode >= tcpdump: ${decodeVsTcpdump === null ? "not measured" : budgetMet ? "met" : "not met"}` +
        (decodeVsTcpdump === null ? "" : ` (x${decodeVsTcpdump.toFixed(2)})`),
    );
    console.log(
      `BUDGET engine >= ${(ENGINE_BUDGET / 1e6).toFixed(0)} M packets/s (flows loop minus read+decode loop): ` +
        (engineRate === null
          ? "not measured"
          : `${engineRate >= ENGINE_BUDGET ? "met" : "not met"} (${(engineRate / 1e6).toFixed(2)} M packets/s)`),
    );
    console.log(
      `BUDGET report --only flows.csv >= ${(REPORT_FLOWS_BUDGET / 1e6).toFixed(0)} M packets/s: ` +
        (reportFlows === undefined
          ? "not measured"
          : `${reportFlows.packetsPerSecond >= REPORT_FLOWS_BUDGET ? "met" : "not met"} ` +
            `(${(reportFlows.packetsPerSecond / 1e6).toFixed(2)} M packets/s)`),
    );
    console.log(
      `BUDGET events --jobs 2 >= x${JOBS2_BUDGET} events: ` +
        (jobsRatio === null
          ? "not measured"
          : `${jobsRatio >= JOBS2_BUDGET ? "met" : "not met"} (x${jobsRatio.toFixed(2)} on ${cpus().length} CPUs)`) +
        (reportJobsRatio === null
          ? ""
          : `; report --only flows.csv --jobs 2: x${reportJobsRatio.toFixed(2)} report --only flows.csv`),
    );
    if (Object.keys(threadCpu).length > 0) {
      console.log("\nCPU time by thread, seconds (one run each, read from /proc; busiest first):");
      for (const [name, seconds] of Object.entries(threadCpu))
        console.log(
          `  ${name.padEnd(20)} ${seconds
            .filter((value) => value >= 0.05)
            .map((value) => value.toFixed(2))
            .join(" ")}  (total ${seconds.reduce((total, value) => total + value, 0).toFixed(2)})`,
        );
      for (const [single, jobs] of JOBS_TWINS)
        if (threadCpu[single] && threadCpu[jobs])
          console.log(
            `  with a core per thread, ${jobs} would run at about ` +
              `x${(threadCpu[single][0] / threadCpu[jobs][0]).toFixed(2)} ${single} (busiest threads)`,
          );
    }
    const describeGrowth = (growth: PerConnection): string =>
      `${Math.round(growth.bytesPerConnection)} B: ${growth.smallLive.toLocaleString("en-US")} live → ` +
      `${growth.smallPeakRssMiB.toFixed(1)} MiB, ${growth.largeLive.toLocaleString("en-US")} live → ` +
      `${growth.largePeakRssMiB.toFixed(1)} MiB`;
    console.log(
      `BUDGET peak memory <= ${PER_CONNECTION_BUDGET} B per live connection (report --only flows.csv): ` +
        (perConnection === null
          ? "not measured"
          : `${perConnection.bytesPerConnection <= PER_CONNECTION_BUDGET ? "met" : "not met"} ` +
            `(${describeGrowth(perConnection)}; the engine alone, flows loop: ${describeGrowth(perConnectionEngine!)}; ` +
            `peak RSS the median of ${MEMORY_RUNS} runs)`),
    );
    console.log(`bench took ${totalSeconds.toFixed(1)} s`);

    const json = {
      date: new Date().toISOString(),
      node: process.version,
      cpu: cpus()[0]?.model ?? "unknown",
      cpuCount: cpus().length,
      capture: { path: relative(ROOT, capture.path), ...capture.summary },
      repeat: settings.repeat,
      modes: reports,
      flatness,
      budget: { readDecodeVsTcpdump: decodeVsTcpdump, met: budgetMet },
      engineBudget: {
        packetsPerSecond: engineRate,
        target: ENGINE_BUDGET,
        met: engineRate !== null && engineRate >= ENGINE_BUDGET,
      },
      reportFlowsBudget: {
        packetsPerSecond: reportFlows?.packetsPerSecond ?? null,
        target: REPORT_FLOWS_BUDGET,
        met: reportFlows !== undefined && reportFlows.packetsPerSecond >= REPORT_FLOWS_BUDGET,
      },
      jobsBudget: {
        ratio: jobsRatio,
        reportFlowsRatio: reportJobsRatio,
        threadCpuSeconds: threadCpu,
        target: JOBS2_BUDGET,
        met: jobsRatio !== null && jobsRatio >= JOBS2_BUDGET,
      },
      memoryBudget: {
        ...perConnection,
        engine: perConnectionEngine,
        target: PER_CONNECTION_BUDGET,
        met: perConnection !== null && perConnection.bytesPerConnection <= PER_CONNECTION_BUDGET,
      },
      loadAverageAtStart: loadAtStart,
      totalSeconds,
    };
    writeFileSync(join(OUT_DIR, "bench.json"), JSON.stringify(json, null, 2) + "\n");
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    rmSync(REPORT_DIR, { recursive: true, force: true });
  }
  return crashed ? 1 : 0;
}

if (process.argv[2] === "--child") {
  childMain(process.argv[3], process.argv[4]).catch((error: Error) => {
    process.stderr.write(`${error.stack ?? error.message}\n`);
    process.exit(1);
  });
} else {
  main().then(
    (code) => process.exit(code),
    (error: Error) => {
      process.stderr.write(`bench: ${error.message}\n`);
      process.exit(1);
    },
  );
}
