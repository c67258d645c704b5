/**
 * The FTP helper as nf_conntrack_ftp.c behaves (6.x): it reads PORT/EPRT commands from the client
 * and 227/229 replies from the server, and expects the data connection they announce.
 *
 * Only segments that start right after a line end it remembered are looked into (two remembered
 * positions per direction), so the first data segment of each direction is never parsed and a
 * retransmitted command matches again. A segment that is only the start of a command, or a command
 * whose numbers do not parse, makes the kernel drop the packet, and so does an expectation the table
 * refuses. Everything is read in place from the packet's buffer: the work per packet is bounded by
 * its payload, nothing is kept between packets but the remembered positions.
 */
import { IPPROTO_TCP, type DecodedPacket } from "../../decode/packet.js";
import type { Connection, Tuple } from "../connection.js";
import {
  ExpectError,
  ExpectRequest,
  HelperVerdict,
  type ConntrackHelper,
  type ExpectPolicy,
  type HelperHost,
  type HelperVerdictValue,
} from "./helper.js";

/** How many line-end positions the kernel remembers per direction (`NUM_SEQ_TO_REMEMBER`). */
export const NUM_SEQ_TO_REMEMBER = 2;

/** Per-connection FTP state (`struct nf_ct_ftp_master`). */
export class FtpConnectionState {
  /** Sequence numbers just after a segment that ended in "\n": [dir * 2 + i]. */
  readonly seqAfterNewline = new Uint32Array(2 * NUM_SEQ_TO_REMEMBER);
  readonly remembered = new Uint8Array(2);
}

/** Outcome of matching one pattern against a segment. */
const MATCH_NONE = 0;
const MATCH_FOUND = 1;
/** The segment is a prefix of the command, or the command's argument never starts: the kernel drops. */
const MATCH_PARTIAL = 2;
/** The command matched but its address/port did not parse: the kernel drops too. */
const MATCH_MALFORMED = 3;

const CHAR_CR = 0x0d;
const CHAR_LF = 0x0a;
const CHAR_SPACE = 0x20;
const CHAR_OPEN_PAREN = 0x28;
const CHAR_CLOSE_PAREN = 0x29;
const CHAR_COMMA = 0x2c;
const CHAR_DOT = 0x2e;
const CHAR_COLON = 0x3a;
/** "No terminator required" for the number parser (the 227 reply). */
const ANY_TERMINATOR = -1;

export const enum Parser {
  Rfc959,
  Rfc1123,
  Eprt,
  EpsvResponse,
}

interface FtpPattern {
  /** Upper-case bytes; compared case-insensitively. */
  bytes: Uint8Array;
  /** Byte to skip to before the numbers, -1 for none. */
  skip: number;
  terminator: number;
  parser: Parser;
}

function pattern(text: string, skip: number, terminator: number, parser: Parser): FtpPattern {
  return { bytes: Uint8Array.from(text, (c) => c.charCodeAt(0)), skip, terminator, parser };
}

/** The kernel's `search[dir]` table: client commands, then server replies. */
const PATTERNS: readonly (readonly FtpPattern[])[] = [
  [pattern("PORT", CHAR_SPACE, CHAR_CR, Parser.Rfc959), pattern("EPRT", CHAR_SPACE, CHAR_CR, Parser.Eprt)],
  [
    pattern("227 ", -1, ANY_TERMINATOR, Parser.Rfc1123),
    pattern("229 ", CHAR_OPEN_PAREN, CHAR_CLOSE_PAREN, Parser.EpsvResponse),
  ],
];

export interface FtpHelperOptions {
  /** nf_conntrack_ftp `loose=1`: follow an announced address that differs from the announcer's. */
  loose?: boolean;
  ports?: readonly number[];
}

export class FtpHelper implements ConntrackHelper {
  readonly name = "ftp";
  readonly protocol = IPPROTO_TCP;
  readonly defaultPorts: readonly number[];
  readonly policy: ExpectPolicy = { maxExpected: 1, timeout: 300 };
  readonly loose: boolean;

  /** The announced address (four words, IPv4 in word 0) and port of the last match. */
  private readonly address = new Uint32Array(4);
  private port = 0;
  /** The matched pattern's parser and the length of its numbers' text (the kernel's `matchlen`). */
  private matchParser = Parser.Rfc959;
  private matchLength = 0;
  private readonly numbers = new Uint32Array(6);
  private readonly ipv6 = new Uint8Array(16);
  private readonly ipv6Work = new Uint8Array(16);
  private readonly request = new ExpectRequest();

  constructor(options: FtpHelperOptions = {}) {
    this.loose = options.loose ?? false;
    this.defaultPorts = options.ports ?? [21];
  }

  help(
    connection: Connection,
    direction: number,
    established: boolean,
    packet: DecodedPacket,
    host: HelperHost,
  ): HelperVerdictValue {
    // Until traffic went both ways the kernel does not look (ctinfo NEW / RELATED).
    if (!established) return HelperVerdict.Accept;
    const length = packet.payloadLength;
    if (length <= 0) return HelperVerdict.Accept;
    const stats = host.helperStats;
    stats.packets++;
    if (packet.payloadCaptured < length) {
      stats.payloadNotCaptured++;
      return HelperVerdict.Accept;
    }
    let state = connection.helperState as FtpConnectionState | null;
    if (state === null) {
      state = new FtpConnectionState();
      connection.helperState = state;
    }
    const buf = packet.buf;
    const start = packet.payloadOffset;
    const endsInNewline = buf[start + length - 1] === CHAR_LF;
    const seq = packet.tcpSeq >>> 0;
    const nextSeq = (seq + length) >>> 0;

    if (!isRemembered(state, direction, seq)) {
      stats.outOfSequence++;
      if (endsInNewline) remember(state, direction, nextSeq);
      return HelperVerdict.Accept;
    }

    const announcer = direction === 0 ? connection.original : connection.reply;
    const other = direction === 0 ? connection.reply : connection.original;
    const address = this.address;
    // EPSV names no address: it defaults to the announcer's own.
    address[0] = announcer.src0;
    address[1] = announcer.src1;
    address[2] = announcer.src2;
    address[3] = announcer.src3;
    this.port = 0;

    const patterns = PATTERNS[direction];
    let found = MATCH_NONE;
    for (let i = 0; i < patterns.length && found === MATCH_NONE; i++) {
      found = this.findPattern(buf, start, length, patterns[i], announcer.family);
    }
    if (found === MATCH_PARTIAL) {
      stats.partialDrops++;
      return HelperVerdict.Drop;
    }
    if (found === MATCH_MALFORMED) {
      stats.malformedDrops++;
      return HelperVerdict.Drop;
    }
    let verdict: HelperVerdictValue = HelperVerdict.Accept;
    if (found === MATCH_FOUND) {
      stats.commands++;
      verdict = this.expect(connection, direction, seq, announcer, other, host);
    }
    if (endsInNewline) remember(state, direction, nextSeq);
    return verdict;
  }

  /** Builds and registers the expectation for the announced address and port. */
  private expect(
    connection: Connection,
    direction: number,
    seq: number,
    announcer: Tuple,
    other: Tuple,
    host: HelperHost,
  ): HelperVerdictValue {
    const address = this.address;
    const request = this.request;
    // From the other side to where the announcer's traffic appears to come from (NAT-aware).
    request.reset(IPPROTO_TCP, other);
    request.dstPort = this.port;
    const natted = connection.natted;
    if (natted) {
      // nf_nat_ftp: the data connection is translated back to the announced port, and may have to
      // be expected on another one.
      request.natSavedPort = this.port;
      request.natFindPort = true;
    }
    if (
      address[0] !== announcer.src0 ||
      address[1] !== announcer.src1 ||
      address[2] !== announcer.src2 ||
      address[3] !== announcer.src3
    ) {
      // Announcing someone else's address could open holes to third hosts: followed only when loose.
      host.helperStats.addressMismatch++;
      if (!this.loose) return HelperVerdict.Accept;
      request.dst0 = address[0];
      request.dst1 = address[1];
      request.dst2 = address[2];
      request.dst3 = address[3];
    }
    if (host.expectRelated(connection, request) !== ExpectError.None) {
      host.helperStats.refusedDrops++;
      return HelperVerdict.Drop;
    }
    if (natted) this.rewrite(connection, direction, seq, other, request.dstPort, host);
    return HelperVerdict.Accept;
  }

  /**
   * nf_nat_ftp's rewrite: the numbers' text becomes the address the data connection must go to on
   * the far side (where this packet is going: `other`'s destination) and the expected port. Only
   * its length matters to the model: a change shifts the sequence numbers of what follows.
   */
  private rewrite(
    connection: Connection,
    direction: number,
    seq: number,
    other: Tuple,
    port: number,
    host: HelperHost,
  ): void {
    const stats = host.helperStats;
    stats.natRewrites++;
    const length = rewrittenLength(this.matchParser, other, port);
    const delta = length - this.matchLength;
    if (delta === 0) return;
    stats.natResized++;
    host.adjustSequence(connection, direction, seq, delta);
  }

  /** `find_pattern`: the command must open the segment. */
  private findPattern(
    buf: Buffer,
    start: number,
    length: number,
    candidate: FtpPattern,
    family: number,
  ): number {
    const bytes = candidate.bytes;
    const patternLength = bytes.length;
    if (length <= patternLength) {
      return startsWithIgnoringCase(buf, start, bytes, length) ? MATCH_PARTIAL : MATCH_NONE;
    }
    if (!startsWithIgnoringCase(buf, start, bytes, patternLength)) return MATCH_NONE;
    let i = patternLength;
    if (candidate.skip >= 0) {
      while (buf[start + i] !== candidate.skip) {
        if (i === length - 1) return MATCH_PARTIAL;
        i++;
      }
      i++;
    }
    const parsed = this.parse(candidate.parser, buf, start + i, length - i, candidate.terminator, family);
    if (parsed <= 0) return MATCH_MALFORMED;
    this.matchParser = candidate.parser;
    this.matchLength = parsed;
    return MATCH_FOUND;
  }

  private parse(
    parser: Parser,
    buf: Buffer,
    start: number,
    length: number,
    terminator: number,
    family: number,
  ) {
    switch (parser) {
      case Parser.Rfc959:
        return this.parseRfc959(buf, start, length, terminator);
      case Parser.Rfc1123: {
        // RFC 1123: the 227 text is free-form; the numbers start at the first digit.
        let i = 0;
        while (i < length && !isDigit(buf[start + i])) i++;
        if (i === length) return 0;
        return this.parseRfc959(buf, start + i, length - i, ANY_TERMINATOR);
      }
      case Parser.Eprt:
        return this.parseEprt(buf, start, length, family);
      case Parser.EpsvResponse:
        return this.parseEpsv(buf, start, length);
    }
  }

  /** `h1,h2,h3,h4,p1,p2`: numbers wrap as the kernel's u32 arithmetic does. */
  private parseRfc959(buf: Buffer, start: number, length: number, terminator: number): number {
    const numbers = this.numbers;
    const consumed = parseNumbers(buf, start, length, numbers, 6, CHAR_COMMA, terminator);
    if (consumed === 0) return 0;
    this.address[0] = ((numbers[0] << 24) | (numbers[1] << 16) | (numbers[2] << 8) | numbers[3]) >>> 0;
    this.port = ((numbers[4] << 8) | numbers[5]) & 0xffff;
    return consumed;
  }

  /** `|1|a.b.c.d|port|` or `|2|v6|port|`, any printable non-digit delimiter; family must match. */
  private parseEprt(buf: Buffer, start: number, length: number, family: number): number {
    if (length <= 3) return 0;
    const delimiter = buf[start];
    if (isDigit(delimiter) || delimiter < 33 || delimiter > 126 || buf[start + 2] !== delimiter) return 0;
    const protocol = buf[start + 1];
    if ((family === 4 && protocol !== 0x31) || (family === 6 && protocol !== 0x32)) return 0;
    let consumed: number;
    if (protocol === 0x31) {
      const numbers = this.numbers;
      consumed = parseNumbers(buf, start + 3, length - 3, numbers, 4, CHAR_DOT, delimiter);
      if (consumed !== 0) {
        this.address[0] = ((numbers[0] << 24) | (numbers[1] << 16) | (numbers[2] << 8) | numbers[3]) >>> 0;
      }
    } else {
      consumed = parseIpv6(buf, start + 3, Math.min(length - 3, 0xffff), delimiter, this.ipv6, this.ipv6Work);
      if (consumed !== 0) {
        const a = this.ipv6;
        for (let w = 0; w < 4; w++) {
          this.address[w] =
            ((a[4 * w] << 24) | (a[4 * w + 1] << 16) | (a[4 * w + 2] << 8) | a[4 * w + 3]) >>> 0;
        }
      }
    }
    if (consumed === 0) return 0;
    return this.parsePort(buf, start, 3 + consumed + 1, length, delimiter);
  }

  /** `(|||port|)`. */
  private parseEpsv(buf: Buffer, start: number, length: number): number {
    if (length <= 3) return 0;
    const delimiter = buf[start];
    if (
      isDigit(delimiter) ||
      delimiter < 33 ||
      delimiter > 126 ||
      buf[start + 1] !== delimiter ||
      buf[start + 2] !== delimiter
    ) {
      return 0;
    }
    return this.parsePort(buf, start, 3, length, delimiter);
  }

  /** `get_port`: digits up to the delimiter, 16-bit wrap, 0 refused. */
  private parsePort(buf: Buffer, start: number, from: number, length: number, delimiter: number): number {
    let port = 0;
    for (let i = from; i < length; i++) {
      const c = buf[start + i];
      if (c === delimiter) {
        if (port === 0) return 0;
        this.port = port;
        return i + 1;
      }
      if (!isDigit(c)) return 0;
      port = (port * 10 + (c - 0x30)) & 0xffff;
    }
    return 0;
  }
}

/** Characters of `value` in decimal (0 ≤ value ≤ 65535). */
function decimalLength(value: number): number {
  return value < 10 ? 1 : value < 100 ? 2 : value < 1000 ? 3 : value < 10000 ? 4 : 5;
}

/**
 * Length of the text nf_nat_ftp writes for `address` (`tuple`'s destination) and `port`:
 * `a,b,c,d,p1,p2` (PORT, 227), `|1|a.b.c.d|port|` or `|2|` and the IPv6 address as `%pI6` prints it
 * (eight groups of four hex digits, 39 characters) (EPRT), `|||port|` (229).
 */
export function rewrittenLength(parser: Parser, tuple: Tuple, port: number): number {
  const v4 = tuple.dst0 >>> 0;
  const dotted =
    decimalLength(v4 >>> 24) +
    decimalLength((v4 >>> 16) & 0xff) +
    decimalLength((v4 >>> 8) & 0xff) +
    decimalLength(v4 & 0xff);
  switch (parser) {
    case Parser.Rfc959:
    case Parser.Rfc1123:
      return dotted + 5 + decimalLength(port >>> 8) + decimalLength(port & 0xff);
    case Parser.Eprt:
      return (tuple.family === 4 ? dotted + 3 : 39) + 5 + decimalLength(port);
    case Parser.EpsvResponse:
      return 4 + decimalLength(port);
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function lowerAscii(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}

function startsWithIgnoringCase(buf: Buffer, start: number, bytes: Uint8Array, count: number): boolean {
  for (let i = 0; i < count; i++) {
    if (lowerAscii(buf[start + i]) !== lowerAscii(bytes[i])) return false;
  }
  return true;
}

/**
 * `try_number`: `count` decimal numbers separated by `separator`, ended by `terminator` (or by any
 * other byte when it is ANY_TERMINATOR). Returns the bytes consumed up to the terminator, 0 on failure.
 */
function parseNumbers(
  buf: Buffer,
  start: number,
  length: number,
  out: Uint32Array,
  count: number,
  separator: number,
  terminator: number,
): number {
  out.fill(0, 0, count);
  let index = 0;
  for (let i = 0; i < length && index < count; i++) {
    const c = buf[start + i];
    if (isDigit(c)) {
      out[index] = (Math.imul(out[index], 10) + (c - 0x30)) >>> 0;
    } else if (c === separator) {
      index++;
    } else {
      return (c === terminator || terminator === ANY_TERMINATOR) && index === count - 1 ? i : 0;
    }
  }
  return 0;
}

function isRemembered(state: FtpConnectionState, direction: number, seq: number): boolean {
  const base = direction * NUM_SEQ_TO_REMEMBER;
  const count = state.remembered[direction];
  for (let i = 0; i < count; i++) {
    if (state.seqAfterNewline[base + i] === seq) return true;
  }
  return false;
}

/** `update_nl_seq`: keeps the two latest line ends, never going back in sequence space. */
function remember(state: FtpConnectionState, direction: number, seq: number): void {
  const base = direction * NUM_SEQ_TO_REMEMBER;
  const seqs = state.seqAfterNewline;
  const count = state.remembered[direction];
  for (let i = 0; i < count; i++) if (seqs[base + i] === seq) return;
  if (count < NUM_SEQ_TO_REMEMBER) {
    seqs[base + count] = seq;
    state.remembered[direction] = count + 1;
    return;
  }
  const oldest = seqBefore(seqs[base], seqs[base + 1]) ? 0 : 1;
  if (seqBefore(seqs[base + oldest], seq)) seqs[base + oldest] = seq;
}

function seqBefore(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

// ---- in6_pton ---------------------------------------------------------------------------------

const V6_XDIGIT = 0x00010000;
const V6_DIGIT = 0x00020000;
const V6_COLON_MASK = 0x00700000;
const V6_COLON_1 = 0x00100000;
const V6_COLON_2 = 0x00200000;
const V6_COLON_1_2 = 0x00400000;
const V6_DOT = 0x00800000;
const V6_DELIM = 0x10000000;
const V6_NULL = 0x20000000;
const V6_UNKNOWN = 0x40000000;

/** Character class as the kernel's address parser sees it (the end of the text counts as a delimiter). */
function classify(c: number, delimiter: number): number {
  if (c === delimiter || c === 0) return V6_DELIM;
  if (c === CHAR_COLON) return V6_COLON_MASK;
  if (c === CHAR_DOT) return V6_DOT;
  if (c >= 0x30 && c <= 0x39) return (c - 0x30) | V6_XDIGIT | V6_DIGIT;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return (lower - 0x61 + 10) | V6_XDIGIT;
  return V6_UNKNOWN;
}

/**
 * The kernel's `in6_pton` semantics (groups, one "::", a dotted IPv4 tail where it fits), reading
 * at most `length` bytes. Returns the bytes up to the delimiter, 0 when the text is not an address.
 */
export function parseIpv6(
  buf: Uint8Array,
  start: number,
  length: number,
  delimiter: number,
  out: Uint8Array,
  work: Uint8Array,
): number {
  work.fill(0);
  let state = V6_COLON_1_2 | V6_XDIGIT | V6_NULL;
  let written = 0;
  let compressedAt = -1;
  let groupStart = -1;
  let word = 0;
  let s = 0;
  for (;;) {
    const c = classify(s < length ? buf[start + s] : 0, delimiter);
    if ((c & state) === 0) return 0;
    if ((c & (V6_DELIM | V6_COLON_MASK)) !== 0) {
      if ((state & V6_NULL) === 0) {
        work[written++] = (word >> 8) & 0xff;
        work[written++] = word & 0xff;
      }
      word = 0;
      if ((c & V6_DELIM) !== 0) break;
      switch (state & V6_COLON_MASK) {
        case V6_COLON_2:
          compressedAt = written;
          state = V6_XDIGIT | V6_DELIM;
          if (compressedAt >= 16) state |= V6_NULL;
          break;
        case V6_COLON_1 | V6_COLON_1_2:
          state = V6_XDIGIT | V6_COLON_2;
          break;
        case V6_COLON_1:
          state = V6_XDIGIT;
          break;
        case V6_COLON_1_2:
          state = V6_COLON_2;
          break;
        default:
          state = 0;
      }
      groupStart = s + 1;
    } else if ((c & V6_DOT) !== 0) {
      const from = groupStart >= 0 ? groupStart : s;
      const end = parseDottedQuad(buf, start + from, length - from, delimiter, work, written);
      if (end < 0) return 0;
      written += 4;
      s = from + end;
      break;
    } else {
      word = (word << 4) | (c & 0xff);
      state = V6_COLON_1 | V6_DELIM;
      if ((word & 0xf000) === 0) state |= V6_XDIGIT;
      if (compressedAt < 0 && written + 2 < 16) {
        state |= V6_COLON_1_2;
        state &= ~V6_DELIM;
      }
      if (written + 2 >= 16) state &= ~(V6_COLON_1 | V6_COLON_1_2);
    }
    if ((compressedAt >= 0 && written + 4 < 16) || written + 4 === 16) state |= V6_DOT;
    if (written >= 16) state &= ~(V6_XDIGIT | V6_COLON_MASK);
    s++;
  }
  if (compressedAt >= 0) {
    let i = 15;
    let d = written - 1;
    while (d >= compressedAt) out[i--] = work[d--];
    while (i >= compressedAt) out[i--] = 0;
    while (i >= 0) out[i--] = work[d--];
  } else {
    out.set(work);
  }
  return s;
}

/** `in4_pton` inside an IPv6 text: exactly four octets, ended by the delimiter or a colon. */
function parseDottedQuad(
  buf: Uint8Array,
  start: number,
  length: number,
  delimiter: number,
  out: Uint8Array,
  at: number,
): number {
  let octets = 0;
  let value = 0;
  let digits = 0;
  for (let s = 0; ; s++) {
    const c = classify(s < length ? buf[start + s] : 0, delimiter);
    if ((c & (V6_DIGIT | V6_DOT | V6_DELIM | V6_COLON_MASK)) === 0) return -1;
    if ((c & (V6_DOT | V6_DELIM | V6_COLON_MASK)) !== 0) {
      if (digits === 0) return -1;
      if (octets < 4) out[at + octets] = value & 0xff;
      octets++;
      value = 0;
      digits = 0;
      if ((c & (V6_DELIM | V6_COLON_MASK)) !== 0) return octets === 4 ? s : -1;
    } else {
      value = value * 10 + (c & 0xff);
      digits++;
      if (value > 255) return -1;
    }
    if (octets >= 4) return -1;
  }
}
