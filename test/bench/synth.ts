/**
 * Deterministic synthetic traffic: a capture of exactly N packets in exactly C conversations,
 * interleaved in time as a busy link shows them. TCP connections have real handshakes (MSS, SACK-permitted,
 * timestamps, window scale), request/response or bulk data with delayed ACKs, FIN or RST closes; UDP has DNS
 * queries/answers, media-like streams and datagrams to closed ports answered by ICMP port-unreachable;
 * ICMP has echo sessions and host-unreachable errors quoting SYNs. About one conversation in seven is IPv6.
 *
 * Streaming: only a bounded pool of live conversations exists at a time (default 4096); a finished one is
 * replaced by the next, so memory does not grow with N. Same seed and options give the same bytes.
 *
 * CLI: node dist/test/bench/synth.js --packets N --conversations C [--seed S] [--live L]
 *      [--format pcap|pcap-nsec|pcapng] [--out FILE|-]
 */
import { createWriteStream } from "node:fs";
import type { Writable } from "node:stream";
import { pathToFileURL } from "node:url";
import { PcapWriter, PcapngWriter, type CaptureWriter } from "../../lib/capture/writer.js";

export type SynthFormat = "pcap" | "pcap-nsec" | "pcapng";

export interface SynthOptions {
  packets: number;
  conversations: number;
  seed?: number;
  /** Most conversations alive at once (default min(4096, conversations)). */
  live?: number;
  format?: SynthFormat;
  /** Unix seconds of the first packet's neighbourhood (default 1 700 000 000). */
  startSec?: number;
}

export const KIND_NAMES = [
  "tcp-session",
  "tcp-refused",
  "tcp-unreachable",
  "udp-dns",
  "udp-stream",
  "udp-closed-port",
  "icmp-echo",
] as const;
export type ConversationKind = (typeof KIND_NAMES)[number];

export interface SynthSummary {
  packets: number;
  conversations: number;
  ipv6Conversations: number;
  /** Conversations of each kind. */
  kinds: Record<ConversationKind, number>;
  /** Bytes of the capture file. */
  fileBytes: number;
  firstTsSec: number;
  lastTsSec: number;
}

const enum Kind {
  TcpSession = 0,
  TcpRefused = 1,
  TcpUnreachable = 2,
  UdpDns = 3,
  UdpStream = 4,
  UdpClosedPort = 5,
  IcmpEcho = 6,
}

/** Share of conversations of each kind; TCP sessions and UDP streams are the large ones. */
const KIND_WEIGHTS = [0.44, 0.06, 0.01, 0.3, 0.04, 0.02, 0.13];
/** Mean packets of the small kinds (used to size the large ones so that totals come out as asked). */
const SMALL_KIND_MEAN_PACKETS = [0, 1.5, 2.4, 2.15, 0, 2.2, 6];
const LARGE_KIND_SHARE = KIND_WEIGHTS[Kind.TcpSession] + KIND_WEIGHTS[Kind.UdpStream];
const SMALL_KINDS_PACKETS_PER_CONVERSATION = KIND_WEIGHTS.reduce(
  (sum, w, k) => sum + w * SMALL_KIND_MEAN_PACKETS[k],
  0,
);
const IPV6_SHARE = 0.15;

/** Client hosts per family; a conversation's index picks its host and its ephemeral port, so tuples never repeat. */
const CLIENT_HOSTS_V4 = 16384;
const CLIENT_HOSTS_V6 = 4096;
const EPHEMERAL_PORT_FIRST = 32768;
const EPHEMERAL_PORT_COUNT = 28232;
const SERVER_HOSTS = 4096;
const PUBLIC_PREFIXES = [
  [93, 184],
  [151, 101],
  [142, 250],
  [104, 16],
  [13, 107],
  [20, 190],
  [172, 217],
  [185, 199],
  [23, 45],
  [54, 230],
];
const RESOLVERS_V4 = [0x08080808, 0x01010101, 0x09090909, 0x08080404];
const TCP_SERVER_PORTS = [443, 443, 443, 443, 443, 80, 80, 22, 25, 993, 3306, 8080, 5432, 445];
const GATEWAY_MAC_HIGH = 0x001b; // 00:1b:21:3a:4f:01, an Intel OUI
const GATEWAY_MAC_LOW = 0x213a4f01;

const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_PSH = 0x08;
const TCP_ACK = 0x10;

const enum TcpOptions {
  None = 0,
  Syn = 1,
  Timestamps = 2,
}

const enum Close {
  None = 0,
  Fin3 = 1,
  Fin4 = 2,
  Reset = 3,
  /** Two-packet connection attempts: refused by RST, or a retransmitted SYN. */
  RefusedByReset = 4,
  SynRetransmitted = 5,
}

const enum TcpMode {
  Web = 0,
  Upload = 1,
  Interactive = 2,
}

const enum DataAction {
  ReceiverAcks = 0,
  SenderSegment = 1,
  ServerResponds = 2,
  NewExchange = 3,
}

const MS = 1_000_000;
const US = 1_000;
const POOL_BYTES = 65536;
const FRAME_BYTES = 2048;

/** sfc32 seeded through splitmix32: small, fast, and the same on every platform. */
export class SeededRandom {
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 0;

  constructor(seed: number) {
    let state = seed >>> 0;
    const splitmix = (): number => {
      state = (state + 0x9e3779b9) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix();
    this.b = splitmix();
    this.c = splitmix();
    this.d = splitmix();
    for (let i = 0; i < 12; i++) this.uint32();
  }

  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform integer in [low, high]. */
  between(low: number, high: number): number {
    return low + Math.floor(this.float() * (high - low + 1));
  }

  exponential(mean: number): number {
    return -mean * Math.log(1 - this.float());
  }

  /** Log-uniform in [low, high): many small values, some large, as RTTs and sizes are. */
  logUniform(low: number, high: number): number {
    return low * Math.exp(this.float() * Math.log(high / low));
  }
}

/** One live conversation's state; slots are reused, so nothing here is allocated per packet. */
class Conversation {
  kind = Kind.TcpSession;
  ipv6 = false;
  budget = 0;
  sent = 0;
  lastFromClient = true;
  clientV4 = 0;
  serverV4 = 0;
  routerV4 = 0;
  readonly clientV6 = new Uint8Array(16);
  readonly serverV6 = new Uint8Array(16);
  readonly routerV6 = new Uint8Array(16);
  /** Sum of the address words of the pseudo-header (the same in both directions). */
  addressWordSum = 0;
  /** Sum for ICMP errors: router or server to client. */
  errorAddressWordSum = 0;
  clientMacLow = 0;
  clientPort = 0;
  serverPort = 0;
  rttNs = 0;
  hops = 0;
  serverInitialTtl = 64;
  flowLabel = 0;
  clientIpId = 0;
  serverIpId = 0;
  // TCP
  clientNext = 0;
  serverNext = 0;
  clientIsn = 0;
  clientTsBase = 0;
  serverTsBase = 0;
  clientTsLast = 0;
  serverTsLast = 0;
  clientMss = 0;
  serverMss = 0;
  clientWindowScale = 0;
  serverWindowScale = 0;
  dataEnd = 0;
  close = Close.None;
  closeByClient = true;
  mode = TcpMode.Web;
  msgFromClient = false;
  msgRemaining = 0;
  serverMessageBytes = 0;
  unacked = 0;
  exchanges = 0;
  thinkMeanNs = 0;
  // UDP / ICMP
  echoId = 0;
  streamPayload = 0;
  intervalNs = 0;
  /** A packet kept to be quoted or answered later (DNS query, datagram or SYN that draws an ICMP error). */
  readonly kept = Buffer.alloc(FRAME_BYTES);
  keptLength = 0;
}

function foldChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum % 65536) + Math.floor(sum / 65536);
  return sum;
}

function sumWords(buf: Uint8Array, start: number, end: number): number {
  let sum = 0;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  return sum;
}

function v6WordSum(address: Uint8Array): number {
  return sumWords(address, 0, 16);
}

export function checkOptions(options: SynthOptions): void {
  const { packets, conversations, live } = options;
  if (!Number.isSafeInteger(packets) || packets < 1)
    throw new RangeError(`--packets ${packets} must be >= 1`);
  if (!Number.isSafeInteger(conversations) || conversations < 1 || conversations > packets)
    throw new RangeError(`--conversations ${conversations} must be within 1..packets (${packets})`);
  if (live !== undefined && (!Number.isSafeInteger(live) || live < 1))
    throw new RangeError(`--live ${live} must be >= 1`);
}

/** Produces the packets one at a time into `frame`; `next()` returns false after the last. */
export class SyntheticTraffic {
  /** Bytes of the current packet: frame[0, frameLength). Overwritten by the next. */
  readonly frame = Buffer.alloc(FRAME_BYTES);
  frameLength = 0;
  tsSec = 0;
  tsNsec = 0;
  readonly kindCounts = new Array<number>(KIND_NAMES.length).fill(0);
  ipv6Conversations = 0;
  packetsEmitted = 0;

  private readonly random: SeededRandom;
  private readonly payloadPool = Buffer.alloc(POOL_BYTES + FRAME_BYTES);
  /** payloadPrefix[k]: sum of the pool's first k 16-bit words, so a payload's checksum costs O(1). */
  private readonly payloadPrefix = new Float64Array((POOL_BYTES + FRAME_BYTES) / 2 + 1);
  private readonly slots: Conversation[];
  private readonly heapSlot: Int32Array;
  private readonly slotTimeNs: Float64Array;
  private heapSize = 0;
  private packetsUnassigned: number;
  private conversationsStarted = 0;
  private lastEmitNs = -US;
  private readonly startSec: number;

  constructor(private readonly options: SynthOptions) {
    checkOptions(options);
    const live = Math.min(options.live ?? 4096, options.conversations);
    this.random = new SeededRandom(options.seed ?? 1);
    this.startSec = options.startSec ?? 1_700_000_000;
    this.packetsUnassigned = options.packets;
    for (let i = 0; i < this.payloadPool.length; i++) this.payloadPool[i] = this.random.uint32() & 0xff;
    for (let k = 1; k < this.payloadPrefix.length; k++)
      this.payloadPrefix[k] =
        this.payloadPrefix[k - 1] + ((this.payloadPool[2 * k - 2] << 8) | this.payloadPool[2 * k - 1]);
    this.slots = Array.from({ length: live }, () => new Conversation());
    this.heapSlot = new Int32Array(live);
    this.slotTimeNs = new Float64Array(live);
    for (let slot = 0; slot < live; slot++) {
      this.startConversation(this.slots[slot]);
      this.slotTimeNs[slot] = Math.floor(this.random.float() * 1000) * MS;
      this.heapSlot[this.heapSize] = slot;
      this.siftUp(this.heapSize++);
    }
  }

  next(): boolean {
    if (this.heapSize === 0) return false;
    const slot = this.heapSlot[0];
    const conversation = this.slots[slot];
    let nowNs = Math.ceil(this.slotTimeNs[slot] / US) * US;
    if (nowNs <= this.lastEmitNs) nowNs = this.lastEmitNs + US;
    this.lastEmitNs = nowNs;
    this.tsSec = this.startSec + Math.floor(nowNs / 1e9);
    this.tsNsec = nowNs % 1e9;
    const delayNs = this.step(conversation, nowNs);
    conversation.sent++;
    this.packetsEmitted++;
    if (conversation.sent < conversation.budget) {
      this.slotTimeNs[slot] = nowNs + Math.max(US, Math.round(delayNs));
    } else if (this.conversationsStarted < this.options.conversations) {
      this.startConversation(conversation);
      this.slotTimeNs[slot] = nowNs + Math.round(this.random.exponential(2 * MS));
    } else {
      this.heapSlot[0] = this.heapSlot[--this.heapSize];
      if (this.heapSize === 0) return true;
    }
    this.siftDown(0);
    return true;
  }

  private siftUp(position: number): void {
    const slot = this.heapSlot[position];
    const time = this.slotTimeNs[slot];
    while (position > 0) {
      const parent = (position - 1) >> 1;
      const parentSlot = this.heapSlot[parent];
      if (this.slotTimeNs[parentSlot] < time || (this.slotTimeNs[parentSlot] === time && parentSlot < slot))
        break;
      this.heapSlot[position] = parentSlot;
      position = parent;
    }
    this.heapSlot[position] = slot;
  }

  private siftDown(position: number): void {
    const slot = this.heapSlot[position];
    const time = this.slotTimeNs[slot];
    for (;;) {
      let child = 2 * position + 1;
      if (child >= this.heapSize) break;
      const right = child + 1;
      if (right < this.heapSize && this.earlier(this.heapSlot[right], this.heapSlot[child])) child = right;
      const childSlot = this.heapSlot[child];
      if (!(this.slotTimeNs[childSlot] < time || (this.slotTimeNs[childSlot] === time && childSlot < slot)))
        break;
      this.heapSlot[position] = childSlot;
      position = child;
    }
    this.heapSlot[position] = slot;
  }

  private earlier(slotA: number, slotB: number): boolean {
    const a = this.slotTimeNs[slotA];
    const b = this.slotTimeNs[slotB];
    return a < b || (a === b && slotA < slotB);
  }

  // ---------------------------------------------------------------- conversation set-up

  private startConversation(c: Conversation): void {
    const r = this.random;
    const index = this.conversationsStarted++;
    const remainingConversations = this.options.conversations - index;
    let roll = r.float();
    let kind = 0;
    while (kind < KIND_WEIGHTS.length - 1 && roll >= KIND_WEIGHTS[kind]) roll -= KIND_WEIGHTS[kind++];
    c.kind = kind;
    c.ipv6 = r.float() < IPV6_SHARE;
    c.sent = 0;
    c.lastFromClient = true;

    const meanPerConversation = this.packetsUnassigned / remainingConversations;
    const largeMean = Math.max(
      7,
      (meanPerConversation - SMALL_KINDS_PACKETS_PER_CONVERSATION) / LARGE_KIND_SHARE,
    );
    let budget: number;
    switch (kind) {
      case Kind.TcpSession:
        budget = Math.max(7, Math.round(r.exponential(largeMean)));
        break;
      case Kind.UdpStream:
        budget = Math.max(2, Math.round(r.exponential(largeMean)));
        break;
      case Kind.TcpRefused:
        budget = r.float() < 0.5 ? 1 : 2;
        break;
      case Kind.TcpUnreachable:
        budget = r.float() < 0.8 ? 2 : 2 * r.between(2, 3);
        break;
      case Kind.UdpDns:
        budget = r.float() < 0.05 ? 1 : r.float() < 0.9 ? 2 : 4;
        break;
      case Kind.UdpClosedPort:
        budget = r.float() < 0.9 ? 2 : 4;
        break;
      default:
        budget = 2 * r.between(1, 5);
        break;
    }
    // The last conversation takes what is left; none may leave the rest without one packet each.
    const most = this.packetsUnassigned - (remainingConversations - 1);
    if (remainingConversations === 1 || budget > most) budget = most;
    c.budget = budget;
    this.packetsUnassigned -= budget;
    this.kindCounts[kind]++;
    if (c.ipv6) this.ipv6Conversations++;

    this.assignEndpoints(c, index);
    c.rttNs = r.logUniform(0.3 * MS, 120 * MS);
    c.hops = r.between(4, 18);
    c.serverInitialTtl = r.float() < 0.8 ? 64 : 128;
    c.clientIpId = r.uint32() & 0xffff;
    c.serverIpId = r.uint32() & 0xffff;
    c.flowLabel = r.uint32() & 0xfffff;
    c.keptLength = 0;

    switch (kind) {
      case Kind.TcpSession:
      case Kind.TcpRefused:
      case Kind.TcpUnreachable:
        this.startTcp(c);
        break;
      case Kind.UdpDns:
        c.serverPort = 53;
        c.rttNs = r.logUniform(2 * MS, 40 * MS);
        c.intervalNs = r.logUniform(50 * MS, 3000 * MS);
        break;
      case Kind.UdpStream:
        c.serverPort = r.between(10000, 20000) & ~1;
        c.streamPayload = r.float() < 0.6 ? 172 : r.between(800, 1200);
        c.intervalNs = r.float() < 0.6 ? 20 * MS : r.between(5, 33) * MS;
        break;
      case Kind.UdpClosedPort:
        c.serverPort = r.between(1024, 9999);
        c.intervalNs = 1000 * MS;
        break;
      default:
        // An odd multiplier is a bijection on 16 bits: identifiers stay unique per host, as ports are.
        c.echoId = Math.imul(c.clientPort, 0x9e37) & 0xffff;
        c.intervalNs = r.float() < 0.7 ? 1000 * MS : 200 * MS;
        break;
    }
  }

  private assignEndpoints(c: Conversation, index: number): void {
    const r = this.random;
    const hosts = c.ipv6 ? CLIENT_HOSTS_V6 : CLIENT_HOSTS_V4;
    const host = index % hosts;
    c.clientPort = EPHEMERAL_PORT_FIRST + (Math.floor(index / hosts) % EPHEMERAL_PORT_COUNT);
    const server = r.between(0, SERVER_HOSTS - 1);
    const prefix = PUBLIC_PREFIXES[server % PUBLIC_PREFIXES.length];
    const useResolver = c.kind === Kind.UdpDns;
    if (!c.ipv6) {
      c.clientV4 = (0x0a010000 | host) >>> 0;
      c.serverV4 = useResolver
        ? RESOLVERS_V4[server % RESOLVERS_V4.length]
        : ((prefix[0] << 24) | (prefix[1] << 16) | (((server >> 4) & 0xff) << 8) | (2 + (server % 250))) >>>
          0;
      c.routerV4 = ((c.serverV4 & 0xffffff00) | 1) >>> 0;
      c.clientMacLow = c.clientV4;
      c.addressWordSum =
        (c.clientV4 >>> 16) + (c.clientV4 & 0xffff) + (c.serverV4 >>> 16) + (c.serverV4 & 0xffff);
      const errorSource = c.kind === Kind.TcpUnreachable ? c.routerV4 : c.serverV4;
      c.errorAddressWordSum =
        (c.clientV4 >>> 16) + (c.clientV4 & 0xffff) + (errorSource >>> 16) + (errorSource & 0xffff);
    } else {
      // 2001:db8:c::/48 clients, 2001:db8:<prefix>::/48 servers (documentation space).
      this.fillV6(c.clientV6, 0x000c, host + 1);
      this.fillV6(
        c.serverV6,
        useResolver ? 0x0053 : 0x1000 + (server % PUBLIC_PREFIXES.length),
        useResolver ? 1 : server + 2,
      );
      c.routerV6.set(c.serverV6);
      c.routerV6[14] = 0;
      c.routerV6[15] = 1;
      c.clientMacLow = (0xfd000000 | host) >>> 0;
      c.addressWordSum = v6WordSum(c.clientV6) + v6WordSum(c.serverV6);
      c.errorAddressWordSum =
        v6WordSum(c.clientV6) + v6WordSum(c.kind === Kind.TcpUnreachable ? c.routerV6 : c.serverV6);
    }
  }

  private fillV6(address: Uint8Array, subnet: number, host: number): void {
    address.fill(0);
    address[0] = 0x20;
    address[1] = 0x01;
    address[2] = 0x0d;
    address[3] = 0xb8;
    address[4] = subnet >> 8;
    address[5] = subnet & 0xff;
    address[12] = (host >>> 24) & 0xff;
    address[13] = (host >>> 16) & 0xff;
    address[14] = (host >>> 8) & 0xff;
    address[15] = host & 0xff;
  }

  private startTcp(c: Conversation): void {
    const r = this.random;
    c.serverPort = TCP_SERVER_PORTS[r.between(0, TCP_SERVER_PORTS.length - 1)];
    c.clientIsn = r.uint32();
    c.clientNext = c.clientIsn;
    c.serverNext = r.uint32();
    c.clientTsBase = r.uint32();
    c.serverTsBase = r.uint32();
    c.clientTsLast = 0;
    c.serverTsLast = 0;
    c.clientMss = c.ipv6 ? 1440 : 1460;
    c.serverMss = r.float() < 0.8 ? c.clientMss : c.ipv6 ? 1380 : 1400;
    c.clientWindowScale = 7;
    c.serverWindowScale = r.float() < 0.5 ? 7 : 9;
    c.msgFromClient = false;
    c.msgRemaining = 0;
    c.unacked = 0;
    c.exchanges = 0;
    const roll = r.float();
    c.mode = roll < 0.8 ? TcpMode.Web : roll < 0.9 ? TcpMode.Upload : TcpMode.Interactive;
    c.thinkMeanNs = c.mode === TcpMode.Interactive ? 400 * MS : c.mode === TcpMode.Upload ? 5 * MS : 80 * MS;
    c.closeByClient = r.float() < 0.6;
    const b = c.budget;
    if (c.kind === Kind.TcpUnreachable) {
      c.close = Close.None;
      c.dataEnd = b;
      return;
    }
    if (b === 2) c.close = r.float() < 0.6 ? Close.RefusedByReset : Close.SynRetransmitted;
    else if (b < 3) c.close = Close.None;
    else {
      const rest = b - 3;
      const roll2 = r.float();
      if (rest >= 4 && roll2 < 0.35) c.close = Close.Fin4;
      else if (rest >= 3 && roll2 < 0.8) c.close = Close.Fin3;
      else if (rest >= 1 && roll2 < 0.92) c.close = Close.Reset;
      else c.close = Close.None;
    }
    const closePackets =
      c.close === Close.Fin4 ? 4 : c.close === Close.Fin3 ? 3 : c.close === Close.Reset ? 1 : 0;
    c.dataEnd = b >= 3 ? b - closePackets : b;
  }

  // ---------------------------------------------------------------- per-packet steps

  /** Writes packet number `c.sent` of the conversation into the frame; returns the delay to its next packet. */
  private step(c: Conversation, nowNs: number): number {
    switch (c.kind) {
      case Kind.TcpSession:
      case Kind.TcpRefused:
        return this.stepTcp(c, nowNs);
      case Kind.TcpUnreachable:
        return this.stepTcpUnreachable(c, nowNs);
      case Kind.UdpDns:
        return this.stepDns(c);
      case Kind.UdpStream:
        return this.stepStream(c);
      case Kind.UdpClosedPort:
        return this.stepClosedPort(c);
      default:
        return this.stepEcho(c, nowNs);
    }
  }

  private stepTcp(c: Conversation, nowNs: number): number {
    const s = c.sent;
    if (s === 0) {
      this.emitTcp(c, true, TCP_SYN, TcpOptions.Syn, 0, nowNs);
      c.clientNext = (c.clientIsn + 1) >>> 0;
      return c.close === Close.SynRetransmitted ? 1000 * MS : c.rttNs;
    }
    if (s === 1 && c.close === Close.SynRetransmitted) {
      c.clientNext = c.clientIsn;
      this.emitTcp(c, true, TCP_SYN, TcpOptions.Syn, 0, nowNs);
      c.clientNext = (c.clientIsn + 1) >>> 0;
      return 0;
    }
    if (s === 1 && c.close === Close.RefusedByReset) {
      const isn = c.serverNext;
      c.serverNext = 0;
      this.emitTcp(c, false, TCP_RST | TCP_ACK, TcpOptions.None, 0, nowNs);
      c.serverNext = isn;
      return 0;
    }
    if (s === 1) {
      this.emitTcp(c, false, TCP_SYN | TCP_ACK, TcpOptions.Syn, 0, nowNs);
      c.serverNext = (c.serverNext + 1) >>> 0;
      return this.reactionNs();
    }
    if (s === 2) {
      this.emitTcp(c, true, TCP_ACK, TcpOptions.Timestamps, 0, nowNs);
      return this.delayBefore(c, this.nextTcpSenderIsClient(c, s + 1), 0.2 * MS);
    }
    if (s < c.dataEnd) {
      this.stepTcpData(c, nowNs);
      return this.delayBefore(c, this.nextTcpSenderIsClient(c, s + 1), c.thinkMeanNs);
    }
    const closeStep = s - c.dataEnd;
    const byInitiator = this.closeStepByInitiator(c.close, closeStep);
    const fromClient = byInitiator === c.closeByClient;
    if (c.close === Close.Reset) {
      this.emitTcp(c, fromClient, TCP_RST | TCP_ACK, TcpOptions.None, 0, nowNs);
      return 0;
    }
    const finStep = c.close === Close.Fin3 ? closeStep <= 1 : closeStep === 0 || closeStep === 2;
    this.emitTcp(c, fromClient, finStep ? TCP_FIN | TCP_ACK : TCP_ACK, TcpOptions.Timestamps, 0, nowNs);
    if (finStep) {
      if (fromClient) c.clientNext = (c.clientNext + 1) >>> 0;
      else c.serverNext = (c.serverNext + 1) >>> 0;
    }
    return this.delayBefore(c, this.nextTcpSenderIsClient(c, s + 1), 0);
  }

  private closeStepByInitiator(close: Close, step: number): boolean {
    // Fin3: I FIN, O FIN, I ACK.  Fin4: I FIN, O ACK, O FIN, I ACK.  Reset: I RST.
    if (close === Close.Fin3) return step !== 1;
    if (close === Close.Fin4) return step === 0 || step === 3;
    return true;
  }

  /** Whether packet number `s` of a TCP conversation comes from the client (true) or the server. */
  private nextTcpSenderIsClient(c: Conversation, s: number): boolean {
    if (s >= c.budget) return true;
    if (s < c.dataEnd) {
      const action = this.nextDataAction(c);
      if (action === DataAction.ReceiverAcks) return !c.msgFromClient;
      if (action === DataAction.SenderSegment) return c.msgFromClient;
      return action === DataAction.NewExchange;
    }
    return this.closeStepByInitiator(c.close, s - c.dataEnd) === c.closeByClient;
  }

  /**
   * The capture point sits near the clients: a client answers within microseconds, the server only after
   * a round trip; a sender continuing its own burst is spaced by serialization; a new exchange waits.
   */
  private delayBefore(c: Conversation, nextFromClient: boolean, thinkMeanNs: number): number {
    const r = this.random;
    if (nextFromClient && thinkMeanNs > 0 && this.nextIsNewExchange(c)) {
      return c.exchanges === 0 ? r.logUniform(0.02 * MS, 2 * MS) : r.exponential(thinkMeanNs);
    }
    if (nextFromClient === c.lastFromClient) return r.logUniform(10 * US, 150 * US);
    if (nextFromClient) return this.reactionNs();
    return c.rttNs + r.logUniform(20 * US, 500 * US);
  }

  private nextIsNewExchange(c: Conversation): boolean {
    return c.sent + 1 < c.dataEnd && this.nextDataAction(c) === DataAction.NewExchange;
  }

  private reactionNs(): number {
    return this.random.logUniform(20 * US, 300 * US);
  }

  private nextDataAction(c: Conversation): DataAction {
    if (c.unacked >= 2) return DataAction.ReceiverAcks;
    if (c.msgRemaining > 0) return DataAction.SenderSegment;
    if (c.msgFromClient) return DataAction.ServerResponds;
    if (c.unacked > 0) return DataAction.ReceiverAcks;
    return DataAction.NewExchange;
  }

  private stepTcpData(c: Conversation, nowNs: number): void {
    const r = this.random;
    const action = this.nextDataAction(c);
    if (action === DataAction.ReceiverAcks) {
      this.emitTcp(c, !c.msgFromClient, TCP_ACK, TcpOptions.Timestamps, 0, nowNs);
      c.unacked = 0;
      return;
    }
    if (action === DataAction.ServerResponds) {
      c.msgFromClient = false;
      c.msgRemaining = c.serverMessageBytes;
      c.unacked = 0;
    } else if (action === DataAction.NewExchange) {
      c.exchanges++;
      c.msgFromClient = true;
      c.unacked = 0;
      if (c.mode === TcpMode.Web) {
        c.msgRemaining = r.between(200, 1200);
        c.serverMessageBytes = Math.min(2_000_000, 1 + Math.round(r.exponential(20_000)));
      } else if (c.mode === TcpMode.Upload) {
        c.msgRemaining = Math.min(4_000_000, 1 + Math.round(r.exponential(100_000)));
        c.serverMessageBytes = r.between(100, 400);
      } else {
        c.msgRemaining = r.between(1, 100);
        c.serverMessageBytes = r.between(1, 600);
      }
    }
    const fromClient = c.msgFromClient;
    // MSS less the 12 bytes of the timestamps option every segment carries.
    const segmentMost = (fromClient ? c.serverMss : c.clientMss) - 12;
    const length = c.msgRemaining < segmentMost ? c.msgRemaining : segmentMost;
    c.msgRemaining -= length;
    this.emitTcp(
      c,
      fromClient,
      c.msgRemaining === 0 ? TCP_PSH | TCP_ACK : TCP_ACK,
      TcpOptions.Timestamps,
      length,
      nowNs,
    );
    if (fromClient) c.clientNext = (c.clientNext + length) >>> 0;
    else c.serverNext = (c.serverNext + length) >>> 0;
    c.unacked++;
  }

  private stepTcpUnreachable(c: Conversation, nowNs: number): number {
    // Linux doubles the SYN timeout from 1 s; after a few tries the wait stops growing here.
    const attempt = Math.min(c.sent >> 1, 5);
    if ((c.sent & 1) === 0) {
      c.clientNext = c.clientIsn;
      this.emitTcp(c, true, TCP_SYN, TcpOptions.Syn, 0, nowNs);
      c.clientNext = (c.clientIsn + 1) >>> 0;
      this.keepIpPacket(c);
      return c.rttNs * 0.6;
    }
    this.emitIcmpError(c, 1);
    return 1000 * MS * 2 ** attempt - c.rttNs * 0.6;
  }

  private stepDns(c: Conversation): number {
    if ((c.sent & 1) === 0) {
      this.emitDnsQuery(c);
      return c.rttNs;
    }
    this.emitDnsAnswer(c);
    return this.random.exponential(c.intervalNs);
  }

  private stepStream(c: Conversation): number {
    const r = this.random;
    // One packet in ten goes back (receiver reports), the rest carry media from the client.
    if (c.sent % 10 === 9) this.emitUdp(c, false, 60 + (r.uint32() & 31));
    else this.emitUdp(c, true, c.streamPayload);
    return c.intervalNs * (0.9 + 0.2 * r.float());
  }

  private stepClosedPort(c: Conversation): number {
    if ((c.sent & 1) === 0) {
      this.emitUdp(c, true, this.random.between(20, 200));
      this.keepIpPacket(c);
      return c.rttNs;
    }
    this.emitIcmpError(c, 3);
    return c.intervalNs;
  }

  private stepEcho(c: Conversation, nowNs: number): number {
    const request = (c.sent & 1) === 0;
    this.emitEcho(c, request, (c.sent >> 1) + 1, nowNs);
    return request ? c.rttNs : Math.max(US, c.intervalNs - c.rttNs);
  }

  // ---------------------------------------------------------------- packet builders

  /** Ethernet header; returns where the network layer starts. */
  private putEthernet(c: Conversation, fromClient: boolean): number {
    const f = this.frame;
    const clientAt = fromClient ? 6 : 0;
    const gatewayAt = fromClient ? 0 : 6;
    f.writeUInt16BE(0x0200, clientAt);
    f.writeUInt32BE(c.clientMacLow, clientAt + 2);
    f.writeUInt16BE(GATEWAY_MAC_HIGH, gatewayAt);
    f.writeUInt32BE(GATEWAY_MAC_LOW, gatewayAt + 2);
    f.writeUInt16BE(c.ipv6 ? 0x86dd : 0x0800, 12);
    return 14;
  }

  private putIPv4(
    at: number,
    totalLength: number,
    protocol: number,
    src: number,
    dst: number,
    ttl: number,
    id: number,
    tos: number,
    dontFragment: boolean,
  ): void {
    const f = this.frame;
    f[at] = 0x45;
    f[at + 1] = tos;
    f.writeUInt16BE(totalLength, at + 2);
    f.writeUInt16BE(id & 0xffff, at + 4);
    f.writeUInt16BE(dontFragment ? 0x4000 : 0, at + 6);
    f[at + 8] = ttl;
    f[at + 9] = protocol;
    f.writeUInt16BE(0, at + 10);
    f.writeUInt32BE(src, at + 12);
    f.writeUInt32BE(dst, at + 16);
    f.writeUInt16BE(~foldChecksum(sumWords(f, at, at + 20)) & 0xffff, at + 10);
  }

  private putIPv6(
    at: number,
    payloadLength: number,
    nextHeader: number,
    src: Uint8Array,
    dst: Uint8Array,
    hopLimit: number,
    flowLabel: number,
  ): void {
    const f = this.frame;
    f.writeUInt32BE((0x60000000 | flowLabel) >>> 0, at);
    f.writeUInt16BE(payloadLength, at + 4);
    f[at + 6] = nextHeader;
    f[at + 7] = hopLimit;
    f.set(src, at + 8);
    f.set(dst, at + 24);
  }

  /** IP header for a packet of the conversation's endpoints; returns where the transport header starts. */
  private putIp(
    c: Conversation,
    at: number,
    fromClient: boolean,
    protocol: number,
    l4Length: number,
  ): number {
    const ttl = fromClient ? 64 : c.serverInitialTtl - c.hops;
    if (c.ipv6) {
      this.putIPv6(
        at,
        l4Length,
        protocol,
        fromClient ? c.clientV6 : c.serverV6,
        fromClient ? c.serverV6 : c.clientV6,
        ttl,
        c.flowLabel,
      );
      return at + 40;
    }
    const id = fromClient ? c.clientIpId++ : c.serverIpId++;
    const src = fromClient ? c.clientV4 : c.serverV4;
    const dst = fromClient ? c.serverV4 : c.clientV4;
    this.putIPv4(at, 20 + l4Length, protocol, src, dst, ttl, id, 0, protocol === 6);
    return at + 20;
  }

  private finishFrame(length: number): void {
    if (length < 60) this.frame.fill(0, length, 60);
    this.frameLength = length < 60 ? 60 : length;
  }

  private pseudoHeaderSum(c: Conversation, protocol: number, l4Length: number): number {
    return c.addressWordSum + protocol + (l4Length >>> 16) + (l4Length & 0xffff);
  }

  private emitTcp(
    c: Conversation,
    fromClient: boolean,
    flags: number,
    options: TcpOptions,
    payloadLength: number,
    nowNs: number,
  ): void {
    const f = this.frame;
    const optionBytes = options === TcpOptions.Syn ? 20 : options === TcpOptions.Timestamps ? 12 : 0;
    const headerLength = 20 + optionBytes;
    const l4Length = headerLength + payloadLength;
    const l4 = this.putIp(c, this.putEthernet(c, fromClient), fromClient, 6, l4Length);
    const elapsedMs = Math.floor(nowNs / MS);
    const tsVal = ((fromClient ? c.clientTsBase : c.serverTsBase) + elapsedMs) >>> 0;
    const tsEcr = fromClient ? c.serverTsLast : c.clientTsLast;
    f.writeUInt16BE(fromClient ? c.clientPort : c.serverPort, l4);
    f.writeUInt16BE(fromClient ? c.serverPort : c.clientPort, l4 + 2);
    f.writeUInt32BE(fromClient ? c.clientNext : c.serverNext, l4 + 4);
    const acks = (flags & TCP_ACK) !== 0;
    f.writeUInt32BE(acks ? (fromClient ? c.serverNext : c.clientNext) : 0, l4 + 8);
    f[l4 + 12] = (headerLength / 4) << 4;
    f[l4 + 13] = flags;
    let window: number;
    if (flags & TCP_SYN) window = fromClient ? (c.ipv6 ? 64800 : 64240) : c.ipv6 ? 64800 : 65160;
    else if (flags & TCP_RST) window = 0;
    else window = fromClient ? 502 : c.serverWindowScale === 7 ? 509 : 235;
    f.writeUInt16BE(window, l4 + 14);
    f.writeUInt32BE(0, l4 + 16); // checksum, urgent pointer
    let o = l4 + 20;
    if (options === TcpOptions.Syn) {
      f[o] = 2;
      f[o + 1] = 4;
      f.writeUInt16BE(fromClient ? c.clientMss : c.serverMss, o + 2);
      f[o + 4] = 4;
      f[o + 5] = 2;
      o += 6;
    } else if (options === TcpOptions.Timestamps) {
      f[o] = 1;
      f[o + 1] = 1;
      o += 2;
    }
    if (options !== TcpOptions.None) {
      f[o] = 8;
      f[o + 1] = 10;
      f.writeUInt32BE(tsVal, o + 2);
      f.writeUInt32BE(acks || !(flags & TCP_SYN) ? tsEcr : 0, o + 6);
      o += 10;
      if (fromClient) c.clientTsLast = tsVal;
      else c.serverTsLast = tsVal;
    }
    if (options === TcpOptions.Syn) {
      f[o] = 1;
      f[o + 1] = 3;
      f[o + 2] = 3;
      f[o + 3] = fromClient ? c.clientWindowScale : c.serverWindowScale;
      o += 4;
    }
    let sum = this.pseudoHeaderSum(c, 6, l4Length) + sumWords(f, l4, o);
    if (payloadLength > 0) sum += this.copyPayload(o, payloadLength);
    f.writeUInt16BE(~foldChecksum(sum) & 0xffff, l4 + 16);
    c.lastFromClient = fromClient;
    this.finishFrame(o + payloadLength);
  }

  /** Copies pseudo-random payload into the frame at `at` (an even offset from the L4 header); returns its word sum. */
  private copyPayload(at: number, length: number): number {
    const poolAt = (this.random.uint32() % POOL_BYTES) & ~1;
    this.payloadPool.copy(this.frame, at, poolAt, poolAt + length);
    const evenLength = length & ~1;
    let sum = this.payloadPrefix[(poolAt + evenLength) / 2] - this.payloadPrefix[poolAt / 2];
    if (length & 1) sum += this.payloadPool[poolAt + length - 1] << 8;
    return sum;
  }

  private emitUdp(c: Conversation, fromClient: boolean, payloadLength: number): void {
    const f = this.frame;
    const l4Length = 8 + payloadLength;
    const l4 = this.putIp(c, this.putEthernet(c, fromClient), fromClient, 17, l4Length);
    this.putUdpHeader(c, l4, fromClient, l4Length);
    const sum =
      this.pseudoHeaderSum(c, 17, l4Length) +
      sumWords(f, l4, l4 + 8) +
      this.copyPayload(l4 + 8, payloadLength);
    this.putUdpChecksum(l4, sum);
    c.lastFromClient = fromClient;
    this.finishFrame(l4 + l4Length);
  }

  private putUdpHeader(c: Conversation, l4: number, fromClient: boolean, l4Length: number): void {
    const f = this.frame;
    f.writeUInt16BE(fromClient ? c.clientPort : c.serverPort, l4);
    f.writeUInt16BE(fromClient ? c.serverPort : c.clientPort, l4 + 2);
    f.writeUInt16BE(l4Length, l4 + 4);
    f.writeUInt16BE(0, l4 + 6);
  }

  private putUdpChecksum(l4: number, sum: number): void {
    const checksum = ~foldChecksum(sum) & 0xffff;
    this.frame.writeUInt16BE(checksum === 0 ? 0xffff : checksum, l4 + 6);
  }

  private emitDnsQuery(c: Conversation): void {
    const f = this.frame;
    const r = this.random;
    const l4 = c.ipv6 ? 54 : 34;
    const dns = l4 + 8;
    f.writeUInt16BE(r.uint32() & 0xffff, dns);
    f.writeUInt16BE(0x0100, dns + 2); // standard query, recursion desired
    f.writeUInt16BE(1, dns + 4);
    f.writeUInt32BE(0, dns + 6);
    f.writeUInt16BE(0, dns + 10);
    let o = dns + 12;
    const labels = r.between(2, 3);
    for (let label = 0; label < labels; label++) {
      const last = label === labels - 1;
      const length = last ? 3 : r.between(3, 12);
      f[o++] = length;
      for (let i = 0; i < length; i++)
        f[o++] = last ? "comnetorg".charCodeAt(3 * (labels % 3) + i) : 97 + (r.uint32() % 26);
    }
    f[o++] = 0;
    f.writeUInt16BE(c.ipv6 || r.float() < 0.3 ? 28 : 1, o);
    f.writeUInt16BE(1, o + 2);
    o += 4;
    const payloadLength = o - dns;
    this.frame.copy(c.kept, 0, dns, o);
    c.keptLength = payloadLength;
    this.finishDns(c, true, l4, payloadLength);
  }

  private emitDnsAnswer(c: Conversation): void {
    const f = this.frame;
    const l4 = c.ipv6 ? 54 : 34;
    const dns = l4 + 8;
    c.kept.copy(f, dns, 0, c.keptLength);
    f.writeUInt16BE(0x8180, dns + 2); // response, recursion desired and available, no error
    f.writeUInt16BE(1, dns + 6); // one answer
    let o = dns + c.keptLength;
    const type = c.kept.readUInt16BE(c.keptLength - 4);
    f.writeUInt16BE(0xc00c, o); // name: pointer to the question's
    f.writeUInt16BE(type, o + 2);
    f.writeUInt16BE(1, o + 4);
    f.writeUInt32BE(300, o + 6);
    const rdLength = type === 28 ? 16 : 4;
    f.writeUInt16BE(rdLength, o + 10);
    o += 12;
    for (let i = 0; i < rdLength; i++)
      f[o + i] = i === 0 ? (type === 28 ? 0x20 : 93) : this.random.uint32() & 0xff;
    o += rdLength;
    this.finishDns(c, false, l4, o - dns);
  }

  private finishDns(c: Conversation, fromClient: boolean, l4: number, payloadLength: number): void {
    const l4Length = 8 + payloadLength;
    this.putEthernet(c, fromClient);
    this.putIp(c, 14, fromClient, 17, l4Length);
    this.putUdpHeader(c, l4, fromClient, l4Length);
    this.putUdpChecksum(l4, this.pseudoHeaderSum(c, 17, l4Length) + sumWords(this.frame, l4, l4 + l4Length));
    c.lastFromClient = fromClient;
    this.finishFrame(l4 + l4Length);
  }

  private emitEcho(c: Conversation, request: boolean, sequence: number, nowNs: number): void {
    const f = this.frame;
    const icmpLength = 8 + 56;
    const protocol = c.ipv6 ? 58 : 1;
    const l4 = this.putIp(c, this.putEthernet(c, request), request, protocol, icmpLength);
    f[l4] = c.ipv6 ? (request ? 128 : 129) : request ? 8 : 0;
    f[l4 + 1] = 0;
    f.writeUInt16BE(0, l4 + 2);
    f.writeUInt16BE(c.echoId, l4 + 4);
    f.writeUInt16BE(sequence, l4 + 6);
    // As Linux ping: the request's send time (struct timeval, little-endian), then bytes 0x10, 0x11, …
    const sentNs = request ? nowNs : nowNs - c.rttNs;
    const sentSec = this.startSec + Math.floor(sentNs / 1e9);
    f.writeUInt32LE(sentSec, l4 + 8);
    f.writeUInt32LE(0, l4 + 12);
    f.writeUInt32LE(Math.max(0, Math.floor((sentNs % 1e9) / US)), l4 + 16);
    f.writeUInt32LE(0, l4 + 20);
    for (let i = 16; i < 56; i++) f[l4 + 8 + i] = i;
    let sum = sumWords(f, l4, l4 + icmpLength);
    if (c.ipv6) sum += this.pseudoHeaderSum(c, 58, icmpLength);
    f.writeUInt16BE(~foldChecksum(sum) & 0xffff, l4 + 2);
    c.lastFromClient = request;
    this.finishFrame(l4 + icmpLength);
  }

  /** Keeps the IP packet just built (the one an ICMP error will quote). */
  private keepIpPacket(c: Conversation): void {
    const ipLength = c.ipv6 ? 40 + this.frame.readUInt16BE(18) : this.frame.readUInt16BE(16);
    this.frame.copy(c.kept, 0, 14, 14 + ipLength);
    c.keptLength = ipLength;
  }

  /**
   * An ICMP/ICMPv6 destination-unreachable to the client quoting the kept packet as it arrived (TTL less the
   * hops): from the server for port-unreachable (code 3), from the router before it for host-unreachable (1).
   */
  private emitIcmpError(c: Conversation, v4Code: number): void {
    const f = this.frame;
    const quoteMost = c.ipv6 ? 1280 - 48 : 576 - 28;
    const quoted = c.keptLength < quoteMost ? c.keptLength : quoteMost;
    const icmpLength = 8 + quoted;
    this.putEthernet(c, false);
    const fromRouter = v4Code === 1;
    const hopsToSender = fromRouter ? c.hops - 1 : c.hops;
    let l4: number;
    if (c.ipv6) {
      this.putIPv6(
        14,
        icmpLength,
        58,
        fromRouter ? c.routerV6 : c.serverV6,
        c.clientV6,
        64 - hopsToSender,
        0,
      );
      l4 = 54;
    } else {
      const source = fromRouter ? c.routerV4 : c.serverV4;
      this.putIPv4(
        14,
        20 + icmpLength,
        1,
        source,
        c.clientV4,
        64 - hopsToSender,
        c.serverIpId++,
        0xc0,
        false,
      );
      l4 = 34;
    }
    f[l4] = c.ipv6 ? 1 : 3;
    f[l4 + 1] = c.ipv6 ? (v4Code === 3 ? 4 : 3) : v4Code;
    f.writeUInt16BE(0, l4 + 2);
    f.writeUInt32BE(0, l4 + 4);
    const quote = l4 + 8;
    c.kept.copy(f, quote, 0, quoted);
    if (c.ipv6) f[quote + 7] -= hopsToSender;
    else {
      f[quote + 8] -= hopsToSender;
      f.writeUInt16BE(0, quote + 10);
      f.writeUInt16BE(~foldChecksum(sumWords(f, quote, quote + 20)) & 0xffff, quote + 10);
    }
    let sum = sumWords(f, l4, l4 + icmpLength);
    if (c.ipv6) sum += c.errorAddressWordSum + 58 + icmpLength;
    f.writeUInt16BE(~foldChecksum(sum) & 0xffff, l4 + 2);
    c.lastFromClient = false;
    this.finishFrame(l4 + icmpLength);
  }
}

function makeWriter(out: Writable, format: SynthFormat, endStream: boolean): CaptureWriter {
  if (format === "pcapng")
    return new PcapngWriter(out, {
      endStream,
      userApplication: "pcap-conntrack synth",
      interfaces: [{ linkType: 1, name: "synth0" }],
    });
  return new PcapWriter(out, { endStream, nanosecond: format === "pcap-nsec" });
}

/** Writes the whole capture to `out`; ends the stream unless `endStream` is false (stdout). */
export async function writeSyntheticCapture(
  out: Writable,
  options: SynthOptions,
  endStream = true,
): Promise<SynthSummary> {
  const traffic = new SyntheticTraffic(options);
  const writer = makeWriter(out, options.format ?? "pcap", endStream);
  let firstTsSec = -1;
  while (traffic.next()) {
    if (firstTsSec < 0) firstTsSec = traffic.tsSec;
    const wait = writer.writeRecord(traffic.tsSec, traffic.tsNsec, traffic.frame, 0, traffic.frameLength);
    if (wait) await wait;
  }
  await (endStream ? writer.close() : writer.flush());
  const kinds = Object.fromEntries(KIND_NAMES.map((name, k) => [name, traffic.kindCounts[k]])) as Record<
    ConversationKind,
    number
  >;
  return {
    packets: traffic.packetsEmitted,
    conversations: options.conversations,
    ipv6Conversations: traffic.ipv6Conversations,
    kinds,
    fileBytes: writer.bytesWritten,
    firstTsSec,
    lastTsSec: traffic.tsSec,
  };
}

const USAGE =
  "usage: synth --packets N --conversations C [--seed S] [--live L] [--format pcap|pcap-nsec|pcapng] [--out FILE|-]";

function parseArguments(argv: string[]): { options: SynthOptions; out: string } {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    if (!name.startsWith("--") || i + 1 >= argv.length) throw new Error(`bad argument ${name}\n${USAGE}`);
    values.set(name.slice(2), argv[i + 1]);
  }
  const known = new Set(["packets", "conversations", "seed", "live", "format", "out"]);
  for (const name of values.keys())
    if (!known.has(name)) throw new Error(`unknown option --${name}\n${USAGE}`);
  const number = (name: string, fallback?: number): number => {
    const text = values.get(name);
    if (text === undefined) {
      if (fallback === undefined) throw new Error(`--${name} is required\n${USAGE}`);
      return fallback;
    }
    const value = Number(text);
    if (!Number.isSafeInteger(value)) throw new Error(`--${name} ${text} is not a whole number`);
    return value;
  };
  const format = (values.get("format") ?? "pcap") as SynthFormat;
  if (!["pcap", "pcap-nsec", "pcapng"].includes(format))
    throw new Error(`--format ${format} is not known\n${USAGE}`);
  const options: SynthOptions = {
    packets: number("packets"),
    conversations: number("conversations"),
    seed: number("seed", 1),
    format,
  };
  if (values.has("live")) options.live = number("live");
  checkOptions(options);
  return { options, out: values.get("out") ?? "-" };
}

async function main(): Promise<void> {
  let parsed: { options: SynthOptions; out: string };
  try {
    parsed = parseArguments(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`synth: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const toStdout = parsed.out === "-";
  const out = toStdout ? process.stdout : createWriteStream(parsed.out);
  try {
    const summary = await writeSyntheticCapture(out, parsed.options, !toStdout);
    if (!toStdout) process.stderr.write(`synth: ${JSON.stringify(summary)}\n`);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    process.stderr.write(
      code === "EPIPE" ? "synth: output closed early (EPIPE)\n" : `synth: ${(error as Error).message}\n`,
    );
    process.exit(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
