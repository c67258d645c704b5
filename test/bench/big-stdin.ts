/**
 * A big input through standard input, never stored: the synthetic generator writes a capture of about
 * `--gigabytes` GiB to a pipe, `pcap-conntrack events -` reads it, and this script samples the reader's
 * resident memory as it goes. Memory must stay flat: it follows the live connections (a steady number
 * here, since the generator keeps a bounded pool of conversations, time moves on and the timeouts are
 * shortened so that the entries of ended conversations leave soon), never the input.
 *
 *   node dist/test/bench/big-stdin.js [--gigabytes 10] [--conversations N] [--live 4096] [--command events]
 *     [--jobs N] [--only FILES]   (passed on to the command: `--only` to report)
 *
 * Prints one line per minute and a result (JSON in test/bench/out/big-stdin.json). Exit code 1 when a
 * process failed or memory was not flat.
 */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { writeSyntheticCapture } from "./synth.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "../../..");
const CLI = join(ROOT, "dist/cli/main.js");
const SYNTH = join(HERE, "synth.js");
const OUT_DIR = join(ROOT, "test/bench/out");

interface Settings {
  gigabytes: number;
  conversations: number | null;
  live: number;
  command: "events" | "report";
  jobs: number;
  only: string | null;
}

function parseSettings(argv: string[]): Settings {
  const settings: Settings = {
    gigabytes: 10,
    conversations: null,
    live: 4096,
    command: "events",
    jobs: 1,
    only: null,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${name}: a value is missing`);
    if (name === "--gigabytes") settings.gigabytes = Number(value);
    else if (name === "--conversations") settings.conversations = Number(value);
    else if (name === "--live") settings.live = Number(value);
    else if (name === "--command" && (value === "events" || value === "report")) settings.command = value;
    else if (name === "--jobs") settings.jobs = Number(value);
    else if (name === "--only") settings.only = value;
    else throw new Error(`unknown option ${name}`);
  }
  if (!(settings.gigabytes > 0)) throw new Error("--gigabytes must be positive");
  return settings;
}

/** Bytes per packet of the generator's traffic, from a small sample written to nowhere. */
async function bytesPerPacket(live: number): Promise<number> {
  let bytes = 0;
  const counter = new Writable({
    write(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      done();
    },
  });
  const packets = 50_000;
  await writeSyntheticCapture(counter, { packets, conversations: 5_000, live: Math.min(live, 5_000) });
  return bytes / packets;
}

function residentBytes(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    return match === null ? null : Number(match[1]) * 1024;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2));
  const perPacket = await bytesPerPacket(settings.live);
  const packets = Math.ceil((settings.gigabytes * 2 ** 30) / perPacket);
  // Conversations of about 20 packets each by default: they start and end all along the input.
  const conversations = settings.conversations ?? Math.ceil(packets / 20);
  process.stderr.write(
    `big-stdin: ${packets.toLocaleString("en-US")} packets (~${settings.gigabytes} GiB, ` +
      `${perPacket.toFixed(0)} B/packet), ${conversations.toLocaleString("en-US")} conversations, ` +
      `${settings.live} live at once, through \`pcap-conntrack ${settings.command} -\`\n`,
  );
  const started = process.hrtime.bigint();
  const synth = spawn(
    process.execPath,
    [SYNTH, "--packets", `${packets}`, "--conversations", `${conversations}`, "--live", `${settings.live}`],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const reportDir = join(OUT_DIR, "big-stdin-report");
  // Timeouts a few times shorter than the kernel's: the live population settles within the first tens
  // of seconds of the capture's clock (the generator's ~30 000 packets/s), then stays put.
  const timeouts = [
    "tcp_timeout_syn_sent=10",
    "tcp_timeout_established=60",
    "tcp_timeout_time_wait=10",
    "tcp_timeout_close=5",
    "udp_timeout=10",
    "udp_timeout_stream=30",
    "icmp_timeout=10",
    "icmpv6_timeout=10",
  ].flatMap((timeout) => ["--timeout", timeout]);
  const args =
    settings.command === "events"
      ? ["events", "-", "-o", "/dev/null", "--summary", ...timeouts]
      : ["report", "-", "-o", reportDir, "--force", "--html-max-flows", "100", ...timeouts];
  args.push("--jobs", `${settings.jobs}`);
  if (settings.only !== null) args.push("--only", settings.only);
  const reader = spawn(process.execPath, [CLI, ...args], { stdio: ["pipe", "ignore", "pipe"] });
  synth.stdout.pipe(reader.stdin);
  let stderr = "";
  reader.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));

  const samples: { seconds: number; rss: number }[] = [];
  let lastPrinted = 0;
  const timer = setInterval(() => {
    const rss = residentBytes(reader.pid!);
    if (rss === null) return;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    samples.push({ seconds, rss });
    if (seconds - lastPrinted >= 60) {
      lastPrinted = seconds;
      process.stderr.write(
        `big-stdin: ${seconds.toFixed(0)} s, reader RSS ${(rss / 2 ** 20).toFixed(1)} MiB\n`,
      );
    }
  }, 500);
  const exitOf = (child: ReturnType<typeof spawn>) =>
    new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  const [synthCode, readerCode] = await Promise.all([exitOf(synth), exitOf(reader)]);
  clearInterval(timer);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;

  // Flat: the peak over the last half of the run is within 15 % (plus 8 MiB) of the peak over its
  // second quarter, once the live population has built up (with these timeouts, within the first
  // ~10 % of a 10 GiB run).
  const early = samples.filter((s) => s.seconds >= seconds / 4 && s.seconds <= seconds / 2);
  const late = samples.filter((s) => s.seconds >= seconds / 2);
  const peak = (list: typeof samples) => Math.max(0, ...list.map((s) => s.rss));
  const earlyPeak = peak(early);
  const latePeak = peak(late);
  const flat = early.length > 0 && late.length > 0 && latePeak <= earlyPeak * 1.15 + 8 * 2 ** 20;
  const result = {
    command: settings.command,
    jobs: settings.jobs,
    only: settings.only,
    packets,
    approximateBytes: Math.round(packets * perPacket),
    conversations,
    live: settings.live,
    seconds,
    packetsPerSecond: packets / seconds,
    readerEarlyPeakMiB: earlyPeak / 2 ** 20,
    readerLatePeakMiB: latePeak / 2 ** 20,
    flat,
    synthExit: synthCode,
    readerExit: readerCode,
    // The reader's own accounting: records read, connections made, most live at once.
    readerSummary: stderr
      .split("\n")
      .filter((line) => /^\s*(records|packets tracked|connections created|still live|most live)/.test(line))
      .map((line) => line.trim().replace(/\s{2,}/g, " ")),
  };
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, "big-stdin.json"), `${JSON.stringify(result, null, 2)}\n`);
  console.log(
    `${(result.approximateBytes / 2 ** 30).toFixed(1)} GiB, ${packets.toLocaleString("en-US")} packets through ` +
      `stdin in ${seconds.toFixed(0)} s (${(result.packetsPerSecond / 1e6).toFixed(2)} M packets/s); ` +
      `reader RSS peak ${result.readerEarlyPeakMiB.toFixed(1)} MiB in the second quarter, ` +
      `${result.readerLatePeakMiB.toFixed(1)} MiB in the second half: ${flat ? "flat" : "NOT flat"}`,
  );
  if (synthCode !== 0 || readerCode !== 0) {
    process.stderr.write(`big-stdin: synth exit ${synthCode}, reader exit ${readerCode}\n${stderr}\n`);
    process.exit(1);
  }
  if (!flat) process.exit(1);
}

main().catch((error: unknown) => {
  process.stderr.write(`big-stdin: ${(error as Error).message}\n`);
  process.exit(2);
});
