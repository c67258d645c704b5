/**
 * One tracked connection: its two tuples, status, timer, counters and protocol state. Connections
 * are allocated when a flow is first seen (memory grows with live state, not with packets).
 */
import { IPPROTO_ICMP, IPPROTO_ICMPV6 } from "../decode/packet.js";
import type { Expectation } from "./expectations.js";
import type { ConntrackHelper } from "./helpers/helper.js";

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
} as const;

/** Direction indices. */
export const DIR_ORIGINAL = 0;
export const DIR_REPLY = 1;

/**
 * A conntrack tuple. Addresses are four 32-bit words (IPv4 uses word 0 only, the rest 0). For ICMP
 * and ICMPv6 `srcPort` holds the echo id and `dstPort` holds `type << 8 | code`, as the kernel keeps
 * them in the src and dst halves of its tuple; for protocols without ports both are 0.
 */
export class Tuple {
  family = 4;
  protocol = 0;
  src0 = 0;
  src1 = 0;
  src2 = 0;
  src3 = 0;
  dst0 = 0;
  dst1 = 0;
  dst2 = 0;
  dst3 = 0;
  srcPort = 0;
  dstPort = 0;

  copyFrom(other: Tuple): void {
    this.family = other.family;
    this.protocol = other.protocol;
    this.src0 = other.src0;
    this.src1 = other.src1;
    this.src2 = other.src2;
    this.src3 = other.src3;
    this.dst0 = other.dst0;
    this.dst1 = other.dst1;
    this.dst2 = other.dst2;
    this.dst3 = other.dst3;
    this.srcPort = other.srcPort;
    this.dstPort = other.dstPort;
  }

  equals(other: Tuple): boolean {
    return (
      this.srcPort === other.srcPort &&
      this.dstPort === other.dstPort &&
      this.src0 === other.src0 &&
      this.dst0 === other.dst0 &&
      this.protocol === other.protocol &&
      this.family === other.family &&
      this.src1 === other.src1 &&
      this.src2 === other.src2 &&
      this.src3 === other.src3 &&
      this.dst1 === other.dst1 &&
      this.dst2 === other.dst2 &&
      this.dst3 === other.dst3
    );
  }

  /** Whether this tuple's destination address equals `other`'s destination address. */
  sameDestination(family: number, d0: number, d1: number, d2: number, d3: number): boolean {
    return (
      this.family === family && this.dst0 === d0 && this.dst1 === d1 && this.dst2 === d2 && this.dst3 === d3
    );
  }

  hash(): number {
    let h = Math.imul(this.src0 ^ 0x9e3779b9, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 15) ^ this.dst0, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 13) ^ ((this.srcPort << 16) | this.dstPort), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 16) ^ (this.protocol | (this.family << 8)), 0xc2b2ae35);
    if (this.family === 6) {
      h = Math.imul(h ^ (h >>> 15) ^ this.src1, 0x85ebca6b);
      h = Math.imul(h ^ (h >>> 13) ^ this.src2, 0xc2b2ae35);
      h = Math.imul(h ^ (h >>> 16) ^ this.src3, 0x85ebca6b);
      h = Math.imul(h ^ (h >>> 15) ^ this.dst1, 0xc2b2ae35);
      h = Math.imul(h ^ (h >>> 13) ^ this.dst2, 0x85ebca6b);
      h = Math.imul(h ^ (h >>> 16) ^ this.dst3, 0xc2b2ae35);
    }
    return (h ^ (h >>> 16)) >>> 0;
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

/** Window-tracking data of one direction (`struct ip_ct_tcp_state`). */
export class TcpDirection {
  end = 0;
  maxend = 0;
  maxwin = 0;
  maxack = 0;
  scale = 0;
  flags = 0;

  reset(): void {
    this.end = 0;
    this.maxend = 0;
    this.maxwin = 0;
    this.maxack = 0;
    this.scale = 0;
    this.flags = 0;
  }
}

/** TCP tracker data (`struct ip_ct_tcp`). */
export class TcpConnectionState {
  state: number = TcpState.None;
  readonly seen: [TcpDirection, TcpDirection] = [new TcpDirection(), new TcpDirection()];
  lastDir = 0;
  /** Packet class of the last packet let through (TCP_*_SET), see tcp.ts. */
  lastIndex = 0;
  lastSeq = 0;
  lastAck = 0;
  lastEnd = 0;
  lastWin = 0;
  lastWscale = 0;
  lastFlags = 0;
  retrans = 0;

  reset(): void {
    this.state = TcpState.None;
    this.seen[0].reset();
    this.seen[1].reset();
    this.lastDir = 0;
    this.lastIndex = 0;
    this.lastSeq = 0;
    this.lastAck = 0;
    this.lastEnd = 0;
    this.lastWin = 0;
    this.lastWscale = 0;
    this.lastFlags = 0;
    this.retrans = 0;
  }
}

/** One of a connection's two table entries: each connection sits in the table twice, once per tuple. */
export class TupleNode {
  /** Unused: the table keeps its chains in typed arrays (kept for compatibility). */
  next: TupleNode | null = null;
  /** The tuple's hash, set when the connection joins the table. */
  hash = 0;
  constructor(
    readonly connection: Connection,
    readonly direction: number,
    readonly tuple: Tuple,
  ) {}
}

export class Connection {
  /** Sequential id, 1 for the first connection an engine creates. */
  id = 0;
  readonly original = new Tuple();
  readonly reply = new Tuple();
  readonly originalNode: TupleNode;
  readonly replyNode: TupleNode;
  status = 0;
  /** Capture time of expiry, in engine-relative nanoseconds (see ConntrackEngine). */
  expiresAt = 0;
  /** Slot in the connection table while in it (indexes the table's and heap's arrays), else -1. */
  tableSlot = -1;
  /** >= 0 while the connection is in the expiry heap, -1 when not in it. */
  heapIndex = -1;
  /** Key the heap holds for this connection (may be earlier than expiresAt: lazily raised). */
  heapKey = 0;
  /** Engine-relative nanoseconds of confirmation (the first packet). */
  startedAt = 0;
  /** Set once the connection has been destroyed. */
  dead = false;
  originalPackets = 0;
  originalBytes = 0;
  replyPackets = 0;
  replyBytes = 0;
  /** TCP only. */
  tcp: TcpConnectionState | null = null;
  /** UDP: end of the first two seconds (engine-relative ns); replies after it make a stream. */
  udpStreamDeadline = 0;
  /** Helper name, when one is attached. */
  helper: string | null = null;
  /** The attached helper, which sees this connection's packets. */
  helperModule: ConntrackHelper | null = null;
  /** The helper's per-connection data (FTP: remembered line ends), created when first needed. */
  helperState: object | null = null;
  /** For a connection that fulfilled an expectation: the connection whose helper announced it. */
  master: Connection | null = null;
  /** Live expectations this connection's helper registered, oldest first (null when none). */
  expectations: Expectation[] | null = null;
  /** Event bits of packets a helper dropped: they go out with the next packet that gets through. */
  cachedEventBits = 0;

  constructor() {
    this.originalNode = new TupleNode(this, DIR_ORIGINAL, this.original);
    this.replyNode = new TupleNode(this, DIR_REPLY, this.reply);
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
  /** TCP state, or -1 for other protocols. */
  get tcpState(): number {
    return this.tcp === null ? -1 : this.tcp.state;
  }
}
