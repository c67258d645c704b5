/**
 * One tracked connection: its two tuples, status, timer, counters and protocol state. Connections
 * are allocated when a flow is first seen (memory grows with live state, not with packets).
 */
import { IPPROTO_ICMP, IPPROTO_ICMPV6 } from "../decode/packet.js";
import type { Expectation } from "./expectations.js";
import type { ConntrackHelper } from "./helpers/helper.js";
import type { ExpiryHeap } from "./table.js";
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
} as const;

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
 * Window-tracking data of one direction (`struct ip_ct_tcp_state`). The sequence-space fields read
 * and write as unsigned 32-bit numbers but are stored signed, inline (see `Tuple`).
 */
export class TcpDirection {
  private endWord = 0;
  private maxendWord = 0;
  private maxwinWord = 0;
  private maxackWord = 0;
  scale = 0;
  flags = 0;

  get end(): number {
    return this.endWord >>> 0;
  }
  set end(value: number) {
    this.endWord = value | 0;
  }
  get maxend(): number {
    return this.maxendWord >>> 0;
  }
  set maxend(value: number) {
    this.maxendWord = value | 0;
  }
  get maxwin(): number {
    return this.maxwinWord >>> 0;
  }
  set maxwin(value: number) {
    this.maxwinWord = value | 0;
  }
  get maxack(): number {
    return this.maxackWord >>> 0;
  }
  set maxack(value: number) {
    this.maxackWord = value | 0;
  }

  reset(): void {
    this.endWord = 0;
    this.maxendWord = 0;
    this.maxwinWord = 0;
    this.maxackWord = 0;
    this.scale = 0;
    this.flags = 0;
  }
}

/** TCP tracker data (`struct ip_ct_tcp`); sequence numbers stored as in `TcpDirection`. */
export class TcpConnectionState {
  state: number = TcpState.None;
  /** Original direction's window (fields, not an array: one pointer to follow, not two). */
  readonly seen0 = new TcpDirection();
  /** Reply direction's window. */
  readonly seen1 = new TcpDirection();
  lastDir = 0;
  /** Packet class of the last packet let through (TCP_*_SET), see tcp.ts. */
  lastIndex = 0;
  private lastSeqWord = 0;
  private lastAckWord = 0;
  private lastEndWord = 0;
  lastWin = 0;
  lastWscale = 0;
  lastFlags = 0;
  retrans = 0;

  /** Both directions, indexed by direction (a new array: for inspection, not the per-packet path). */
  get seen(): [TcpDirection, TcpDirection] {
    return [this.seen0, this.seen1];
  }

  get lastSeq(): number {
    return this.lastSeqWord >>> 0;
  }
  set lastSeq(value: number) {
    this.lastSeqWord = value | 0;
  }
  get lastAck(): number {
    return this.lastAckWord >>> 0;
  }
  set lastAck(value: number) {
    this.lastAckWord = value | 0;
  }
  get lastEnd(): number {
    return this.lastEndWord >>> 0;
  }
  set lastEnd(value: number) {
    this.lastEndWord = value | 0;
  }

  reset(): void {
    this.state = TcpState.None;
    this.seen0.reset();
    this.seen1.reset();
    this.lastDir = 0;
    this.lastIndex = 0;
    this.lastSeqWord = 0;
    this.lastAckWord = 0;
    this.lastEndWord = 0;
    this.lastWin = 0;
    this.lastWscale = 0;
    this.lastFlags = 0;
    this.retrans = 0;
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

export class Connection {
  // Fields in the order the per-packet path reads them: the first ones share a cache line.
  status = 0;
  /** TCP only. */
  tcp: TcpConnectionState | null = null;
  /** The rarely used fields (see `ConnectionExtras`), null while all of them are null. */
  extras: ConnectionExtras | null = null;
  /** Event bits of packets a helper dropped: they go out with the next packet that gets through. */
  cachedEventBits = 0;
  /** >= 0 while the connection is in the expiry heap, -1 when not in it. */
  heapIndex = -1;
  /** Slot in the connection table while in it (indexes the table's and heap's arrays), else -1. */
  tableSlot = -1;
  originalPackets = 0;
  originalBytes = 0;
  replyPackets = 0;
  replyBytes = 0;
  /** The heap holding this connection's expiry while it is in one (by `tableSlot`), else null. */
  expiryHeap: ExpiryHeap | null = null;
  /**
   * Expiry in engine-relative time as whole seconds and nanoseconds (`expiresAt` joins them) while
   * the connection is in no heap: two small integers stay inside the object, where a double field
   * would be a heap box of its own.
   */
  expiresSec = 0;
  expiresNsec = 0;
  /** UDP: end of the first two seconds (engine-relative ns); replies after it make a stream. */
  udpStreamDeadlineSec = 0;
  udpStreamDeadlineNsec = 0;
  /** Set once the connection has been destroyed. */
  dead = false;
  /** Sequential id, 1 for the first connection an engine creates. */
  id = 0;
  readonly original = new Tuple();
  readonly reply = new Tuple();
  /** `startedAt` as whole seconds and nanoseconds (see `expiresSec`). */
  startedSec = 0;
  startedNsec = 0;

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
    const heap = this.expiryHeap;
    return heap !== null ? heap.expiryAt(this.tableSlot) : this.expiresSec * NS + this.expiresNsec;
  }
  set expiresAt(at: number) {
    const heap = this.expiryHeap;
    if (heap !== null) {
      heap.setExpiry(this.tableSlot, at);
      return;
    }
    this.expiresSec = splitNs(at);
    this.expiresNsec = splitRemainder;
  }
  /** UDP: end of the first two seconds (engine-relative ns); replies after it make a stream. */
  get udpStreamDeadline(): number {
    return this.udpStreamDeadlineSec * NS + this.udpStreamDeadlineNsec;
  }
  set udpStreamDeadline(at: number) {
    this.udpStreamDeadlineSec = splitNs(at);
    this.udpStreamDeadlineNsec = splitRemainder;
  }
  /** Engine-relative nanoseconds of confirmation (the first packet). */
  get startedAt(): number {
    return this.startedSec * NS + this.startedNsec;
  }
  set startedAt(at: number) {
    this.startedSec = splitNs(at);
    this.startedNsec = splitRemainder;
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
    return this.original.protocol;
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
  /** TCP state, or -1 for other protocols. */
  get tcpState(): number {
    return this.tcp === null ? -1 : this.tcp.state;
  }
}

const NS = 1e9;
/** The nanoseconds `splitNs` left over (a module variable: no object per split). */
let splitRemainder = 0;
/** Whole seconds of an engine time in ns; the rest goes to `splitRemainder`. */
function splitNs(at: number): number {
  let seconds = Math.floor(at / NS);
  let rest = at - seconds * NS;
  // The division can round across a whole second for large times.
  if (rest < 0) {
    seconds--;
    rest += NS;
  } else if (rest >= NS) {
    seconds++;
    rest -= NS;
  }
  // A whole number of nanoseconds as an int32 (a small integer, kept inside the object; a double
  // would make the field a pointer to a heap box of its own); a fraction, should one come, kept.
  splitRemainder = (rest | 0) === rest ? rest | 0 : rest;
  return seconds;
}
