/**
 * One tracked connection: its two tuples, status, timer, counters and protocol state. Connections
 * are allocated when a flow is first seen (memory grows with live state, not with packets).
 */
import { IPPROTO_ICMP, IPPROTO_ICMPV6 } from "../decode/packet.js";
import type { Expectation } from "./expectations.js";
import type { ConntrackHelper } from "./helpers/helper.js";
import type { SeqAdjust } from "./nat/seqadj.js";

/** Tracker states in the kernel's numbering (`enum tcp_conntrack`); MAX and IGNORE only in the table. */
export const TcpState = {
  None: 0,
  SynSent: 1,
  SynRecv: 2,
  Established: 3,
  FinWait: 4,
  CloseWait: 5,
  LastAck: 6,
  TimeWait: 7,
  Close: 8,
  SynSent2: 9,
  /** "sIV": the transition is invalid. */
  Invalid: 10,
  /** "sIG": the packet is let through without changing anything. */
  Ignore: 11,
} as const;

export const TCP_STATE_NAMES = [
  "NONE",
  "SYN_SENT",
  "SYN_RECV",
  "ESTABLISHED",
  "FIN_WAIT",
  "CLOSE_WAIT",
  "LAST_ACK",
  "TIME_WAIT",
  "CLOSE",
  "SYN_SENT2",
] as const;

/** Per-direction TCP flags (`IP_CT_TCP_FLAG_*`). */
export const TcpFlag = {
  WindowScale: 0x01,
  SackPerm: 0x02,
  CloseInit: 0x04,
  BeLiberal: 0x08,
  DataUnacknowledged: 0x10,
  MaxackSet: 0x20,
  /** Kept in `lastFlags` only. */
  ExpectChallengeAck: 0x40,
  SimultaneousOpen: 0x80,
} as const;

/** Connection status bits this model keeps (`IPS_*`). */
export const Status = {
  /** Created by a packet that fulfilled an expectation: `master` is set. */
  Expected: 0x01,
  SeenReply: 0x02,
  Assured: 0x04,
  /** A source translation was set up (IPS_SRC_NAT): the reply goes to another address or port. */
  SrcNat: 0x10,
  /** A destination translation was set up (IPS_DST_NAT). */
  DstNat: 0x20,
  /** Not a kernel bit: the translation was observed (captures on both sides), not derived from rules. */
  NatObserved: 0x10000,
  /**
   * Not a kernel bit: configured NAT re-mapped a clashing port or ICMP id, and the kernel's pick is
   * random, so the reply tuple's port is this model's own choice.
   */
  NatOwnChoice: 0x20000,
  /** Not a kernel bit: the connection was destroyed. */
  Dead: 0x40000,
} as const;

/** Where `Connection.status` keeps the cached event bits (7 bits: `EventBit`), above every `Status` bit. */
const CACHED_EVENTS_SHIFT = 22;
const CACHED_EVENTS_BELOW = (1 << CACHED_EVENTS_SHIFT) - 1;

/** Direction indices. */
export const DIR_ORIGINAL = 0;
export const DIR_REPLY = 1;

/**
 * A conntrack tuple. Addresses are four 32-bit words (IPv4 uses word 0 only, the rest 0). For ICMP
 * and ICMPv6 `srcPort` holds the echo id and `dstPort` holds `type << 8 | code`, as the kernel keeps
 * them in the src and dst halves of its tuple; for protocols without ports both are 0.
 *
 * The words read and write as unsigned numbers (`src0` …), but are stored as signed 32-bit integers
 * (`srcWord0` …): V8 keeps those inline, while a field that ever held a number of 2^31 or more
 * becomes a pointer to a separate heap box, eight such boxes per tuple, two tuples per connection.
 */
export class Tuple {
  family = 4;
  protocol = 0;
  /** Address words as signed 32-bit integers (`word | 0`); the table and hash read these. */
  srcWord0 = 0;
  srcWord1 = 0;
  srcWord2 = 0;
  srcWord3 = 0;
  dstWord0 = 0;
  dstWord1 = 0;
  dstWord2 = 0;
  dstWord3 = 0;
  srcPort = 0;
  dstPort = 0;

  get src0(): number {
    return this.srcWord0 >>> 0;
  }
  set src0(word: number) {
    this.srcWord0 = word | 0;
  }
  get src1(): number {
    return this.srcWord1 >>> 0;
  }
  set src1(word: number) {
    this.srcWord1 = word | 0;
  }
  get src2(): number {
    return this.srcWord2 >>> 0;
  }
  set src2(word: number) {
    this.srcWord2 = word | 0;
  }
  get src3(): number {
    return this.srcWord3 >>> 0;
  }
  set src3(word: number) {
    this.srcWord3 = word | 0;
  }
  get dst0(): number {
    return this.dstWord0 >>> 0;
  }
  set dst0(word: number) {
    this.dstWord0 = word | 0;
  }
  get dst1(): number {
    return this.dstWord1 >>> 0;
  }
  set dst1(word: number) {
    this.dstWord1 = word | 0;
  }
  get dst2(): number {
    return this.dstWord2 >>> 0;
  }
  set dst2(word: number) {
    this.dstWord2 = word | 0;
  }
  get dst3(): number {
    return this.dstWord3 >>> 0;
  }
  set dst3(word: number) {
    this.dstWord3 = word | 0;
  }

  /**
   * Family and addresses from a decoded header's fields: IPv4 as numbers, IPv6 as 16 bytes (the
   * other family's fields are ignored). Swap the arguments for the inverse direction.
   */
  setAddresses(family: number, srcV4: number, dstV4: number, src: Uint8Array, dst: Uint8Array): void {
    this.family = family;
    if (family === 4) {
      this.srcWord0 = srcV4 | 0;
      this.dstWord0 = dstV4 | 0;
      this.srcWord1 = this.srcWord2 = this.srcWord3 = this.dstWord1 = this.dstWord2 = this.dstWord3 = 0;
      return;
    }
    // Bytes as signed big-endian words, spelled out: this runs per IPv6 packet, deep in calls V8
    // stops inlining.
    this.srcWord0 = (src[0] << 24) | (src[1] << 16) | (src[2] << 8) | src[3];
    this.srcWord1 = (src[4] << 24) | (src[5] << 16) | (src[6] << 8) | src[7];
    this.srcWord2 = (src[8] << 24) | (src[9] << 16) | (src[10] << 8) | src[11];
    this.srcWord3 = (src[12] << 24) | (src[13] << 16) | (src[14] << 8) | src[15];
    this.dstWord0 = (dst[0] << 24) | (dst[1] << 16) | (dst[2] << 8) | dst[3];
    this.dstWord1 = (dst[4] << 24) | (dst[5] << 16) | (dst[6] << 8) | dst[7];
    this.dstWord2 = (dst[8] << 24) | (dst[9] << 16) | (dst[10] << 8) | dst[11];
    this.dstWord3 = (dst[12] << 24) | (dst[13] << 16) | (dst[14] << 8) | dst[15];
  }

  copyFrom(other: Tuple): void {
    this.family = other.family;
    this.protocol = other.protocol;
    this.srcWord0 = other.srcWord0;
    this.srcWord1 = other.srcWord1;
    this.srcWord2 = other.srcWord2;
    this.srcWord3 = other.srcWord3;
    this.dstWord0 = other.dstWord0;
    this.dstWord1 = other.dstWord1;
    this.dstWord2 = other.dstWord2;
    this.dstWord3 = other.dstWord3;
    this.srcPort = other.srcPort;
    this.dstPort = other.dstPort;
  }

  equals(other: Tuple): boolean {
    return (
      this.srcPort === other.srcPort &&
      this.dstPort === other.dstPort &&
      this.srcWord0 === other.srcWord0 &&
      this.dstWord0 === other.dstWord0 &&
      this.protocol === other.protocol &&
      this.family === other.family &&
      this.srcWord1 === other.srcWord1 &&
      this.srcWord2 === other.srcWord2 &&
      this.srcWord3 === other.srcWord3 &&
      this.dstWord1 === other.dstWord1 &&
      this.dstWord2 === other.dstWord2 &&
      this.dstWord3 === other.dstWord3
    );
  }

  /** Whether this tuple's destination address equals `other`'s destination address. */
  sameDestination(family: number, d0: number, d1: number, d2: number, d3: number): boolean {
    return (
      this.family === family &&
      this.dstWord0 === (d0 | 0) &&
      this.dstWord1 === (d1 | 0) &&
      this.dstWord2 === (d2 | 0) &&
      this.dstWord3 === (d3 | 0)
    );
  }

  hash(): number {
    return signedTupleHash(this) >>> 0;
  }

  get isIcmp(): boolean {
    return this.protocol === IPPROTO_ICMP || this.protocol === IPPROTO_ICMPV6;
  }
  get icmpType(): number {
    return this.dstPort >>> 8;
  }
  get icmpCode(): number {
    return this.dstPort & 0xff;
  }
  get icmpId(): number {
    return this.srcPort;
  }
}

/**
 * `Tuple.hash()` as a signed 32-bit word (`>>> 0` of it is the hash). The per-packet path uses this
 * form: V8 keeps it a small integer, while an unsigned hash of 2^31 or more returned from a call it
 * does not inline is a new heap number.
 */
export function signedTupleHash(tuple: Tuple): number {
  let h = Math.imul(tuple.srcWord0 ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15) ^ tuple.dstWord0, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 13) ^ ((tuple.srcPort << 16) | tuple.dstPort), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16) ^ (tuple.protocol | (tuple.family << 8)), 0xc2b2ae35);
  if (tuple.family === 6) {
    h = Math.imul(h ^ (h >>> 15) ^ tuple.srcWord1, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13) ^ tuple.srcWord2, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 16) ^ tuple.srcWord3, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 15) ^ tuple.dstWord1, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 13) ^ tuple.dstWord2, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 16) ^ tuple.dstWord3, 0xc2b2ae35);
  }
  return h ^ (h >>> 16);
}

/**
 * TCP tracker data lives in typed arrays, a row per connection: `TCP_WORDS` 32-bit words (sequence
 * space, stored signed and read unsigned) and `TCP_BYTES` bytes. One object per connection was 272
 * bytes of garbage-collected heap, which costs about twice that in a process's peak memory.
 */
export const TCP_WORDS = 12;
export const TCP_BYTES = 10;
/**
 * A row in 32-bit words: the `TCP_WORDS` words, then the `TCP_BYTES` bytes from byte
 * `TCP_BYTE_BASE` on (a byte view of the same buffer), padded to 64 bytes: one cache line.
 */
export const TCP_ROW_WORDS = 16;
export const TCP_BYTE_BASE = TCP_WORDS * 4;
/** `TB_STATE` of a TCP row whose tracker has not started it yet. */
export const TCP_NONE = 0xff;
/** Words of direction d start at d * 4: end, maxend, maxwin, maxack. */
export const T_END = 0;
export const T_MAXEND = 1;
export const T_MAXWIN = 2;
export const T_MAXACK = 3;
export const T_LAST_SEQ = 8;
export const T_LAST_ACK = 9;
export const T_LAST_END = 10;
export const T_LAST_WIN = 11;
/** Bytes: state, then scale and flags of direction d at 1 + d * 2, then the last packet's. */
export const TB_STATE = 0;
export const TB_SCALE = 1;
const TB_FLAGS = 2;
export const TB_LAST_DIR = 5;
const TB_LAST_INDEX = 6;
const TB_LAST_WSCALE = 7;
const TB_LAST_FLAGS = 8;
export const TB_RETRANS = 9;

/**
 * Window-tracking data of one direction (`struct ip_ct_tcp_state`): a view of a row of TCP words and
 * bytes (see `TCP_WORDS`), re-pointed by its `TcpConnectionState`.
 */
export class TcpDirection {
  words: Int32Array;
  bytes: Uint8Array;
  /** First word and byte of this direction. */
  w = 0;
  b = 0;

  constructor(words: Int32Array, bytes: Uint8Array, w: number, b: number) {
    this.words = words;
    this.bytes = bytes;
    this.w = w;
    this.b = b;
  }

  get end(): number {
    return this.words[this.w + T_END] >>> 0;
  }
  set end(value: number) {
    this.words[this.w + T_END] = value;
  }
  get maxend(): number {
    return this.words[this.w + T_MAXEND] >>> 0;
  }
  set maxend(value: number) {
    this.words[this.w + T_MAXEND] = value;
  }
  get maxwin(): number {
    return this.words[this.w + T_MAXWIN] >>> 0;
  }
  set maxwin(value: number) {
    this.words[this.w + T_MAXWIN] = value;
  }
  get maxack(): number {
    return this.words[this.w + T_MAXACK] >>> 0;
  }
  set maxack(value: number) {
    this.words[this.w + T_MAXACK] = value;
  }
  get scale(): number {
    return this.bytes[this.b + TB_SCALE];
  }
  set scale(value: number) {
    this.bytes[this.b + TB_SCALE] = value;
  }
  get flags(): number {
    return this.bytes[this.b + TB_FLAGS];
  }
  set flags(value: number) {
    this.bytes[this.b + TB_FLAGS] = value;
  }
}

/**
 * TCP tracker data (`struct ip_ct_tcp`): a view of one row of TCP words and bytes. Made alone it has
 * a row of its own; the engine keeps one view and points it at each packet's connection (`bind`).
 */
export class TcpConnectionState {
  words: Int32Array;
  bytes: Uint8Array;
  /** First word and byte of the row. */
  w = 0;
  b = 0;
  private readonly view0: TcpDirection;
  private readonly view1: TcpDirection;

  constructor(
    words: Int32Array = new Int32Array(TCP_ROW_WORDS),
    bytes: Uint8Array = new Uint8Array(words.buffer, words.byteOffset, words.byteLength),
    row = 0,
  ) {
    this.words = words;
    this.bytes = bytes;
    this.w = row * TCP_ROW_WORDS;
    this.b = row * TCP_ROW_WORDS * 4 + TCP_BYTE_BASE;
    this.view0 = new TcpDirection(words, bytes, this.w, this.b);
    this.view1 = new TcpDirection(words, bytes, this.w + 4, this.b + 2);
  }

  /** Original direction's window (a view pointed at this row when asked for). */
  get seen0(): TcpDirection {
    const view = this.view0;
    view.words = this.words;
    view.bytes = this.bytes;
    view.w = this.w;
    view.b = this.b;
    return view;
  }
  /** Reply direction's window (see `seen0`). */
  get seen1(): TcpDirection {
    const view = this.view1;
    view.words = this.words;
    view.bytes = this.bytes;
    view.w = this.w + 4;
    view.b = this.b + 2;
    return view;
  }
  /** Both directions' flags or'ed (read per packet: no view). */
  get bothFlags(): number {
    const bytes = this.bytes;
    return bytes[this.b + TB_FLAGS] | bytes[this.b + 2 + TB_FLAGS];
  }

  /** Points this view at the row whose words start at `w` of `words` and bytes at `b` of `bytes`. */
  bind(words: Int32Array, bytes: Uint8Array, w: number, b: number): this {
    this.words = words;
    this.bytes = bytes;
    this.w = w;
    this.b = b;
    return this;
  }

  /** Both directions, indexed by direction (a new array: for inspection, not the per-packet path). */
  get seen(): [TcpDirection, TcpDirection] {
    return [this.seen0, this.seen1];
  }

  get state(): number {
    return this.bytes[this.b + TB_STATE];
  }
  set state(value: number) {
    this.bytes[this.b + TB_STATE] = value;
  }
  get lastDir(): number {
    return this.bytes[this.b + TB_LAST_DIR];
  }
  set lastDir(value: number) {
    this.bytes[this.b + TB_LAST_DIR] = value;
  }
  /** Packet class of the last packet let through (TCP_*_SET), see tcp.ts. */
  get lastIndex(): number {
    return this.bytes[this.b + TB_LAST_INDEX];
  }
  set lastIndex(value: number) {
    this.bytes[this.b + TB_LAST_INDEX] = value;
  }
  get lastWscale(): number {
    return this.bytes[this.b + TB_LAST_WSCALE];
  }
  set lastWscale(value: number) {
    this.bytes[this.b + TB_LAST_WSCALE] = value;
  }
  get lastFlags(): number {
    return this.bytes[this.b + TB_LAST_FLAGS];
  }
  set lastFlags(value: number) {
    this.bytes[this.b + TB_LAST_FLAGS] = value;
  }
  /** A byte, as the kernel's (`u8 retrans`): it wraps as the kernel's does. */
  get retrans(): number {
    return this.bytes[this.b + TB_RETRANS];
  }
  set retrans(value: number) {
    this.bytes[this.b + TB_RETRANS] = value;
  }
  get lastSeq(): number {
    return this.words[this.w + T_LAST_SEQ] >>> 0;
  }
  set lastSeq(value: number) {
    this.words[this.w + T_LAST_SEQ] = value;
  }
  get lastAck(): number {
    return this.words[this.w + T_LAST_ACK] >>> 0;
  }
  set lastAck(value: number) {
    this.words[this.w + T_LAST_ACK] = value;
  }
  get lastEnd(): number {
    return this.words[this.w + T_LAST_END] >>> 0;
  }
  set lastEnd(value: number) {
    this.words[this.w + T_LAST_END] = value;
  }
  get lastWin(): number {
    return this.words[this.w + T_LAST_WIN];
  }
  set lastWin(value: number) {
    this.words[this.w + T_LAST_WIN] = value;
  }

  reset(): void {
    this.words.fill(0, this.w, this.w + TCP_ROW_WORDS);
  }
}

/**
 * One of a connection's two table entries: each connection sits in the table twice, once per tuple.
 * Made on first use (`Connection.originalNode`): the table keeps its chains in typed arrays.
 */
export class TupleNode {
  /** Unused: the table keeps its chains in typed arrays (kept for compatibility). */
  next: TupleNode | null = null;
  /** The tuple's hash. */
  hash = 0;
  constructor(
    readonly connection: Connection,
    readonly direction: number,
    readonly tuple: Tuple,
  ) {
    this.hash = tuple.hash();
  }
}

/**
 * How a translated connection's packets look where they leave the device, which is what a capture on
 * the device's inside interface shows of the packets that arrived on the outside: `original` is the
 * original direction after translation (the inverted reply tuple), `reply` the reply direction after
 * translation back (the inverted original tuple). Kept in a second table so that such packets find
 * their connection.
 */
export class NatAlias {
  readonly original = new Tuple();
  readonly reply = new Tuple();
  /** Slot in the alias table while in it, else -1. */
  tableSlot = -1;
  constructor(readonly connection: Connection) {}
}

/**
 * What few connections use (helpers, expectations, NAT, sequence shifts, table nodes for
 * inspection), out of `Connection` so that the many plain ones do not carry the fields: made on the
 * first write of something other than null.
 */
export class ConnectionExtras {
  seqAdjust: SeqAdjust | null = null;
  helperModule: ConntrackHelper | null = null;
  helper: string | null = null;
  helperState: object | null = null;
  master: Connection | null = null;
  expectations: Expectation[] | null = null;
  natAlias: NatAlias | null = null;
  originalNode: TupleNode | null = null;
  replyNode: TupleNode | null = null;
}

/**
 * Doubles per slot in an engine's rows (lib/conntrack/store.ts): the expiry heap's two
 * (lib/conntrack/table.ts), the last packet's time, the counters and the start time: 64 bytes, the one
 * cache line every packet writes. A TCP connection's tracker data is a row of its own in the store's
 * TCP pages (`TCP_ROW_WORDS`), so other protocols carry none.
 */
export const ROW_DOUBLES = 8;
/**
 * Engine-relative ns of the last packet the connection took (one its tracker did not call invalid,
 * counted or not): kept beside the counters, on the cache line every packet writes, so that flow
 * records need no per-packet work of their own.
 */
export const N_LAST_SEEN = 2;
export const N_ORIGINAL_PACKETS = 3;
export const N_ORIGINAL_BYTES = 4;
export const N_REPLY_PACKETS = 5;
export const N_REPLY_BYTES = 6;
export const N_STARTED = 7;
/** A UDP flow that still talks both ways this long after its first packet is a stream. */
export const UDP_STREAM_NS = 2e9;

/**
 * Where an engine keeps its live connections' data (lib/conntrack/store.ts): typed arrays, a row per
 * table slot, so a live connection's object is a handle of a few fields.
 */
export interface ConnectionRows {
  number(slot: number, field: number): number;
  setNumber(slot: number, field: number, value: number): void;
  tcpStateOf(slot: number): number;
  /** A view of the slot's TCP data, or null when it has none. */
  tcpViewOf(slot: number): TcpConnectionState | null;
  setTcp(slot: number, value: TcpConnectionState | null): void;
  tupleOf(node: number, out: Tuple): Tuple;
  /** Node `node`'s tuple for a reader: a copy (a store) or the row's own object (`OwnRow`). */
  tuple(node: number): Tuple;
  writeTuple(node: number, tuple: Tuple): void;
  protocolOf(slot: number): number;
  expiresAt(slot: number): number;
  setExpiresAt(slot: number, at: number): void;
  /** The id of the connection in slot `slot`. */
  idOf(slot: number): number;
  setId(slot: number, id: number): void;
}

/**
 * A single row of a connection's own, in fields: a connection made alone (tests, tools), or one its
 * engine destroyed once its slot went to another (the data stayed with the object). Slots and nodes
 * passed in only tell the direction.
 */
export class OwnRow implements ConnectionRows {
  readonly numbers = new Float64Array(ROW_DOUBLES);
  expiry = 0;
  id = 0;
  readonly original = new Tuple();
  readonly reply = new Tuple();
  /** Alone: the TCP data, if any. */
  tcp: TcpConnectionState | null = null;
  /** Destroyed: the TCP state it ended in (-1: not TCP); the window data went with its row. */
  tcpState = -1;

  number(_slot: number, field: number): number {
    return this.numbers[field];
  }
  setNumber(_slot: number, field: number, value: number): void {
    this.numbers[field] = value;
  }
  tcpStateOf(): number {
    return this.tcp === null ? this.tcpState : this.tcp.state;
  }
  tcpViewOf(): TcpConnectionState | null {
    return this.tcp;
  }
  setTcp(_slot: number, value: TcpConnectionState | null): void {
    this.tcp = value;
  }
  tupleOf(node: number, out: Tuple): Tuple {
    out.copyFrom(this.tuple(node));
    return out;
  }
  tuple(node: number): Tuple {
    return (node & 1) === 0 ? this.original : this.reply;
  }
  writeTuple(node: number, tuple: Tuple): void {
    this.tuple(node).copyFrom(tuple);
  }
  protocolOf(): number {
    return this.original.protocol;
  }
  expiresAt(): number {
    return this.expiry;
  }
  setExpiresAt(_slot: number, at: number): void {
    this.expiry = at;
  }
  idOf(): number {
    return this.id;
  }
  setId(_slot: number, id: number): void {
    this.id = id;
  }
}

export class Connection {
  // The fields every packet reads stay in the object (V8 stops inlining accessors deep in the
  // per-packet path); the rest is in the store's row while the connection lives.
  /** `Status` bits, and the cached event bits from `CACHED_EVENTS_SHIFT` up. */
  status = 0;
  /**
   * Slot in its engine's table (which indexes the store's, table's and heap's arrays) from before
   * its first packet is tracked until it is destroyed, else -1.
   */
  tableSlot = -1;
  /** The rarely used fields (see `ConnectionExtras`), null while all of them are null. */
  extras: ConnectionExtras | null = null;
  /** Where this connection's data is: its engine's store (at `tableSlot`), or a row of its own. */
  rows: ConnectionRows;

  /** Alone, with a row of its own; with `rows`, an engine's store (which sets `tableSlot`). */
  constructor(rows: ConnectionRows | null = null) {
    this.rows = rows ?? new OwnRow();
  }

  /**
   * Data from here on in a row of its own: copies of the store's values and tuples. A destroyed
   * connection keeps reading its store's row until the table gives the slot to another (which calls
   * this first), so the many destroyed at the end of a capture, whose slots nobody takes, copy nothing.
   */
  moveOut(): void {
    const rows = this.rows;
    if (rows instanceof OwnRow) return;
    const own = new OwnRow();
    const slot = this.tableSlot;
    for (let field = N_LAST_SEEN; field <= N_STARTED; field++) own.numbers[field] = rows.number(slot, field);
    own.expiry = rows.expiresAt(slot);
    own.id = rows.idOf(slot);
    rows.tupleOf(slot * 2, own.original);
    rows.tupleOf(slot * 2 + 1, own.reply);
    own.tcpState = rows.tcpStateOf(slot);
    this.rows = own;
    this.tableSlot = -1;
  }

  /**
   * Sequential id, 1 for the first connection an engine creates (0 before confirmation). In a store it
   * is kept in the table's keys, not in this object (8 bytes less per live connection).
   */
  get id(): number {
    return this.rows.idOf(this.tableSlot);
  }
  set id(value: number) {
    this.rows.setId(this.tableSlot, value);
  }

  get originalPackets(): number {
    return this.rows.number(this.tableSlot, N_ORIGINAL_PACKETS);
  }
  set originalPackets(value: number) {
    this.rows.setNumber(this.tableSlot, N_ORIGINAL_PACKETS, value);
  }
  get originalBytes(): number {
    return this.rows.number(this.tableSlot, N_ORIGINAL_BYTES);
  }
  set originalBytes(value: number) {
    this.rows.setNumber(this.tableSlot, N_ORIGINAL_BYTES, value);
  }
  get replyPackets(): number {
    return this.rows.number(this.tableSlot, N_REPLY_PACKETS);
  }
  set replyPackets(value: number) {
    this.rows.setNumber(this.tableSlot, N_REPLY_PACKETS, value);
  }
  get replyBytes(): number {
    return this.rows.number(this.tableSlot, N_REPLY_BYTES);
  }
  set replyBytes(value: number) {
    this.rows.setNumber(this.tableSlot, N_REPLY_BYTES, value);
  }
  /**
   * Event bits of packets a helper dropped: they go out with the next packet that gets through. Kept
   * in `status` (a field less per live connection).
   */
  get cachedEventBits(): number {
    return this.status >>> CACHED_EVENTS_SHIFT;
  }
  set cachedEventBits(bits: number) {
    this.status = (this.status & CACHED_EVENTS_BELOW) | (bits << CACHED_EVENTS_SHIFT);
  }
  /** Set once the connection has been destroyed. */
  get dead(): boolean {
    return (this.status & Status.Dead) !== 0;
  }
  set dead(value: boolean) {
    this.status = value ? this.status | Status.Dead : this.status & ~Status.Dead;
  }

  /**
   * The original direction's tuple. In a store this is a copy made for the caller (change it with
   * `setOriginal`); alone, the connection's own.
   */
  get original(): Tuple {
    return this.rows.tuple(this.tableSlot * 2);
  }
  /** The reply direction's tuple (see `original`). */
  get reply(): Tuple {
    return this.rows.tuple(this.tableSlot * 2 + 1);
  }
  /** The original (`direction` 0) or reply tuple written into `out`, which is returned (no copy made). */
  tupleInto(direction: number, out: Tuple): Tuple {
    return this.rows.tupleOf(this.tableSlot * 2 + direction, out);
  }
  /** Sets the original tuple (before the connection is confirmed: a table keys on it). */
  setOriginal(tuple: Tuple): void {
    this.rows.writeTuple(this.tableSlot * 2, tuple);
  }
  /** Sets the reply tuple (see `setOriginal`). */
  setReply(tuple: Tuple): void {
    this.rows.writeTuple(this.tableSlot * 2 + 1, tuple);
  }

  /**
   * TCP only: the tracker's data. In a store a view made for the caller (the engine keeps its own
   * view for the per-packet path); null for other protocols and once destroyed (see `tcpState`).
   */
  get tcp(): TcpConnectionState | null {
    return this.rows.tcpViewOf(this.tableSlot);
  }
  /** Null: no TCP data; a state: its values are copied (in a store) or it is kept (alone). */
  set tcp(value: TcpConnectionState | null) {
    this.rows.setTcp(this.tableSlot, value);
  }
  /** TCP state, or -1 for other protocols. */
  get tcpState(): number {
    return this.rows.tcpStateOf(this.tableSlot);
  }

  /** `extras`, made if missing. */
  private more(): ConnectionExtras {
    if (this.extras === null) this.extras = new ConnectionExtras();
    return this.extras;
  }

  /**
   * With configured NAT seen as packets arrive: the sequence shifts a NAT helper's rewrites of this
   * connection's data left (nf_conn_seqadj); null until one changed a length. (Read per TCP packet.)
   */
  get seqAdjust(): SeqAdjust | null {
    const extras = this.extras;
    return extras === null ? null : extras.seqAdjust;
  }
  set seqAdjust(value: SeqAdjust | null) {
    if (value !== null || this.extras !== null) this.more().seqAdjust = value;
  }
  /** The attached helper, which sees this connection's packets. */
  get helperModule(): ConntrackHelper | null {
    const extras = this.extras;
    return extras === null ? null : extras.helperModule;
  }
  set helperModule(value: ConntrackHelper | null) {
    if (value !== null || this.extras !== null) this.more().helperModule = value;
  }
  /** Helper name, when one is attached. */
  get helper(): string | null {
    const extras = this.extras;
    return extras === null ? null : extras.helper;
  }
  set helper(value: string | null) {
    if (value !== null || this.extras !== null) this.more().helper = value;
  }
  /** The helper's per-connection data (FTP: remembered line ends), created when first needed. */
  get helperState(): object | null {
    const extras = this.extras;
    return extras === null ? null : extras.helperState;
  }
  set helperState(value: object | null) {
    if (value !== null || this.extras !== null) this.more().helperState = value;
  }
  /** For a connection that fulfilled an expectation: the connection whose helper announced it. */
  get master(): Connection | null {
    const extras = this.extras;
    return extras === null ? null : extras.master;
  }
  set master(value: Connection | null) {
    if (value !== null || this.extras !== null) this.more().master = value;
  }
  /** Live expectations this connection's helper registered, oldest first (null when none). */
  get expectations(): Expectation[] | null {
    const extras = this.extras;
    return extras === null ? null : extras.expectations;
  }
  set expectations(value: Expectation[] | null) {
    if (value !== null || this.extras !== null) this.more().expectations = value;
  }
  /**
   * With configured NAT and an inside capture: the tuples this connection's packets carry on the
   * inside interface where they differ from the kernel's (see `NatAlias`); null when not translated.
   */
  get natAlias(): NatAlias | null {
    const extras = this.extras;
    return extras === null ? null : extras.natAlias;
  }
  set natAlias(value: NatAlias | null) {
    if (value !== null || this.extras !== null) this.more().natAlias = value;
  }

  /** Capture time of expiry, in engine-relative nanoseconds (see ConntrackEngine). */
  get expiresAt(): number {
    return this.rows.expiresAt(this.tableSlot);
  }
  set expiresAt(at: number) {
    this.rows.setExpiresAt(this.tableSlot, at);
  }
  /** UDP: end of the first two seconds (engine-relative ns); replies after it make a stream. */
  get udpStreamDeadline(): number {
    return this.startedAt + UDP_STREAM_NS;
  }
  /** Engine-relative nanoseconds of the last packet the connection took (see `N_LAST_SEEN`). */
  get lastSeenAt(): number {
    return this.rows.number(this.tableSlot, N_LAST_SEEN);
  }
  /** Engine-relative nanoseconds of confirmation (the first packet). */
  get startedAt(): number {
    return this.rows.number(this.tableSlot, N_STARTED);
  }
  set startedAt(at: number) {
    this.rows.setNumber(this.tableSlot, N_STARTED, at);
  }

  get originalNode(): TupleNode {
    const extras = this.more();
    if (extras.originalNode === null) extras.originalNode = new TupleNode(this, DIR_ORIGINAL, this.original);
    return extras.originalNode;
  }
  get replyNode(): TupleNode {
    const extras = this.more();
    if (extras.replyNode === null) extras.replyNode = new TupleNode(this, DIR_REPLY, this.reply);
    return extras.replyNode;
  }

  get protocol(): number {
    return this.rows.protocolOf(this.tableSlot);
  }
  get seenReply(): boolean {
    return (this.status & Status.SeenReply) !== 0;
  }
  get expected(): boolean {
    return (this.status & Status.Expected) !== 0;
  }
  /** Id of the master connection (0 when this connection was not expected). */
  get masterId(): number {
    return this.master === null ? 0 : this.master.id;
  }
  get assured(): boolean {
    return (this.status & Status.Assured) !== 0;
  }
  /** Whether NAT changed the reply tuple (a source or destination translation was set up). */
  get natted(): boolean {
    return (this.status & (Status.SrcNat | Status.DstNat)) !== 0;
  }
}
