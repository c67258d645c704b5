/**
 * The fuzz targets: every parser of untrusted bytes, each behind an `execute` that throws when an
 * invariant breaks. What every target holds to:
 * - no exception escapes but the parser's documented one (CaptureError, PolicyError), and that one
 *   names the file and the offset (or line);
 * - every record is counted in exactly one class and the counts reconcile through the engine;
 * - what is kept stays bounded (table, expectations, fragments, warnings) whatever the input.
 * Time per input is the runner's to check (fuzz.ts).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import type fc from "fast-check";
import { openCapture } from "../../lib/capture/open.js";
import { reorderSource } from "../../lib/capture/reorder.js";
import { mergeSources } from "../../lib/capture/merge.js";
import { MAX_WARNINGS_KEPT } from "../../lib/capture/bytes.js";
import {
  CaptureError,
  forEachRecord,
  type CaptureRecord,
  type CaptureSource,
} from "../../lib/capture/source.js";
import { PacketDecoder } from "../../lib/decode/decoder.js";
import {
  DEFAULT_FRAGMENT_MEMORY_LIMIT,
  FRAGMENT_OVERHEAD_BYTES,
  QUEUE_OVERHEAD_BYTES,
} from "../../lib/decode/defrag.js";
import { PacketClass, type DecodedPacket } from "../../lib/decode/packet.js";
import { ConntrackEngine, type EngineNatOptions } from "../../lib/conntrack/engine.js";
import { makeSettings, parseSysctl } from "../../lib/conntrack/settings.js";
import { parseNatRules } from "../../lib/conntrack/nat/iptables.js";
import { natRulesFromFlags } from "../../lib/conntrack/nat/flags.js";
import { parsePolicy, PolicyError } from "../../lib/check/policy.js";
import { createRecordStep, type RecordStep } from "../../lib/pipeline/replay.js";
import { corpusAvailable, corpusDir, repoRoot } from "../support/corpus.js";
import { TcpConversation, udpPacket } from "../unit/helper-fixtures.js";
import { makeIcmp, makeTcp } from "../unit/conntrack-fixtures.js";
import {
  captureFileArb,
  ftpConversationArb,
  frameSequenceArb,
  natRulesTextArb,
  policyTextArb,
  sysctlTextArb,
  tftpConversationArb,
} from "./generators.js";
import {
  captureLengthFields,
  decodeSegments,
  encodeFrames,
  forEachFrame,
  frameLengthFields,
  segmentLengthFields,
  type FrameRecord,
} from "./inputs.js";
import type { LengthField } from "./mutate.js";

export interface FuzzTarget {
  readonly name: string;
  readonly description: string;
  /** Inputs the mutator starts from (may be empty when `structured` is given). */
  seeds(): Buffer[];
  /** Generated inputs, valid enough to reach deep code; the runner mutates some of them. */
  readonly structured: fc.Arbitrary<Buffer> | null;
  lengthFields(input: Buffer): readonly LengthField[];
  /** Runs one input; throws when an invariant breaks. */
  execute(input: Buffer): Promise<void> | void;
}

/** An invariant that broke. */
export class InvariantError extends Error {
  override name = "InvariantError";
}

function check(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantError(typeof message === "string" ? message : message());
}

/** Seeds larger than this are cut: the mutations near the start matter most, and runs stay fast. */
const MAX_SEED_BYTES = 128 * 1024;

function readSeeds(directory: string, pattern: RegExp, deep = false): Buffer[] {
  const found: Buffer[] = [];
  let names: string[];
  try {
    names = readdirSync(directory).sort();
  } catch {
    return found;
  }
  for (const name of names) {
    const path = join(directory, name);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat === undefined) continue;
    if (stat.isDirectory() && deep) found.push(...readSeeds(path, pattern, false));
    else if (stat.isFile() && pattern.test(name)) found.push(readFileSync(path).subarray(0, MAX_SEED_BYTES));
  }
  return found;
}

/** A cheap hash of an input: chooses per-input settings, so a stored finding replays alike. */
function inputHash(input: Buffer): number {
  let h = 0x811c9dc5 ^ input.length;
  const n = Math.min(input.length, 64);
  for (let k = 0; k < n; k++) h = Math.imul(h ^ input[k], 0x01000193);
  return h >>> 0;
}

// ---------------------------------------------------------------------------------------------------
// Shared checks

function checkRecord(record: CaptureRecord, previousNumber: number, ordered: boolean): void {
  check(
    Number.isInteger(record.caplen) && record.caplen >= 0,
    () => `record ${record.recordNumber}: caplen ${record.caplen}`,
  );
  check(
    Number.isInteger(record.offset) && record.offset >= 0,
    () => `record ${record.recordNumber}: offset ${record.offset}`,
  );
  check(
    record.offset + record.caplen <= record.data.length,
    () =>
      `record ${record.recordNumber}: bytes ${record.offset}+${record.caplen} beyond its buffer of ${record.data.length}`,
  );
  check(
    Number.isInteger(record.origlen) && record.origlen >= 0,
    () => `record ${record.recordNumber}: origlen ${record.origlen}`,
  );
  // Years 1970 to 9999: every date downstream (ISO 8601 in CSV, JSON, reports) can be printed.
  check(
    Number.isInteger(record.tsSec) && record.tsSec >= 0 && record.tsSec <= 253402300799,
    () => `record ${record.recordNumber}: tsSec ${record.tsSec}`,
  );
  check(
    Number.isInteger(record.tsNsec) && record.tsNsec >= 0 && record.tsNsec < 1e9,
    () => `record ${record.recordNumber}: tsNsec ${record.tsNsec}`,
  );
  check(
    Number.isInteger(record.recordNumber) && record.recordNumber >= 1,
    () => `record number ${record.recordNumber}`,
  );
  if (ordered)
    check(
      record.recordNumber > previousNumber,
      () => `record ${record.recordNumber} after ${previousNumber}`,
    );
}

/** What the decoder hands on must lie within the buffer it names. */
function checkDecoded(packetClass: PacketClass, packet: DecodedPacket): void {
  check(packetClass >= 0 && packetClass <= 5 && Number.isInteger(packetClass), () => `class ${packetClass}`);
  if (packetClass === PacketClass.Malformed || packetClass === PacketClass.Truncated) {
    check(packet.reason !== "", "malformed or truncated without a reason");
  }
  if (packetClass !== PacketClass.Decoded) return;
  const where = `packet ${packet.recordNumber}`;
  check(packet.ipVersion === 4 || packet.ipVersion === 6, () => `${where}: ip version ${packet.ipVersion}`);
  check(
    packet.capturedEnd <= packet.buf.length,
    () => `${where}: capturedEnd ${packet.capturedEnd} > ${packet.buf.length}`,
  );
  check(
    packet.payloadCaptured >= 0 && packet.payloadLength >= 0,
    () => `${where}: payload ${packet.payloadCaptured}/${packet.payloadLength}`,
  );
  check(
    packet.payloadCaptured <= packet.payloadLength,
    () => `${where}: payload captured ${packet.payloadCaptured} > ${packet.payloadLength}`,
  );
  check(
    packet.payloadCaptured === 0 || packet.payloadOffset + packet.payloadCaptured <= packet.buf.length,
    () => `${where}: payload ${packet.payloadOffset}+${packet.payloadCaptured} beyond ${packet.buf.length}`,
  );
  check(
    packet.ipHeaderLength >= 0 && packet.ipLength >= 0,
    () => `${where}: ip lengths ${packet.ipHeaderLength}/${packet.ipLength}`,
  );
  if (packet.embedded.present) {
    check(
      packet.embedded.ipVersion === 4 || packet.embedded.ipVersion === 6,
      () => `${where}: embedded version`,
    );
  }
}

/** Bounded state: the table, expectations and fragments never exceed their limits. */
function checkBounds(engine: ConntrackEngine, decoder: PacketDecoder, memoryLimit: number): void {
  const settings = engine.settings;
  check(
    engine.liveConnections <= settings.conntrackMax,
    () => `${engine.liveConnections} live > max ${settings.conntrackMax}`,
  );
  check(
    engine.stats.maxLive <= settings.conntrackMax,
    () => `max live ${engine.stats.maxLive} > ${settings.conntrackMax}`,
  );
  check(
    engine.liveExpectations <= settings.expectMax,
    () => `${engine.liveExpectations} expectations > ${settings.expectMax}`,
  );
  // One fragment may tip the bytes over the limit, as in the kernel; nothing more.
  const slack = 0xffff + FRAGMENT_OVERHEAD_BYTES + QUEUE_OVERHEAD_BYTES;
  const held = decoder.defragmenter.stats.peakBytesHeld;
  check(held <= memoryLimit + slack, () => `fragments held ${held} bytes, limit ${memoryLimit}`);
}

function checkVerdicts(engine: ConntrackEngine, tracked: number): void {
  const stats = engine.stats;
  check(stats.packets === tracked, () => `engine saw ${stats.packets} packets, ${tracked} handed over`);
  const sum = stats.verdicts.reduce((a, b) => a + b, 0);
  check(sum === stats.packets, () => `verdicts add up to ${sum}, packets ${stats.packets}`);
}

function checkStep(step: RecordStep, delivered: number): void {
  const { counts, accounting, decoder, engine } = step;
  check(counts.records === delivered, () => `${delivered} records read, ${counts.records} handled`);
  check(
    accounting.records === delivered,
    () => `accounting has ${accounting.records} of ${delivered} records`,
  );
  check(
    decoder.stats.records === delivered,
    () => `decoder classed ${decoder.stats.records} of ${delivered}`,
  );
  const classes = Object.values(accounting.classes).reduce((a, b) => a + b, 0);
  check(classes === delivered, () => `classes add up to ${classes}, records ${delivered}`);
  check(
    accounting.classes.decoded === counts.tracked,
    () => `${accounting.classes.decoded} decoded, ${counts.tracked} tracked`,
  );
  checkVerdicts(engine, counts.tracked);
}

// ---------------------------------------------------------------------------------------------------
// capture: pcap / pcapng / gzip files through readers, decoder and engine

const FUZZ_NAME = "fuzz-input.pcap";

async function executeCapture(input: Buffer): Promise<void> {
  const hash = inputHash(input);
  const bufferBytes = [64, 256, 4096, 1 << 20][hash & 3];
  // Tiny chunks test refills at every byte; at most 512 of them, or streaming, not parsing, takes the time.
  const chunk = Math.max([1, 7, 4096, 1 << 20][(hash >>> 2) & 3], Math.ceil(input.length / 512));
  const reorder = ((hash >>> 4) & 3) === 0;
  const smallTable = ((hash >>> 6) & 3) === 0;
  // Sometimes the input twice, merged by timestamp as two inputs of one run.
  const inputCount = ((hash >>> 9) & 3) === 0 ? 2 : 1;
  const chunks: Buffer[] = [];
  for (let at = 0; at < input.length; at += chunk) chunks.push(input.subarray(at, at + chunk));
  const readers: CaptureSource[] = [];
  try {
    for (let k = 0; k < inputCount; k++) {
      readers.push(await openCapture("-", { stdin: Readable.from(chunks), name: FUZZ_NAME, bufferBytes }));
    }
  } catch (error) {
    await Promise.all(readers.map((reader) => reader.close()));
    if (error instanceof CaptureError) {
      check(
        error.message.startsWith(`${FUZZ_NAME}: `),
        () => `CaptureError without the file: ${error.message}`,
      );
      check(
        /\(byte offset \d+/.test(error.message),
        () => `CaptureError without an offset: ${error.message}`,
      );
      return;
    }
    throw error;
  }
  const ordered = readers.map((reader) =>
    reorder ? reorderSource(reader, { windowNs: 1e9, maxHeldBytes: 4096, maxHeldRecords: 8 }) : reader,
  );
  const source = ordered.length === 1 ? ordered[0] : mergeSources(ordered);
  const memoryLimit = smallTable ? 8192 : DEFAULT_FRAGMENT_MEMORY_LIMIT;
  const step = createRecordStep(
    {
      settings: smallTable ? { conntrackMax: 4, expectMax: 2 } : {},
      decoder: { memoryLimitBytes: memoryLimit, ipv6ExtensionHeaders: (hash >>> 8) & 1 ? "iana" : "kernel" },
      onPacket: (_record, packetClass, packet) => checkDecoded(packetClass, packet),
    },
    inputCount,
  );
  const delivered = new Array<number>(inputCount).fill(0);
  const previous = new Array<number>(inputCount).fill(0);
  const take = (record: CaptureRecord): void => {
    const index = record.inputIndex;
    check(index >= 0 && index < inputCount, () => `input index ${index} of ${inputCount}`);
    checkRecord(record, previous[index], !reorder);
    previous[index] = record.recordNumber;
    delivered[index]++;
    step.handle(record);
  };
  try {
    await forEachRecord(source, take);
  } finally {
    await source.close();
    await Promise.all(readers.map((reader) => reader.close()));
  }
  step.flush();
  step.decoder.finish();
  checkBounds(step.engine, step.decoder, memoryLimit);
  step.engine.drain();
  const total = delivered.reduce((a, b) => a + b, 0);
  checkStep(step, total);
  check(step.engine.liveConnections === 0, "entries left after drain");
  for (let index = 0; index < inputCount; index++) {
    const reader = readers[index];
    check(step.accounting.recordsOf(index) === delivered[index], () => `input ${index}: accounting differs`);
    check(
      delivered[index] === delivered[0],
      () => `the same bytes gave ${delivered[index]} and ${delivered[0]} records`,
    );
    const read = reader.packetsRead ?? delivered[index];
    check(read >= delivered[index], () => `reader counted ${read} packets, delivered ${delivered[index]}`);
    check(reader.warnings.length <= MAX_WARNINGS_KEPT + 1, () => `${reader.warnings.length} warnings kept`);
    for (const warning of reader.warnings) {
      check(warning.file === FUZZ_NAME, () => `warning names ${warning.file}`);
      check(
        Number.isInteger(warning.offset) && warning.offset >= 0,
        () => `warning offset ${warning.offset}: ${warning.message}`,
      );
      check(
        Number.isInteger(warning.recordNumber) && warning.recordNumber >= 1,
        () => `warning packet ${warning.recordNumber}`,
      );
      check(warning.message !== "", "empty warning");
    }
  }
}

const captureTarget: FuzzTarget = {
  name: "capture",
  description: "pcap, pcapng and gzip files through the readers, the decoder and the engine",
  seeds() {
    const seeds = readSeeds(join(repoRoot, "samples"), /\.pcap(ng)?$/, true);
    if (corpusAvailable()) seeds.push(...readSeeds(corpusDir, /./));
    seeds.push(...readSeeds(join(repoRoot, "test", "fuzz", "regressions"), /^capture-/));
    return seeds;
  },
  structured: captureFileArb(),
  lengthFields: (input) => captureLengthFields(input),
  execute: executeCapture,
};

// ---------------------------------------------------------------------------------------------------
// decode: frame sequences (every link type, IP, extension headers, fragments, ICMP errors)

function executeFrames(input: Buffer): void {
  const hash = inputHash(input);
  const smallTable = (hash & 1) === 1;
  const memoryLimit = (hash >>> 1) & 1 ? 4096 : DEFAULT_FRAGMENT_MEMORY_LIMIT;
  const step = createRecordStep(
    {
      settings: smallTable ? { conntrackMax: 2, expectMax: 1 } : {},
      decoder: { memoryLimitBytes: memoryLimit, ipv6ExtensionHeaders: (hash >>> 2) & 1 ? "iana" : "kernel" },
      onPacket: (_record, packetClass, packet) => checkDecoded(packetClass, packet),
    },
    1,
  );
  const record: CaptureRecord = {
    data: input,
    offset: 0,
    caplen: 0,
    origlen: 0,
    tsSec: 1_700_000_000,
    tsNsec: 0,
    linkType: 1,
    interfaceId: 0,
    inputIndex: 0,
    recordNumber: 0,
    fileOffset: 0,
  };
  let delivered = 0;
  forEachFrame(input, (linkType, start, length, cut) => {
    record.linkType = linkType;
    record.offset = start;
    record.caplen = length;
    record.origlen = length + cut;
    record.recordNumber = ++delivered;
    record.fileOffset = start;
    record.tsNsec += 10_000_000;
    if (record.tsNsec >= 1e9) {
      record.tsNsec -= 1e9;
      record.tsSec++;
    }
    step.handle(record);
  });
  step.decoder.finish();
  checkBounds(step.engine, step.decoder, memoryLimit);
  step.engine.drain();
  checkStep(step, delivered);
}

/** The records of a classic pcap file as frame sequences of up to eight frames (decode seeds). */
function frameSequencesOf(file: Buffer): Buffer[] {
  const sequences: Buffer[] = [];
  if (file.length < 24) return sequences;
  const magic = file.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && magic !== 0xd4c3b2a1 && magic !== 0x4d3cb2a1) return sequences;
  const u32 = (at: number): number => (le ? file.readUInt32LE(at) : file.readUInt32BE(at));
  const linkType = u32(20) & 0xffff;
  let frames: FrameRecord[] = [];
  for (let at = 24; at + 16 <= file.length;) {
    const caplen = u32(at + 8);
    const origlen = u32(at + 12);
    if (at + 16 + caplen > file.length || caplen > 0xffff) break;
    frames.push({
      linkType,
      frame: file.subarray(at + 16, at + 16 + caplen),
      cut: Math.max(0, origlen - caplen),
    });
    if (frames.length === 8) {
      sequences.push(encodeFrames(frames));
      frames = [];
    }
    at += 16 + caplen;
  }
  if (frames.length > 0) sequences.push(encodeFrames(frames));
  return sequences;
}

const decodeTarget: FuzzTarget = {
  name: "decode",
  description:
    "frame sequences through the decoder (links, IPv4, IPv6 chains, fragments, transports) and engine",
  seeds: () => [
    ...readSeeds(join(repoRoot, "samples"), /^inside\.pcap$/, true).flatMap(frameSequencesOf),
    ...readSeeds(join(repoRoot, "test", "fuzz", "regressions"), /^decode-/),
  ],
  structured: frameSequenceArb(),
  lengthFields: frameLengthFields,
  execute: executeFrames,
};

// ---------------------------------------------------------------------------------------------------
// ftp and tftp: helper parsers reached through a tracked connection

const ROUTER = "198.51.100.32";

function masquerade(vantage: "inside" | "arrival"): EngineNatOptions {
  const { rules, errors } = natRulesFromFlags({ masquerade: [`out0=${ROUTER}`] });
  check(errors.length === 0, "masquerade flag");
  return { rules, vantage };
}

function executeFtp(input: Buffer): void {
  const { config, segments } = decodeSegments(input);
  const ipv6 = (config & 8) !== 0;
  const nat = !ipv6 && (config & 1) !== 0 ? masquerade(config & 2 ? "arrival" : "inside") : null;
  const engine = new ConntrackEngine({
    nat,
    ftpLoose: (config & 4) !== 0,
    settings: config & 16 ? { expectMax: 1, conntrackMax: 3 } : {},
  });
  const [client, server] = ipv6 ? ["2001:db8:1::3", "2001:db8:2::9"] : ["10.1.2.3", "203.0.113.47"];
  const conversation = new TcpConversation(engine, client, server, 40000 + (config & 0xff), 21);
  conversation.handshake();
  for (const { direction, payload } of segments) {
    const verdict = direction === 0 ? conversation.fromClient(payload) : conversation.fromServer(payload);
    check(Number.isInteger(verdict) && verdict >= 0 && verdict <= 5, () => `verdict ${verdict}`);
    check(
      engine.liveExpectations <= engine.settings.expectMax,
      () => `${engine.liveExpectations} expectations`,
    );
  }
  const helpers = engine.stats.helpers;
  check(
    helpers.packets <= segments.length,
    () => `helper saw ${helpers.packets} of ${segments.length} segments`,
  );
  check(
    helpers.commands + helpers.partialDrops + helpers.malformedDrops <= helpers.packets,
    () => `helper counted more outcomes than packets: ${JSON.stringify(helpers)}`,
  );
  checkVerdicts(engine, segments.length + 3);
  engine.drain();
  check(engine.liveConnections === 0 && engine.liveExpectations === 0, "state left after drain");
}

const ftpTarget: FuzzTarget = {
  name: "ftp",
  description: "FTP control connections (PORT, EPRT, 227, 229), with and without NAT, through the helper",
  seeds: () => readSeeds(join(repoRoot, "test", "fuzz", "regressions"), /^ftp-/),
  structured: ftpConversationArb(),
  lengthFields: segmentLengthFields,
  execute: executeFtp,
};

function executeTftp(input: Buffer): void {
  const { config, segments } = decodeSegments(input);
  const nat = (config & 1) !== 0 ? masquerade("inside") : null;
  const engine = new ConntrackEngine({ nat, settings: config & 2 ? { expectMax: 1 } : {} });
  let ts = 100;
  for (const { direction, payload } of segments) {
    ts += 0.01;
    const packet =
      direction === 0
        ? udpPacket("10.1.2.3", "203.0.113.47", 40000, 69, payload, ts)
        : udpPacket("203.0.113.47", "10.1.2.3", 69, 40000, payload, ts);
    engine.process(packet);
    check(
      engine.liveExpectations <= engine.settings.expectMax,
      () => `${engine.liveExpectations} expectations`,
    );
  }
  checkVerdicts(engine, segments.length);
  engine.drain();
}

const tftpTarget: FuzzTarget = {
  name: "tftp",
  description: "TFTP requests through the helper",
  seeds: () => readSeeds(join(repoRoot, "test", "fuzz", "regressions"), /^tftp-/),
  structured: tftpConversationArb(),
  lengthFields: segmentLengthFields,
  execute: executeTftp,
};

// ---------------------------------------------------------------------------------------------------
// Text parsers: sysctl, iptables-save and NAT flags, check policies

function textSeeds(prefix: string, more: Buffer[]): Buffer[] {
  return [...more, ...readSeeds(join(repoRoot, "test", "fuzz", "regressions"), new RegExp(`^${prefix}-`))];
}

function executeSysctl(input: Buffer): void {
  const text = input.toString("utf8");
  const result = parseSysctl(text);
  const lines = text.split(/\r?\n/).length;
  for (const entry of result.invalid) {
    check(
      Number.isInteger(entry.line) && entry.line >= 1 && entry.line <= lines,
      () => `invalid line ${entry.line}`,
    );
  }
  for (const [field, value] of Object.entries(result.overrides)) {
    check(Number.isSafeInteger(value) && value >= 0, () => `${field} = ${value}`);
  }
  // What the parser accepted, the settings take.
  makeSettings(result.overrides);
}

const sysctlTarget: FuzzTarget = {
  name: "sysctl",
  description: "sysctl -a text (parseSysctl, then makeSettings)",
  seeds: () => textSeeds("sysctl", readSeeds(join(repoRoot, "samples"), /^sysctl\.txt$/, true).slice(0, 4)),
  structured: sysctlTextArb().map((text) => Buffer.from(text)),
  lengthFields: () => [],
  execute: executeSysctl,
};

const NAT_SEED = `*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:PORTFWD - [0:0]
-A PREROUTING -i out0 -j PORTFWD
-A PREROUTING -d 198.51.100.32/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128
-A POSTROUTING ! -s 10.1.2.0/255.255.255.0 -o out0 -j RETURN
-A POSTROUTING -s 10.1.2.0/24 -o eth+ -p udp -m udp --sport 1024:65535 -j SNAT --to-source 198.51.100.32-198.51.100.40:20000-29999 --random --persistent
-A POSTROUTING -o out0 -m comment --comment "masq \\"all\\"" -j MASQUERADE --to-ports 1024-2047 --random-fully
-A PORTFWD -p tcp -m multiport --dports 8080,8443:8444 -j DNAT --to-destination 10.1.2.3:80
-A PORTFWD ! -p icmp -j RETURN
-A PORTFWD -p icmp -j DNAT --to-destination 10.1.2.4
-A PORTFWD -p tcp -d 2001:db8::1 -j DNAT --to-destination [2001:db8::2]:8080
COMMIT
`;

const NAT_FLAG_KINDS = ["snat", "masquerade", "dnat", "redirect", "interfaceAddress"] as const;

function executeNat(input: Buffer): void {
  const text = input.toString("utf8");
  const family = (inputHash(input) & 1) === 0 ? 4 : 6;
  const lineCount = text.split(/\r?\n/).length;
  const parsed = parseNatRules(text, "rules.txt", { family });
  for (const error of parsed.errors) {
    check(
      error.origin === `rules.txt:${error.line}`,
      () => `error origin ${error.origin} for line ${error.line}`,
    );
    // Line 0 stands for the whole file (no *nat table, chains that jump in a loop).
    check(error.line >= 0 && error.line <= lineCount, () => `error line ${error.line} of ${lineCount}`);
    check(error.message !== "", "empty rule error");
  }
  // The same lines as command-line flags.
  const flags: Record<(typeof NAT_FLAG_KINDS)[number], string[]> = {
    snat: [],
    masquerade: [],
    dnat: [],
    redirect: [],
    interfaceAddress: [],
  };
  text
    .split("\n")
    .forEach((line, index) => flags[NAT_FLAG_KINDS[index % NAT_FLAG_KINDS.length]].push(line.trim()));
  const fromFlags = natRulesFromFlags(flags);
  for (const error of fromFlags.errors)
    check(error.origin.startsWith("--"), () => `flag error origin ${error.origin}`);
  // Rules that read without error must be usable: chains that jump in circles included.
  for (const rules of [
    parsed.errors.length === 0 ? parsed.rules : null,
    fromFlags.errors.length === 0 ? fromFlags.rules : null,
  ]) {
    if (rules === null) continue;
    for (const vantage of ["inside", "arrival"] as const) {
      const engine = new ConntrackEngine({
        nat: { rules, vantage, inInterface: "in0", outInterface: "out0" },
      });
      const v6 = family === 6;
      const [a, b] = v6 ? ["2001:db8::1", "2001:db8::2"] : ["10.1.2.3", "198.51.100.32"];
      engine.process(makeTcp({ src: a, dst: b, sport: 40000, dport: 80, flags: "S", ts: 1 }));
      engine.process(makeTcp({ src: b, dst: a, sport: 80, dport: 40000, flags: "SA", ts: 1.1 }));
      engine.process(udpPacket(a, b, 5353, 53, Buffer.from("x"), 1.2));
      engine.process(makeIcmp({ src: a, dst: b, type: v6 ? 128 : 8, code: 0, id: 1, seq: 1, ts: 1.3 }));
      checkVerdicts(engine, 4);
    }
  }
}

const natTarget: FuzzTarget = {
  name: "nat-rules",
  description: "iptables-save text (parseNatRules) and the NAT flags, then the rules on a few packets",
  seeds: () => textSeeds("nat-rules", [Buffer.from(NAT_SEED)]),
  structured: natRulesTextArb().map((text) => Buffer.from(text)),
  lengthFields: () => [],
  execute: executeNat,
};

function executePolicy(input: Buffer): void {
  const text = input.toString("utf8");
  const file = (inputHash(input) & 1) === 0 ? "policy.yaml" : "policy.json";
  try {
    parsePolicy(text, file);
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error;
    check(error.problems.length > 0, "PolicyError without problems");
    for (const problem of error.problems) {
      check(Number.isInteger(problem.line) && problem.line >= 1, () => `problem line ${problem.line}`);
      check(
        Number.isInteger(problem.column) && problem.column >= 1,
        () => `problem column ${problem.column}`,
      );
      check(problem.message !== "", "empty problem");
    }
  }
}

/**
 * A PolicyError's message is one line per problem, each starting with the file, and carries no
 * control characters from the input (it goes to a terminal). Not yet held: see fuzz.test.ts.
 */
export function policyMessageIsSafe(input: Buffer): boolean {
  const text = input.toString("utf8");
  for (const file of ["policy.json", "policy.yaml"]) {
    try {
      parsePolicy(text, file);
    } catch (error) {
      if (!(error instanceof PolicyError)) return false;
      // eslint-disable-next-line no-control-regex
      const control = /[\u0000-\u0008\u000b-\u001f\u007f]/;
      const lines = error.message.split("\n");
      if (!lines.every((line) => line.startsWith(`${file}:`) && !control.test(line))) return false;
    }
  }
  return true;
}

const policyTarget: FuzzTarget = {
  name: "policy",
  description: "check policies (YAML/JSON) through parsePolicy",
  seeds: () => textSeeds("policy", readSeeds(join(repoRoot, "samples", "policies"), /\.(ya?ml|json)$/)),
  structured: policyTextArb().map((text) => Buffer.from(text)),
  lengthFields: () => [],
  execute: executePolicy,
};

export const TARGETS: readonly FuzzTarget[] = [
  captureTarget,
  decodeTarget,
  ftpTarget,
  tftpTarget,
  sysctlTarget,
  natTarget,
  policyTarget,
];

export function targetNamed(name: string): FuzzTarget {
  const target = TARGETS.find((t) => t.name === name);
  if (target === undefined)
    throw new Error(`no fuzz target "${name}" (there are ${TARGETS.map((t) => t.name).join(", ")})`);
  return target;
}
