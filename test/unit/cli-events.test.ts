/** The real CLI (node dist/cli/main.js events …) on a committed kernel sample. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  createReadStream,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Writable } from "node:stream";
import { setImmediate as nextTurn } from "node:timers/promises";
import { EVENT_CSV_COLUMNS, createEventFormatter } from "../../lib/report/event-formats.js";
import { ChunkedWriter, replayCaptures, type ByteEncoder } from "../../lib/pipeline/replay.js";
import { sysctlName } from "../../cli/commands/events.js";
import { CLI, kernelEventLines, runCli } from "../support/cli.js";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const SAMPLE = join(ROOT, "samples/tcp-client-close");
const PCAP = join(SAMPLE, "inside.pcap");
const SYSCTL = join(SAMPLE, "sysctl.txt");
const haveSample = existsSync(PCAP);
const skip = !haveSample && "samples/tcp-client-close is not committed";

const run = runCli;

const kernelLines = () => kernelEventLines(SAMPLE);

/** The client's port, as the kernel printed it. */
function clientPort(): string {
  return /sport=(\d+)/.exec(kernelLines()[0])![1];
}

/** Packets and bytes each way and delta-time of the kernel's DESTROY line, in that order. */
function kernelDestroyCounters(): string[] {
  const destroy = kernelLines().find((line) => line.startsWith("[DESTROY]"))!;
  const match = / packets=(\d+) bytes=(\d+) .* packets=(\d+) bytes=(\d+) .*delta-time=(\d+)$/.exec(destroy);
  assert.ok(match, destroy);
  return match.slice(1);
}

/** RFC 4180 reader, enough to prove the CSV is well formed. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(cell);
      cell = "";
    } else if (c === "\n") {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
    } else if (c !== "\r") cell += c;
  }
  assert.equal(cell + row.join(""), "", "the CSV ends with a newline");
  return rows;
}

test("events: text equals the kernel's lines for a recorded TCP connection", { skip }, () => {
  const plain = run(["events", PCAP, "--sysctl", SYSCTL, "--drain", "--no-timestamp"]);
  assert.equal(plain.status, 0, plain.stderr);
  assert.equal(plain.stderr, "");
  assert.deepEqual(plain.stdout.split("\n").slice(0, -1), kernelLines());

  // Stamped with the capture time of the packet: the SYN at 1795619609.697818 (tcpdump -tt).
  const stamped = run(["events", PCAP, "--sysctl", SYSCTL, "--drain"]);
  const lines = stamped.stdout.split("\n");
  assert.equal(lines[0], `[1795619609.697818]\t${kernelLines()[0]}`);
  assert.match(lines[0], /^\S+\t {4}\[NEW\] tcp {6}6 5 SYN_SENT src=10\.1\.2\.3 .* \[UNREPLIED\] /);
  // TIME_WAIT at the last packet (…10.303167) plus its 2 s timeout.
  assert.equal(lines[6], `[1795619612.303167]\t${kernelLines()[6]}`);
  assert.match(lines[6], /^\S+\t\[DESTROY\] tcp {6}6 TIME_WAIT .* delta-time=3$/);
});

test("events: without --drain the live entries are counted on stderr", { skip }, () => {
  const result = run(["events", PCAP, "--sysctl", SYSCTL]);
  assert.equal(result.status, 0);
  assert.equal(result.stdout.split("\n").length - 1, 6, "no DESTROY");
  assert.equal(
    result.stderr,
    "pcap-conntrack: 1 connection still live at 2026-11-25T15:13:30.303167000Z (last packet); --drain expires them\n",
  );
});

test("events: - reads the capture from standard input", { skip }, () => {
  const fromFile = run(["events", PCAP, "--sysctl", SYSCTL, "--drain"]);
  const fromStdin = run(["events", "-", "--sysctl", SYSCTL, "--drain"], readFileSync(PCAP));
  assert.equal(fromStdin.status, 0, fromStdin.stderr);
  assert.equal(fromStdin.stdout, fromFile.stdout);
  assert.ok(fromStdin.stdout.length > 0);
});

test("events: --format csv parses back to one row per event", { skip }, () => {
  const result = run(["events", PCAP, "--sysctl", SYSCTL, "--drain", "--format", "csv"]);
  assert.equal(result.status, 0, result.stderr);
  const rows = parseCsv(result.stdout);
  assert.deepEqual(rows[0], EVENT_CSV_COLUMNS);
  assert.equal(rows.length, 1 + 7);
  const records = rows.slice(1).map((row) => Object.fromEntries(rows[0].map((name, i) => [name, row[i]])));
  assert.deepEqual(
    records.map((r) => `${r.type} ${r.state} ${r.timeout} ${r.flags}`),
    [
      "NEW SYN_SENT 5 UNREPLIED",
      "UPDATE SYN_RECV 4 ",
      "UPDATE ESTABLISHED 30 ASSURED",
      "UPDATE FIN_WAIT 6 ASSURED",
      "UPDATE LAST_ACK 3 ASSURED",
      "UPDATE TIME_WAIT 2 ASSURED",
      "DESTROY TIME_WAIT  ASSURED",
    ],
  );
  const destroy = records[6];
  assert.equal(destroy.time, "2026-11-25T15:13:32.303167000Z");
  assert.equal(destroy.epoch, "1795619612.303167");
  assert.deepEqual(
    [destroy.orig_src, destroy.orig_sport, destroy.reply_src, destroy.reply_dport, destroy.orig_type],
    ["10.1.2.3", clientPort(), "203.0.113.47", clientPort(), ""],
  );
  assert.deepEqual(
    [
      destroy.orig_packets,
      destroy.orig_bytes,
      destroy.reply_packets,
      destroy.reply_bytes,
      destroy.delta_time,
    ],
    kernelDestroyCounters(),
  );
  assert.equal(destroy.connection_id, "1");
  assert.equal(destroy.cause, "drain");
});

test("events: json is one array, ndjson one object per line, with the same records", { skip }, () => {
  const json = run(["events", PCAP, "--sysctl", SYSCTL, "--drain", "--format", "json"]);
  const ndjson = run(["events", PCAP, "--sysctl", SYSCTL, "--drain", "--format", "ndjson"]);
  const array = JSON.parse(json.stdout) as Record<string, unknown>[];
  const lines = ndjson.stdout
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(array.length, 7);
  assert.deepEqual(lines, array);
  assert.deepEqual(array[0], {
    time: "2026-11-25T15:13:29.697818000Z",
    epoch: 1795619609.697818,
    type: "NEW",
    protocol: "tcp",
    protocolNumber: 6,
    timeout: 5,
    state: "SYN_SENT",
    original: { src: "10.1.2.3", dst: "203.0.113.47", sport: Number(clientPort()), dport: 8000 },
    reply: { src: "203.0.113.47", dst: "10.1.2.3", sport: 8000, dport: Number(clientPort()) },
    flags: ["UNREPLIED"],
    originalPackets: null,
    originalBytes: null,
    replyPackets: null,
    replyBytes: null,
    deltaTime: null,
    helper: null,
    id: 1,
    masterId: null,
    cause: null,
  });
});

test("events: --summary accounts for every record and every tracked packet", { skip }, () => {
  const result = run(["events", PCAP, "--sysctl", SYSCTL, "--drain", "--summary"]);
  assert.equal(result.status, 0);
  const value = (label: string) => {
    const match = new RegExp(`^ +${label} +(\\d+)$`, "m").exec(result.stderr);
    assert.ok(match, `summary has ${label}:\n${result.stderr}`);
    return Number(match[1]);
  };
  // The recording's own count; two of them are the client's ARP request and the router's reply.
  const scenario = JSON.parse(readFileSync(join(SAMPLE, "scenario.json"), "utf8")) as {
    captures: Record<string, { packets: number }>;
  };
  const records = scenario.captures["inside.pcap"].packets;
  assert.equal(value("records"), records);
  assert.equal(value("decoded"), records - 2);
  assert.equal(value("non-ip"), 2);
  assert.equal(value("packets tracked \\(decoded\\)"), records - 2);
  assert.equal(value("new"), 1);
  assert.equal(value("established"), records - 3);
  assert.equal(value("invalid"), 0);
  assert.match(result.stderr, /events +NEW 1, UPDATE 5, DESTROY 1$/m);
});

test("events: settings from --timeout override --sysctl and show in the timeouts", { skip }, () => {
  const result = run([
    "events",
    PCAP,
    "--sysctl",
    SYSCTL,
    "--timeout",
    "nf_conntrack_tcp_timeout_established=99",
    "--timeout",
    "net.netfilter.nf_conntrack_tcp_timeout_syn_sent=7",
    "--no-timestamp",
  ]);
  assert.equal(result.status, 0, result.stderr);
  const lines = result.stdout.split("\n");
  assert.match(lines[0], /^ {4}\[NEW\] tcp {6}6 7 SYN_SENT /);
  assert.match(lines[2], /^ \[UPDATE\] tcp {6}6 99 ESTABLISHED /);
});

test("events: an unknown name in the sysctl file is a warning on stderr", { skip }, () => {
  const directory = mkdtempSync(join(tmpdir(), "pcc-cli-"));
  try {
    const file = join(directory, "sysctl.txt");
    writeFileSync(file, `${readFileSync(SYSCTL, "utf8")}net.netfilter.nf_conntrack_frobnicate = 1\n`);
    const result = run(["events", PCAP, "--sysctl", file, "--drain"]);
    assert.equal(result.status, 0);
    assert.equal(
      result.stderr,
      `pcap-conntrack: warning: ${file}: unknown conntrack setting net.netfilter.nf_conntrack_frobnicate (ignored)\n`,
    );
  } finally {
    rmSync(directory, { recursive: true });
  }
});

test("events: bad input ends with exit code 2 and one line naming the file", { skip }, () => {
  const missing = run(["events", "/nonexistent/capture.pcap"]);
  assert.equal(missing.status, 2);
  assert.equal(missing.stdout, "");
  assert.equal(missing.stderr, "pcap-conntrack: /nonexistent/capture.pcap: no such file or directory\n");

  const notACapture = run(["events", SYSCTL]);
  assert.equal(notACapture.status, 2);
  assert.equal(notACapture.stderr.split("\n").length, 2, notACapture.stderr);
  assert.ok(notACapture.stderr.startsWith(`pcap-conntrack: ${SYSCTL}: not a pcap or pcapng file`));

  const missingSysctl = run(["events", PCAP, "--sysctl", "/nonexistent/sysctl.txt"]);
  assert.equal(missingSysctl.status, 2);
  assert.equal(missingSysctl.stderr, "pcap-conntrack: /nonexistent/sysctl.txt: no such file or directory\n");

  const badTimeout = run(["events", PCAP, "--timeout", "tcp_timeout_established"]);
  assert.equal(badTimeout.status, 2);
  assert.equal(
    badTimeout.stderr,
    'pcap-conntrack: --timeout: "tcp_timeout_established" is not NAME=SECONDS\n',
  );
});

test("a lone - is standard input among files and standard output after -o", { skip }, () => {
  const bytes = readFileSync(PCAP);
  const result = run(["stats", "--format", "json", PCAP, "-", "-o", "-"], bytes);
  assert.equal(result.status, 0, result.stderr);
  const statistics = JSON.parse(result.stdout);
  assert.deepEqual(
    statistics.inputs.map((input: { file: string }) => input.file),
    [PCAP, "<stdin>"],
  );
  assert.equal(statistics.inputs[0].records, statistics.inputs[1].records);
  assert.equal(statistics.records, 2 * statistics.inputs[0].records);
});

test("sysctl names are accepted with or without their prefixes", () => {
  const full = "net.netfilter.nf_conntrack_udp_timeout";
  assert.equal(sysctlName(full), full);
  assert.equal(sysctlName("nf_conntrack_udp_timeout"), full);
  assert.equal(sysctlName("udp_timeout"), full);
  assert.equal(sysctlName("udp_timeout_forever"), null);
});

test(
  "events -o: a device, a FIFO or a symbolic link is written in place, never replaced",
  { skip },
  async () => {
    const directory = mkdtempSync(join(tmpdir(), "pcc-cli-"));
    try {
      const expected = run(["events", PCAP, "--sysctl", SYSCTL, "--drain"]).stdout;

      // A symbolic link keeps pointing at its target, which gets the output.
      const target = join(directory, "target.txt");
      const link = join(directory, "link.txt");
      writeFileSync(target, "old\n");
      symlinkSync(target, link);
      assert.equal(run(["events", PCAP, "--sysctl", SYSCTL, "--drain", "-o", link]).status, 0);
      assert.ok(lstatSync(link).isSymbolicLink());
      assert.equal(readFileSync(target, "utf8"), expected);

      // A FIFO stays a FIFO; its reader gets the output.
      const fifo = join(directory, "fifo");
      assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
      const child = spawn(process.execPath, [CLI, "events", PCAP, "--sysctl", SYSCTL, "--drain", "-o", fifo]);
      const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
      const chunks: Buffer[] = [];
      for await (const chunk of createReadStream(fifo)) chunks.push(chunk as Buffer);
      assert.equal(await exited, 0);
      assert.equal(Buffer.concat(chunks).toString("utf8"), expected);
      assert.ok(lstatSync(fifo).isFIFO());

      // A character device (a private null device: /dev/null itself is not risked) stays a device.
      const device = join(directory, "null");
      if (spawnSync("mknod", ["-m", "666", device, "c", "1", "3"]).status === 0) {
        const written = run([
          "events",
          PCAP,
          "--sysctl",
          SYSCTL,
          "--drain",
          "--expect-output",
          device,
          "-o",
          device,
        ]);
        assert.equal(written.status, 0, written.stderr);
        assert.ok(lstatSync(device).isCharacterDevice());
      }
      assert.deepEqual(
        readdirSync(directory).filter((name) => name.includes(".partial-")),
        [],
        "no temporary file left behind",
      );
    } finally {
      rmSync(directory, { recursive: true });
    }
  },
);

/** A capture with thousands of events of every kind (TCP, UDP, ICMP, IPv6), made by the bench's generator. */
function synthCapture(directory: string): string {
  const path = join(directory, "synth.pcap");
  const made = spawnSync(process.execPath, [
    join(ROOT, "dist/test/bench/synth.js"),
    ...["--packets", "30000", "--conversations", "3000", "--out", path],
  ]);
  assert.equal(made.status, 0, String(made.stderr));
  return path;
}

test("events: text written as bytes equals the text formatter's strings, with and without timestamps", async () => {
  const directory = mkdtempSync(join(tmpdir(), "events-bytes-"));
  try {
    const capture = synthCapture(directory);
    for (const timestamp of [true, false]) {
      const formatter = createEventFormatter("text", { timestamp });
      const pieces: string[] = [];
      await replayCaptures([capture], {
        drain: true,
        onEvent: (event) => pieces.push(formatter.format(event)),
      });
      const expected = pieces.join("");
      const output = join(directory, `events-${timestamp}.txt`);
      const result = run([
        "events",
        capture,
        "--drain",
        "-o",
        output,
        ...(timestamp ? [] : ["--no-timestamp"]),
      ]);
      assert.equal(result.status, 0, result.stderr);
      assert.ok(pieces.length > 5000, `only ${pieces.length} events`);
      assert.ok(expected.length > 20 * 65536, "spans many output chunks");
      assert.equal(readFileSync(output, "latin1"), expected);
      // Through a pipe as well (standard output).
      const piped = spawnSync(
        process.execPath,
        [CLI, "events", capture, "--drain", ...(timestamp ? [] : ["--no-timestamp"])],
        {
          encoding: "latin1",
          maxBuffer: 1 << 28,
        },
      );
      assert.equal(piped.stdout, expected);
    }
  } finally {
    rmSync(directory, { recursive: true });
  }
});

/** Writes its item's text as latin1 bytes (the encoder contract: returns the offset after the item). */
const textEncoder: ByteEncoder<string> = {
  encode: (item, out, offset) => offset + Buffer.from(item, "latin1").copy(out, offset),
};

/** A stream that takes one chunk per turn of the event loop, so a fast writer meets backpressure. */
class SlowSink extends Writable {
  readonly chunks: Buffer[] = [];
  constructor() {
    super({ highWaterMark: 256 });
  }
  override _write(chunk: Buffer, _encoding: string, done: (error?: Error) => void): void {
    this.chunks.push(chunk);
    void nextTurn().then(() => done());
  }
}

test("ChunkedWriter keeps strings and encoded items in order, across chunks, under backpressure", async () => {
  const sink = new SlowSink();
  const writer = new ChunkedWriter(sink, 100, 64);
  let expected = "";
  let waits = 0;
  for (let i = 0; i < 2000; i++) {
    const item = `item ${i} ${"x".repeat(i % 40)}\n`;
    if (i % 7 === 3) writer.write(`text ${i}\n`);
    else writer.writeEncoded(textEncoder, item, 48);
    expected += i % 7 === 3 ? `text ${i}\n` : item;
    const wait = writer.pending();
    if (wait !== null) {
      waits++;
      await wait;
    }
  }
  // An item larger than a chunk gets a chunk of its own size.
  const big = `${"y".repeat(300)}\n`;
  writer.writeEncoded(textEncoder, big, big.length);
  expected += big;
  await writer.finish();
  assert.equal(Buffer.concat(sink.chunks).toString("latin1"), expected);
  assert.ok(waits > 10, `backpressure was felt (${waits} waits)`);
  // Every byte chunk was flushed before it could overflow: none is longer than a chunk, except the big one.
  assert.ok(sink.chunks.filter((chunk) => chunk.length > 300).length <= 1);
});

test("ChunkedWriter: writes after the stream failed (ENOSPC) end in that failure, never in a wait that cannot end", async () => {
  // A file stream that fails its first write, as on a full disk: the failure destroys the stream.
  const full = new Writable({
    highWaterMark: 16,
    write(_chunk, _encoding, done) {
      done(Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" }));
    },
  });
  const writer = new ChunkedWriter(full, 8, 8);
  writer.write("first line, over the high-water mark\n");
  // The wait ends with the failure, which the writer reports from then on.
  await writer.pending();
  assert.equal(full.destroyed, true);
  await assert.rejects(writer.pending() ?? Promise.resolve(), /ENOSPC/);
  // More lines, written without asking first (a footer), then the end: the failure, at once.
  writer.write("footer, over the high-water mark too\n");
  const outcome = await Promise.race([
    writer.finish().then(
      () => "finished",
      (error: Error) => error.message,
    ),
    nextTurn()
      .then(() => nextTurn())
      .then(() => "still waiting"),
  ]);
  assert.match(outcome, /ENOSPC/);
});
