/**
 * TCP tracking as nf_conntrack_proto_tcp.c does it (6.17 source): packet classes, the state table,
 * flag validation, pick-up, ignore/re-sync, re-open, RST checks, window tracking and timeouts.
 */
import {
  DecodedPacket,
  TCP_ACK,
  TCP_CWR,
  TCP_ECE,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TCP_URG,
} from "../decode/packet.js";
import {
  Connection,
  DIR_REPLY,
  Status,
  TcpConnectionState,
  TcpDirection,
  TB_LAST_DIR,
  TB_SCALE,
  T_END,
  T_MAXACK,
  T_MAXEND,
  T_MAXWIN,
  TB_RETRANS,
  T_LAST_ACK,
  T_LAST_END,
  T_LAST_SEQ,
  T_LAST_WIN,
  TcpFlag,
  TcpState,
} from "./connection.js";
import type { ConntrackSettings } from "./settings.js";
import type { SeqAdjust } from "./nat/seqadj.js";

/** Packet classes (`enum tcp_bit_set`): the table's row index. */
export const TcpClass = { Syn: 0, SynAck: 1, Fin: 2, Ack: 3, Rst: 4, None: 5 } as const;

const sSS = TcpState.SynSent;
const sSR = TcpState.SynRecv;
const sES = TcpState.Established;
const sFW = TcpState.FinWait;
const sCW = TcpState.CloseWait;
const sLA = TcpState.LastAck;
const sTW = TcpState.TimeWait;
const sCL = TcpState.Close;
const sS2 = TcpState.SynSent2;
const sIV = TcpState.Invalid;
const sIG = TcpState.Ignore;

/**
 * `tcp_conntracks[direction][class][current state]` → next state. Columns: NO SS SR ES FW CW LA TW
 * CL S2. Checked against the 6.17 kernel table.
 */
export const TCP_TRANSITIONS: readonly (readonly (readonly number[])[])[] = [
  [
    /* ORIGINAL */
    /* syn    */ [sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2],
    /* synack */ [sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR],
    /* fin    */ [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV],
    /* ack    */ [sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV],
    /* rst    */ [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
    /* none   */ [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
  ],
  [
    /* REPLY */
    /* syn    */ [sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2],
    /* synack */ [sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR],
    /* fin    */ [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV],
    /* ack    */ [sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG],
    /* rst    */ [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
    /* none   */ [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
  ],
];

/** TCP_TRANSITIONS flat: `[(direction * 6 + class) * 10 + state]` (one load per packet, not three). */
const TRANSITIONS = new Uint8Array(2 * 6 * 10);
for (let direction = 0; direction < 2; direction++)
  for (let tcpClass = 0; tcpClass < 6; tcpClass++)
    for (let state = 0; state < 10; state++)
      TRANSITIONS[(direction * 6 + tcpClass) * 10 + state] = TCP_TRANSITIONS[direction][tcpClass][state];

/** Flag combinations `tcp_error` accepts, PSH/ECE/CWR masked off (index: the low six flag bits). */
const VALID_FLAGS = new Uint8Array(0x40);
for (const combination of [
  TCP_SYN,
  TCP_SYN | TCP_URG,
  TCP_SYN | TCP_ACK,
  TCP_RST,
  TCP_RST | TCP_ACK,
  TCP_FIN | TCP_ACK,
  TCP_FIN | TCP_ACK | TCP_URG,
  TCP_ACK,
  TCP_ACK | TCP_URG,
]) {
  VALID_FLAGS[combination] = 1;
}

export function tcpClassOf(flags: number): number {
  if (flags & TCP_RST) return TcpClass.Rst;
  if (flags & TCP_SYN) return flags & TCP_ACK ? TcpClass.SynAck : TcpClass.Syn;
  if (flags & TCP_FIN) return TcpClass.Fin;
  if (flags & TCP_ACK) return TcpClass.Ack;
  return TcpClass.None;
}

/** Outcome of the tracker for one packet. */
export const TcpResult = {
  /** Tracked: state, timer and counters updated as the kernel would. */
  Accept: 0,
  /** Let through without any update (sIG, window IGNORE, challenge ACK): still "tracked". */
  Ignore: 1,
  /** Not tracked (the kernel's -NF_ACCEPT); `reason` says why. */
  Invalid: 2,
  /** The packet re-opens a closed connection: kill the entry and process the packet again. */
  Reopen: 3,
  /** An RST on a never-answered connection: the entry was killed with accounting. */
  Killed: 4,
} as const;

/** Invalid reasons (constant strings: counted without allocation). */
export const TcpReason = {
  truncated: "tcp: truncated header",
  badFlags: "tcp: invalid flag combination",
  invalidNew: "tcp: packet cannot start a connection",
  noPickup: "tcp: mid-stream pick-up disabled (tcp_loose=0)",
  invalidTransition: "tcp: invalid state transition",
  invalidRst: "tcp: RST sequence below the acknowledged edge",
  seqOverWindow: "tcp: SEQ over the receiver's window",
  ackOverSent: "tcp: ACK for data not seen yet",
} as const;

/** What the tracker needs from the engine. */
export interface TcpHost {
  /** Current engine-relative time (ns). */
  readonly now: number;
  /** Sets the connection's timer to now + seconds and counts the packet. */
  refreshAccount(connection: Connection, direction: number, packet: DecodedPacket, seconds: number): void;
  /** Sets the timer without counting (nf_tcp_handle_invalid). */
  setTimeout(connection: Connection, seconds: number): void;
  /** Counts the packet and destroys the connection now. */
  killAccount(connection: Connection, direction: number, packet: DecodedPacket): void;
  /** Event bits this packet adds to the connection's message. */
  cacheEvent(bits: number): void;
}

export const EVENT_PROTOINFO = 1 << 5;
export const EVENT_ASSURED = 1 << 4;

/** Seconds per tracker state plus the two special timeouts, by index. */
const TIMEOUT_RETRANS = 10;
const TIMEOUT_UNACK = 11;
const SYN_SENT2_TIMEOUT = 120;
const MAXACKWINCONST = 66000;
const TCP_MAX_WSCALE = 14;

/** seq1 before seq2 in 32-bit sequence space. */
function before(seq1: number, seq2: number): boolean {
  return ((seq1 - seq2) | 0) < 0;
}
function after(seq1: number, seq2: number): boolean {
  return ((seq2 - seq1) | 0) < 0;
}

/** TCP header length in bytes (the decoder stores the data offset already multiplied by 4). */
export function tcpHeaderLength(packet: DecodedPacket): number {
  return packet.tcpDataOffset;
}

export class TcpTracker {
  /** Why the last packet was invalid. */
  reason = "";
  private readonly timeouts: number[];

  /** `rows`: where the connections' TCP data lives (the engine's store). */
  constructor(
    private readonly settings: ConntrackSettings,
    private readonly rows: { tcpOf(connection: Connection): TcpConnectionState },
  ) {
    const t = settings;
    this.timeouts = [
      0,
      t.tcpTimeoutSynSent,
      t.tcpTimeoutSynRecv,
      t.tcpTimeoutEstablished,
      t.tcpTimeoutFinWait,
      t.tcpTimeoutCloseWait,
      t.tcpTimeoutLastAck,
      t.tcpTimeoutTimeWait,
      t.tcpTimeoutClose,
      SYN_SENT2_TIMEOUT,
      t.tcpTimeoutMaxRetrans,
      t.tcpTimeoutUnacknowledged,
    ];
  }

  /** `tcp_error`: checks that make a packet untrackable before any lookup result is used. */
  checkHeader(packet: DecodedPacket): boolean {
    const headerLength = tcpHeaderLength(packet);
    if (headerLength < 20 || packet.l4Length < headerLength) {
      this.reason = TcpReason.truncated;
      return false;
    }
    if (!VALID_FLAGS[packet.tcpFlags & ~(TCP_ECE | TCP_CWR | TCP_PSH) & 0x3f]) {
      this.reason = TcpReason.badFlags;
      return false;
    }
    return true;
  }

  /** `tcp_new`: prepares a fresh (unconfirmed) entry; false when this packet cannot start one. */
  startConnection(connection: Connection, packet: DecodedPacket): boolean {
    const newState = TCP_TRANSITIONS[0][tcpClassOf(packet.tcpFlags)][TcpState.None];
    if (newState >= TcpState.Invalid) {
      this.reason = TcpReason.invalidNew;
      return false;
    }
    if (newState !== TcpState.SynSent && this.settings.tcpLoose === 0) {
      this.reason = TcpReason.noPickup;
      return false;
    }
    const tcp = this.rows.tcpOf(connection);
    tcp.reset();
    const sender = tcp.seen0;
    sender.end = segmentEnd(packet) >>> 0;
    sender.maxwin = packet.tcpWindow === 0 ? 1 : packet.tcpWindow;
    if (newState === TcpState.SynSent) {
      sender.maxend = sender.end;
      readOptions(packet, sender);
    } else {
      // Mid-stream: the history is lost, so assume SACK and never fail window checks.
      sender.maxend = sender.end + sender.maxwin;
      sender.flags = TcpFlag.SackPerm | TcpFlag.BeLiberal;
      tcp.seen1.flags = TcpFlag.SackPerm | TcpFlag.BeLiberal;
    }
    tcp.lastIndex = TcpClass.None;
    return true;
  }

  /** `nf_conntrack_tcp_packet` after tcp_error/tcp_new. */
  track(connection: Connection, direction: number, packet: DecodedPacket, host: TcpHost): number {
    const tcp = this.rows.tcpOf(connection);
    const flags = packet.tcpFlags;
    const index = tcpClassOf(flags);
    let oldState = tcp.state;
    let newState = TRANSITIONS[(direction * 6 + index) * 10 + oldState];
    let skipWindowCheck = false;

    switch (newState) {
      case TcpState.SynSent:
      case TcpState.Ignore: {
        if (newState === TcpState.SynSent) {
          if (oldState < TcpState.TimeWait) break;
          const closeInit = tcp.bothFlags & TcpFlag.CloseInit;
          if (closeInit !== 0 || (tcp.lastDir === direction && tcp.lastIndex === TcpClass.Rst)) {
            return TcpResult.Reopen;
          }
        }
        if (
          index === TcpClass.SynAck &&
          tcp.lastIndex === TcpClass.Syn &&
          tcp.lastDir !== direction &&
          packet.tcpAck === tcp.lastEnd
        ) {
          // The SYN/ACK answers a SYN we ignored: both ends are in sync and we were not.
          oldState = TcpState.SynSent;
          newState = TcpState.SynRecv;
          const synSender = tcp.lastDir === 0 ? tcp.seen0 : tcp.seen1;
          synSender.end = tcp.lastEnd;
          synSender.maxend = tcp.lastEnd;
          synSender.maxwin = tcp.lastWin === 0 ? 1 : tcp.lastWin;
          synSender.scale = tcp.lastWscale;
          tcp.lastFlags &= ~TcpFlag.ExpectChallengeAck;
          synSender.flags = tcp.lastFlags;
          const other = direction === 0 ? tcp.seen0 : tcp.seen1;
          other.end = 0;
          other.maxend = 0;
          other.maxwin = 0;
          other.maxack = 0;
          other.scale = 0;
          other.flags &= TcpFlag.BeLiberal;
          break;
        }
        tcp.lastIndex = index;
        tcp.lastDir = direction;
        tcp.lastSeq = packet.tcpSeq;
        tcp.lastEnd = segmentEnd(packet) >>> 0;
        tcp.lastWin = packet.tcpWindow;
        if (index === TcpClass.Syn && direction === 0) {
          tcp.lastFlags = 0;
          tcp.lastWscale = 0;
          if (tcpHeaderLength(packet) > 20) {
            if (packet.tcpWindowScale >= 0) {
              tcp.lastFlags |= TcpFlag.WindowScale;
              tcp.lastWscale = Math.min(packet.tcpWindowScale, TCP_MAX_WSCALE);
            }
            if (packet.tcpSackPermitted) tcp.lastFlags |= TcpFlag.SackPerm;
          }
          if (oldState === TcpState.LastAck) tcp.lastFlags |= TcpFlag.ExpectChallengeAck;
        }
        if (oldState === TcpState.SynSent && index === TcpClass.Ack && direction === DIR_REPLY) {
          tcp.lastAck = packet.tcpAck;
        }
        return TcpResult.Ignore;
      }
      case TcpState.Invalid:
        this.reason = TcpReason.invalidTransition;
        return TcpResult.Invalid;
      case TcpState.TimeWait:
        if (
          oldState === TcpState.LastAck &&
          index === TcpClass.Ack &&
          tcp.lastDir !== direction &&
          tcp.lastIndex === TcpClass.Syn &&
          (tcp.lastFlags & TcpFlag.ExpectChallengeAck) !== 0
        ) {
          // An RFC 5961 challenge ACK answering a SYN, not the last ACK of the close.
          tcp.lastFlags &= ~TcpFlag.ExpectChallengeAck;
          return TcpResult.Ignore;
        }
        break;
      case TcpState.SynSent2:
        tcp.lastFlags |= TcpFlag.SimultaneousOpen;
        break;
      case TcpState.SynRecv:
        if (
          direction === DIR_REPLY &&
          index === TcpClass.Ack &&
          (tcp.lastFlags & TcpFlag.SimultaneousOpen) !== 0
        ) {
          newState = TcpState.Established;
        }
        break;
      case TcpState.Close: {
        if (index !== TcpClass.Rst) break;
        if (tcpCanEarlyDrop(tcp.state)) {
          skipWindowCheck = true;
          break;
        }
        const peer = direction === 0 ? tcp.seen1 : tcp.seen0;
        const seq = packet.tcpSeq;
        if ((peer.flags & TcpFlag.MaxackSet) !== 0 && tcp.lastIndex !== TcpClass.Syn) {
          const established = tcp.state === TcpState.Established && connection.assured;
          if (seq === 0 && !established) break;
          if (before(seq, peer.maxack) && this.settings.tcpIgnoreInvalidRst === 0) {
            this.reason = TcpReason.invalidRst;
            return TcpResult.Invalid;
          }
          if (!established || seq === peer.maxack) break;
          // An RST right after our own last data segment ends it; any other sequence keeps the
          // state so a challenge ACK can follow.
          if (tcp.lastIndex === TcpClass.Ack && tcp.lastDir === direction && seq === tcp.lastEnd) break;
          newState = oldState;
        }
        if (
          ((connection.seenReply && tcp.lastIndex === TcpClass.Syn) ||
            (!connection.assured && tcp.lastIndex === TcpClass.Ack)) &&
          packet.tcpAck === tcp.lastEnd
        ) {
          // RST answering a SYN or half-open ACK we let through: it may ack what we ignored.
          skipWindowCheck = true;
          break;
        }
        if (
          oldState === TcpState.SynSent &&
          tcp.lastIndex === TcpClass.Ack &&
          tcp.lastDir === DIR_REPLY &&
          seq === tcp.lastAck
        ) {
          skipWindowCheck = true;
        }
        break;
      }
      default:
        break;
    }

    if (!skipWindowCheck) {
      const verdict = this.inWindow(tcp, direction, index, packet, connection.seqAdjust);
      if (verdict === WINDOW_IGNORE) return TcpResult.Ignore;
      if (verdict === WINDOW_INVALID) {
        this.handleInvalid(connection, direction, index, host);
        return TcpResult.Invalid;
      }
    }

    tcp.lastIndex = index;
    tcp.lastDir = direction;
    tcp.state = newState;
    if (oldState !== newState && newState === TcpState.FinWait)
      (direction === 0 ? tcp.seen0 : tcp.seen1).flags |= TcpFlag.CloseInit;

    const timeouts = this.timeouts;
    let timeout: number;
    if (tcp.retrans >= this.settings.tcpMaxRetrans && timeouts[newState] > timeouts[TIMEOUT_RETRANS]) {
      timeout = timeouts[TIMEOUT_RETRANS];
    } else if (index === TcpClass.Rst) {
      timeout = timeouts[TcpState.Close];
    } else if (
      (tcp.bothFlags & TcpFlag.DataUnacknowledged) !== 0 &&
      timeouts[newState] > timeouts[TIMEOUT_UNACK]
    ) {
      timeout = timeouts[TIMEOUT_UNACK];
    } else if (tcp.lastWin === 0 && timeouts[newState] > timeouts[TIMEOUT_RETRANS]) {
      timeout = timeouts[TIMEOUT_RETRANS];
    } else {
      timeout = timeouts[newState];
    }

    if (newState !== oldState) host.cacheEvent(EVENT_PROTOINFO);

    if ((connection.status & Status.SeenReply) === 0) {
      if (flags & TCP_RST) {
        host.killAccount(connection, direction, packet);
        return TcpResult.Killed;
      }
      // A retransmitted SYN must not keep an unanswered entry alive.
      if (index === TcpClass.Syn && oldState === TcpState.SynSent) return TcpResult.Accept;
      if (newState === TcpState.Established && timeout > timeouts[TIMEOUT_UNACK])
        timeout = timeouts[TIMEOUT_UNACK];
    } else if (
      (connection.status & Status.Assured) === 0 &&
      (oldState === TcpState.SynRecv || oldState === TcpState.Established) &&
      newState === TcpState.Established
    ) {
      connection.status |= Status.Assured;
      host.cacheEvent(EVENT_ASSURED);
    }
    host.refreshAccount(connection, direction, packet, timeout);
    return TcpResult.Accept;
  }

  /** `tcp_in_window`. */
  private inWindow(
    tcp: TcpConnectionState,
    direction: number,
    index: number,
    packet: DecodedPacket,
    seqAdjust: SeqAdjust | null,
  ): number {
    // The two directions' words and bytes read and written in the row directly: the views' accessors
    // cost a call each where V8 stops inlining, and this runs per packet.
    const words = tcp.words;
    const bytes = tcp.bytes;
    const sw = tcp.w + direction * 4;
    const rw = tcp.w + (1 - direction) * 4;
    const sb = tcp.b + TB_SCALE + direction * 2;
    const rb = tcp.b + TB_SCALE + (1 - direction) * 2;
    const flags = packet.tcpFlags;
    const syn = (flags & TCP_SYN) !== 0;
    const hasAck = (flags & TCP_ACK) !== 0;
    let seq = packet.tcpSeq;
    let ack = packet.tcpAck;
    let sack = ack;
    const rawWindow = packet.tcpWindow;
    const win = rawWindow;
    let end = segmentEnd(packet) >>> 0;

    if ((bytes[rb + 1] & TcpFlag.SackPerm) !== 0) sack = highestSack(packet, sack | 0) >>> 0;
    if (seqAdjust !== null) {
      // A NAT helper resized the receiver's data: this ack counts in the shifted space (nf_ct_seq_offset).
      const offset = seqAdjust.offset(1 - direction, (ack - 1) >>> 0);
      ack = (ack - offset) >>> 0;
      sack = (sack - offset) >>> 0;
    }

    if (words[sw + T_MAXWIN] >>> 0 === 0) {
      if (syn) {
        initSender(tcp, packet, end | 0, win, direction);
        if (!hasAck) return WINDOW_ACCEPT; // simultaneous open
      } else {
        // Mid-stream: take what the packet tells.
        words[sw + T_END] = end;
        const scaled = (win * (1 << bytes[sb])) >>> 0;
        words[sw + T_MAXWIN] = scaled === 0 ? 1 : scaled;
        words[sw + T_MAXEND] = (end + (words[sw + T_MAXWIN] >>> 0)) >>> 0;
        if (words[rw + T_MAXWIN] >>> 0 === 0) {
          words[rw + T_END] = sack;
          words[rw + T_MAXEND] = sack;
        } else if (sack === ((words[rw + T_END] >>> 0) + 1) >>> 0) {
          words[rw + T_END] = ((words[rw + T_END] >>> 0) + 1) >>> 0; // reply to a keepalive
        }
      }
    } else if (
      syn &&
      after(end, words[sw + T_END] >>> 0) &&
      (tcp.state === TcpState.SynSent || tcp.state === TcpState.SynRecv)
    ) {
      // A re-initialised SYN (higher sequence) starts the direction again.
      initSender(tcp, packet, end | 0, win, direction);
      if (direction === DIR_REPLY && !hasAck) return WINDOW_ACCEPT;
    }

    if (!hasAck) {
      ack = words[rw + T_END] >>> 0;
      sack = words[rw + T_END] >>> 0;
    } else if ((flags & (TCP_ACK | TCP_RST)) === (TCP_ACK | TCP_RST) && ack === 0) {
      ack = words[rw + T_END] >>> 0;
      sack = words[rw + T_END] >>> 0;
    }

    if ((flags & TCP_RST) !== 0 && seq === 0 && tcp.state === TcpState.SynSent) {
      seq = words[sw + T_END] >>> 0;
      end = words[sw + T_END] >>> 0;
    }

    // With be_liberal (global or per connection) a failing check accepts without updating.
    const liberal = (bytes[sb + 1] & TcpFlag.BeLiberal) !== 0 || this.settings.tcpBeLiberal !== 0;
    const maxAckWindow =
      words[sw + T_MAXWIN] >>> 0 > MAXACKWINCONST ? words[sw + T_MAXWIN] >>> 0 : MAXACKWINCONST;

    if (!before(seq, ((words[sw + T_MAXEND] >>> 0) + 1) >>> 0)) {
      const overshot = (end - (words[sw + T_MAXEND] >>> 0) + 1) >>> 0;
      const ackOk = after(sack, ((words[rw + T_END] >>> 0) - maxAckWindow - 1) >>> 0);
      const inReceiveWindow =
        words[rw + T_MAXWIN] >>> 0 !== 0 &&
        after(end, ((words[sw + T_END] >>> 0) - (words[rw + T_MAXWIN] >>> 0) - 1) >>> 0);
      if (
        inReceiveWindow &&
        ackOk &&
        overshot <= words[rw + T_MAXWIN] >>> 0 &&
        before(sack, ((words[rw + T_END] >>> 0) + 1) >>> 0)
      ) {
        // Peers that send past the window: remember the data so its ACK is not out of bounds later.
        words[sw + T_END] = end;
        bytes[sb + 1] |= TcpFlag.DataUnacknowledged;
        return liberal ? WINDOW_ACCEPT : WINDOW_IGNORE;
      }
      if (liberal) return WINDOW_ACCEPT;
      this.reason = TcpReason.seqOverWindow;
      return WINDOW_INVALID;
    }
    if (!before(sack, ((words[rw + T_END] >>> 0) + 1) >>> 0)) {
      if (liberal) return WINDOW_ACCEPT;
      this.reason = TcpReason.ackOverSent;
      return WINDOW_INVALID;
    }
    // Old retransmission, or an ACK from too far back: let it pass, learn nothing.
    if (
      words[rw + T_MAXWIN] >>> 0 !== 0 &&
      !after(end, ((words[sw + T_END] >>> 0) - (words[rw + T_MAXWIN] >>> 0) - 1) >>> 0)
    ) {
      return liberal ? WINDOW_ACCEPT : WINDOW_IGNORE;
    }
    if (!after(sack, ((words[rw + T_END] >>> 0) - maxAckWindow - 1) >>> 0))
      return liberal ? WINDOW_ACCEPT : WINDOW_IGNORE;
    // The update part, once the packet is accepted (here, not in a call of its own: fewer arguments
    // to pass per packet).
    const scaledWin = syn ? win : (win * (1 << bytes[sb])) >>> 0;
    const swin = (scaledWin + ((sack - ack) >>> 0)) >>> 0;
    if (words[sw + T_MAXWIN] >>> 0 < swin) words[sw + T_MAXWIN] = swin;
    if (after(end, words[sw + T_END] >>> 0)) {
      words[sw + T_END] = end;
      bytes[sb + 1] |= TcpFlag.DataUnacknowledged;
    }
    if (hasAck) {
      if ((bytes[sb + 1] & TcpFlag.MaxackSet) === 0) {
        words[sw + T_MAXACK] = ack;
        bytes[sb + 1] |= TcpFlag.MaxackSet;
      } else if (after(ack, words[sw + T_MAXACK] >>> 0)) {
        words[sw + T_MAXACK] = ack;
      }
    }
    if (words[rw + T_MAXWIN] >>> 0 !== 0 && after(end, words[sw + T_MAXEND] >>> 0)) {
      words[rw + T_MAXWIN] =
        ((words[rw + T_MAXWIN] >>> 0) + ((end - (words[sw + T_MAXEND] >>> 0)) >>> 0)) >>> 0;
    }
    if (after((sack + scaledWin) >>> 0, ((words[rw + T_MAXEND] >>> 0) - 1) >>> 0)) {
      words[rw + T_MAXEND] = (sack + scaledWin) >>> 0;
      if (scaledWin === 0) words[rw + T_MAXEND] = ((words[rw + T_MAXEND] >>> 0) + 1) >>> 0;
    }
    if (ack === words[rw + T_END] >>> 0) bytes[rb + 1] &= ~TcpFlag.DataUnacknowledged;

    if (index === TcpClass.Ack) {
      // The row's words written and compared here, not through the view's accessors: this runs per
      // packet, where V8 has stopped inlining, and a sequence number of 2^31 or more passed to a call
      // is a new heap number.
      const w = tcp.w;
      const b = tcp.b;
      if (
        bytes[b + TB_LAST_DIR] === direction &&
        words[w + T_LAST_SEQ] === (seq | 0) &&
        words[w + T_LAST_ACK] === (ack | 0) &&
        words[w + T_LAST_END] === (end | 0) &&
        words[w + T_LAST_WIN] === rawWindow
      ) {
        bytes[b + TB_RETRANS]++;
      } else {
        bytes[b + TB_LAST_DIR] = direction;
        words[w + T_LAST_SEQ] = seq;
        words[w + T_LAST_ACK] = ack;
        words[w + T_LAST_END] = end;
        words[w + T_LAST_WIN] = rawWindow;
        bytes[b + TB_RETRANS] = 0;
      }
    }
    return WINDOW_ACCEPT;
  }

  /** `nf_tcp_handle_invalid`: an out-of-window FIN/RST answering one may shorten an assured entry's timer. */
  private handleInvalid(connection: Connection, direction: number, index: number, host: TcpHost): void {
    if ((connection.status & Status.Assured) === 0) return;
    if (index !== TcpClass.Rst && index !== TcpClass.Fin) return;
    const tcp = this.rows.tcpOf(connection);
    if (tcp.lastDir !== direction && (tcp.lastIndex === TcpClass.Fin || tcp.lastIndex === TcpClass.Rst)) {
      const remaining = connection.expiresAt - host.now;
      if (remaining < 120e9) return;
      const timeout = this.timeouts[TIMEOUT_UNACK];
      if (remaining > timeout * 1e9) host.setTimeout(connection, timeout);
    } else {
      tcp.lastIndex = index;
      tcp.lastDir = direction;
    }
  }
}

const WINDOW_IGNORE = 0;
const WINDOW_INVALID = 1;
const WINDOW_ACCEPT = 2;

/** `tcp_can_early_drop`: closing states the GC's early-drop mode may evict even when ASSURED. */
export function tcpCanEarlyDrop(state: number): boolean {
  return (
    state === TcpState.FinWait ||
    state === TcpState.LastAck ||
    state === TcpState.TimeWait ||
    state === TcpState.Close ||
    state === TcpState.CloseWait
  );
}

/**
 * seq + payload + SYN + FIN, in sequence space, as a signed 32-bit word (`>>> 0` for the unsigned
 * number). Sequence numbers cross calls signed: V8 keeps those as small integers, while an unsigned
 * one of 2^31 or more passed to or returned from a call it does not inline is a new heap number.
 */
function segmentEnd(packet: DecodedPacket): number {
  const flags = packet.tcpFlags;
  return (packet.tcpSeq + packet.payloadLength + (flags & TCP_SYN ? 1 : 0) + (flags & TCP_FIN ? 1 : 0)) | 0;
}

/** `tcp_options`: a header without options leaves the direction's scale and flags alone. */
function readOptions(packet: DecodedPacket, state: TcpDirection): void {
  if (tcpHeaderLength(packet) <= 20) return;
  state.scale = 0;
  state.flags &= TcpFlag.BeLiberal;
  if (packet.tcpSackPermitted) state.flags |= TcpFlag.SackPerm;
  if (packet.tcpWindowScale >= 0) {
    state.scale = Math.min(packet.tcpWindowScale, TCP_MAX_WSCALE);
    state.flags |= TcpFlag.WindowScale;
  }
}

/** `tcp_init_sender`: window scaling only when both SYNs offered it. `end` signed (see `segmentEnd`). */
function initSender(
  tcp: TcpConnectionState,
  packet: DecodedPacket,
  end: number,
  win: number,
  direction: number,
): void {
  const sender = direction === 0 ? tcp.seen0 : tcp.seen1;
  const receiver = direction === 0 ? tcp.seen1 : tcp.seen0;
  sender.end = end >>> 0;
  sender.maxend = end >>> 0;
  sender.maxwin = win === 0 ? 1 : win;
  readOptions(packet, sender);
  if (
    direction === DIR_REPLY &&
    !((sender.flags & TcpFlag.WindowScale) !== 0 && (receiver.flags & TcpFlag.WindowScale) !== 0)
  ) {
    sender.scale = 0;
    receiver.scale = 0;
  }
}

/** Highest SACK right edge after `ack`, as `tcp_sack` finds it; both signed (see `segmentEnd`). */
function highestSack(packet: DecodedPacket, ack: number): number {
  let sack = ack;
  const blocks = packet.tcpSackBlocks;
  for (let i = 0; i < packet.tcpSackCount; i++) {
    const right = blocks[2 * i + 1] | 0;
    if (after(right, sack)) sack = right;
  }
  return sack;
}
