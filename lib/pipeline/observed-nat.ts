/**
 * Observed NAT: the same traffic captured at several points of a NAT device (its inside and outside
 * interfaces as two files, one pcapng with an interface each, or `tcpdump -i any` in SLL2). Every
 * forwarded packet is seen twice, before and after translation. This stage, between the decoder and
 * the engine, pairs the two sightings by what NAT leaves alone and gives the engine each packet once:
 * as it arrived at the device, with the addresses and ports it left with as the observed translation.
 * A new connection's reply tuple is then the inverse of what its first packet left with, which is
 * what the device's kernel recorded, port and ICMP-id rewrites on a clash included.
 *
 * What pairs two sightings (they must come from different vantages, within the window):
 * - IPv4 identification (IPv6: flow label), protocol, and
 * - TCP: flags, window and the timestamp option's values, plus at least one of sequence number,
 *   acknowledgment number and payload (fingerprint and length) equal. nf_nat_ftp rewrites PORT/227
 *   payloads and then shifts the sequence numbers of the later segments of that direction and the
 *   acknowledgments of the other, but never all three of one segment;
 * - UDP: length and payload fingerprint; ICMP queries: type, code, sequence and payload (the id may
 *   be rewritten); ICMP errors: type, code and the quoted packet's protocol and length (NAT rewrites
 *   the quoted header); anything else: length and payload fingerprint.
 * The arrival sighting is the one with the higher TTL (forwarding decrements it), or else the earlier.
 *
 * The engine tracks TCP as the kernel's tracker sees it: sequence numbers as they arrived, but the
 * acknowledgment (and SACK blocks) with the NAT sequence adjustment taken off (`tcp_in_window`
 * subtracts `nf_ct_seq_offset`), which is what the packet carried when it left the device.
 *
 * Packets wait in a bounded ring (their IP bytes in one arena, slots reused: nothing is allocated per
 * packet once the ring has grown) for the window, in arrival order, so the engine still sees them in
 * time order. When the ring is full a packet leaves early (counted in `releasedEarly`).
 */
import type { CaptureRecord } from "../capture/source.js";
import { copyCaptureRecord, emptyCaptureRecord } from "../capture/source.js";
import { Tuple } from "../conntrack/connection.js";
import { fillPacketTuple } from "../report/packet-tuple.js";
import {
  DecodedPacket,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
} from "../decode/packet.js";

export interface ObservedNatOptions {
  /** Most time between two sightings of one packet, ns (default 50 ms). */
  windowNs?: number;
  /** Most packets held at once (default 32768); beyond it the oldest leaves early. */
  maxHeldPackets?: number;
  /** Most IP bytes held at once (default 32 MiB); beyond it the oldest leaves early. */
  maxHeldBytes?: number;
}

export const DEFAULT_NAT_WINDOW_NS = 50e6;

export interface ObservedNatStats {
  /** Packets seen twice: delivered once, their second sighting not at all. */
  pairs: number;
  /** Of those, pairs whose sightings differ in addresses, ports or ICMP id (translated). */
  translatedPairs: number;
  /** Packets delivered with one sighting only (to or from the device itself, or one side missed). */
  single: number;
  /** Packets that left the ring before their window ran out because it was full. */
  releasedEarly: number;
  /** Most packets held at once. */
  maxHeld: number;
}

/** Slot states. */
const WAITING = 0;
/** Paired: delivered with its translation when it reaches the head. */
const PAIRED = 1;
/** A second sighting held before its partner turned out to be the arrival one: dropped at the head. */
const SUPERSEDED = 2;

/** Packets up to this many bytes are copied byte by byte (see copyBytes). */
const SHORT_COPY = 128;
/** Payload bytes a fingerprint reads. */
const FINGERPRINT_BYTES = 64;
const NO_BUFFER = Buffer.alloc(0);

class HeldPacket {
  readonly packet = new DecodedPacket();
  readonly record: CaptureRecord = emptyCaptureRecord();
  readonly translation = new Tuple();
  state = WAITING;
  key = 0;
  fingerprint = 0;
  timeNs = 0;
  byteStart = 0;
  byteLength = 0;
  /** Hash chain links (slot indices), -1 at the ends. */
  next = -1;
  prev = -1;
  inHash = false;
}

/**
 * Pairs the sightings of packets seen at several vantages. `push` every decoded packet in capture
 * order, `advance` with the time of every other record, `flush` at the end. Packets come out through
 * `deliver` (translation null when seen once) and second sightings through `duplicate`, both with
 * objects that are reused: read them inside the call.
 */
export class ObservedNatMatcher {
  readonly stats: ObservedNatStats = {
    pairs: 0,
    translatedPairs: 0,
    single: 0,
    releasedEarly: 0,
    maxHeld: 0,
  };
  readonly windowNs: number;
  private readonly maxHeld: number;
  private readonly maxBytes: number;
  /** Held packets by slot index; a slot is made only when none is free (as many as were ever held at once). */
  private readonly slots: HeldPacket[] = [];
  private readonly freeSlots: Int32Array;
  private freeCount = 0;
  /** Slot indices in arrival order: a ring of `count` from `head`. */
  private readonly order: Int32Array;
  private head = 0;
  private count = 0;
  private readonly buckets: Int32Array;
  private readonly bucketMask: number;
  private arena: Buffer;
  /** Next free arena byte, and whether the live bytes wrapped past the arena's end. */
  private arenaTail = 0;
  private wrapped = false;
  private epochSec = -1;
  /** Capture time of the record at hand, ns since `epochSec`. */
  private nowNs = 0;
  /** A held departure sighting's fields, kept while its slot may be reused. */
  private readonly departure = new DecodedPacket();
  private readonly arrivalTuple = new Tuple();

  constructor(
    options: ObservedNatOptions,
    private readonly deliver: (
      packet: DecodedPacket,
      translation: Tuple | null,
      record: CaptureRecord,
    ) => void,
    private readonly duplicate: (packet: DecodedPacket, record: CaptureRecord) => void,
  ) {
    const windowNs = options.windowNs ?? DEFAULT_NAT_WINDOW_NS;
    if (!(Number.isFinite(windowNs) && windowNs >= 0))
      throw new Error(`observed NAT: bad window ${windowNs}`);
    this.windowNs = windowNs;
    this.maxHeld = Math.max(1, Math.floor(options.maxHeldPackets ?? 32768));
    this.freeSlots = new Int32Array(this.maxHeld);
    this.order = new Int32Array(this.maxHeld);
    this.maxBytes = Math.max(65536 + 16, Math.floor(options.maxHeldBytes ?? 32 * 1024 * 1024));
    let buckets = 16;
    while (buckets < this.maxHeld * 2) buckets *= 2;
    this.buckets = new Int32Array(buckets).fill(-1);
    this.bucketMask = buckets - 1;
    this.arena = Buffer.allocUnsafe(Math.min(this.maxBytes, 1024 * 1024));
  }

  get held(): number {
    return this.count;
  }

  /** Releases what can no longer be paired by capture time `tsSec.tsNsec`. */
  advance(tsSec: number, tsNsec: number): void {
    if (this.epochSec < 0) this.epochSec = tsSec;
    this.nowNs = (tsSec - this.epochSec) * 1e9 + tsNsec;
    this.releaseUntil();
  }

  /** One decoded packet (the decoder's, read now and copied if it must wait). */
  push(packet: DecodedPacket, record: CaptureRecord): void {
    if (this.epochSec < 0) this.epochSec = packet.tsSec;
    // Times stay in fields: a double passed to or returned from a call may be boxed (allocated).
    this.nowNs = (packet.tsSec - this.epochSec) * 1e9 + packet.tsNsec;
    this.releaseUntil();
    if (!forwardable(packet)) {
      // Link-local and multicast traffic stays on its link: one sighting, however alike another is.
      this.store(packet, record, 0, 0);
      return;
    }
    const fingerprint = payloadFingerprint(packet);
    const key = pairingKey(packet, fingerprint);
    const partner = this.findPartner(packet, key, fingerprint);
    if (partner !== null) {
      this.stats.pairs++;
      this.unhash(partner);
      if (packet.ttl > partner.packet.ttl) {
        // The held sighting is the later one (capture clocks disagree): it goes, this one waits.
        partner.state = SUPERSEDED;
        this.duplicate(partner.packet, partner.record);
        const departure = this.departure;
        copyDecodedPacket(departure, partner.packet, partner.packet.buf, 0);
        this.pairWith(this.store(packet, record, key, fingerprint), departure);
      } else {
        this.pairWith(partner, packet);
        this.duplicate(packet, record);
      }
      this.releaseUntil();
      return;
    }
    this.store(packet, record, key, fingerprint);
    this.hashNewest();
  }

  /** End of input: everything held goes out, in order. */
  flush(): void {
    while (this.count > 0) this.releaseHead();
  }

  // ------------------------------------------------------------------ pairing

  private findPartner(packet: DecodedPacket, key: number, fingerprint: number): HeldPacket | null {
    let best: HeldPacket | null = null;
    let bestScore = 0;
    for (let index = this.buckets[key & this.bucketMask]; index >= 0;) {
      const held = this.slots[index];
      index = held.next;
      if (held.key !== key || this.nowNs - held.timeNs > this.windowNs) continue;
      const other = held.packet;
      if (sameVantage(other, packet)) continue;
      const score = pairScore(other, held.fingerprint, packet, fingerprint);
      // Ties go to the most recent sighting (chains hold the newest first).
      if (score > bestScore) {
        best = held;
        bestScore = score;
      }
    }
    return best;
  }

  /** `arrival` was seen again as `departure`: it goes out with the departure's tuple as its NAT. */
  private pairWith(arrival: HeldPacket, departure: DecodedPacket): void {
    arrival.state = PAIRED;
    const translation = arrival.translation;
    fillPacketTuple(departure, translation);
    const packet = arrival.packet;
    if (packet.protocol === IPPROTO_TCP && departure.protocol === IPPROTO_TCP) {
      // The acknowledgment as the tracker compares it: with the sequence adjustment taken off.
      packet.tcpAck = departure.tcpAck;
      if (departure.tcpSackCount === packet.tcpSackCount)
        copyPrefix(packet.tcpSackBlocks, departure.tcpSackBlocks, 2 * departure.tcpSackCount);
    }
    fillPacketTuple(packet, this.arrivalTuple);
    if (!translation.equals(this.arrivalTuple)) this.stats.translatedPairs++;
  }

  // ------------------------------------------------------------------ the ring

  private store(packet: DecodedPacket, record: CaptureRecord, key: number, fingerprint: number): HeldPacket {
    const length = packet.capturedEnd - packet.l3Offset;
    if (this.count === this.maxHeld) {
      this.stats.releasedEarly++;
      this.releaseHead();
    }
    let start = this.allocate(length);
    while (start < 0) {
      if (!this.grow(length)) {
        this.stats.releasedEarly++;
        this.releaseHead();
      }
      start = this.allocate(length);
    }
    let index: number;
    if (this.freeCount > 0) {
      index = this.freeSlots[--this.freeCount];
    } else {
      index = this.slots.length;
      this.slots.push(new HeldPacket());
    }
    const held = this.slots[index];
    this.order[(this.head + this.count) % this.maxHeld] = index;
    this.count++;
    if (this.count > this.stats.maxHeld) this.stats.maxHeld = this.count;
    copyBytes(packet.buf, packet.l3Offset, this.arena, start, length);
    copyDecodedPacket(held.packet, packet, this.arena, start - packet.l3Offset);
    copyRecordFields(held.record, record);
    held.state = WAITING;
    held.key = key;
    held.fingerprint = fingerprint;
    held.timeNs = this.nowNs;
    held.byteStart = start;
    held.byteLength = length;
    return held;
  }

  /** Releases what can no longer be paired at `nowNs`. */
  private releaseUntil(): void {
    while (this.count > 0) {
      const held = this.slots[this.order[this.head]];
      if (held.state === WAITING && this.nowNs - held.timeNs <= this.windowNs) return;
      this.releaseHead();
    }
  }

  private releaseHead(): void {
    const index = this.order[this.head];
    const held = this.slots[index];
    this.unhash(held);
    this.freeSlots[this.freeCount++] = index;
    this.head = this.head + 1 === this.maxHeld ? 0 : this.head + 1;
    this.count--;
    if (this.count === 0) {
      this.arenaTail = 0;
      this.wrapped = false;
    } else if (this.slots[this.order[this.head]].byteStart < held.byteStart) {
      this.wrapped = false;
    }
    if (held.state === SUPERSEDED) return;
    if (held.state === PAIRED) {
      this.deliver(held.packet, held.translation, held.record);
    } else {
      this.stats.single++;
      this.deliver(held.packet, null, held.record);
    }
  }

  /** A place for `length` bytes after the live ones, or -1. */
  private allocate(length: number): number {
    const capacity = this.arena.length;
    const liveStart = this.count === 0 ? 0 : this.slots[this.order[this.head]].byteStart;
    if (this.count === 0) {
      this.arenaTail = 0;
      this.wrapped = false;
    }
    const tail = this.arenaTail;
    if (!this.wrapped) {
      if (capacity - tail >= length) {
        this.arenaTail = tail + length;
        return tail;
      }
      if (this.count > 0 && liveStart >= length) {
        this.wrapped = true;
        this.arenaTail = length;
        return 0;
      }
      return -1;
    }
    if (liveStart - tail >= length) {
      this.arenaTail = tail + length;
      return tail;
    }
    return -1;
  }

  /** A larger arena, the live bytes moved to its start in ring order; false at the size bound. */
  private grow(length: number): boolean {
    const capacity = this.arena.length;
    if (capacity >= this.maxBytes) return false;
    let size = capacity * 2;
    while (size < capacity + length) size *= 2;
    const arena = Buffer.allocUnsafe(Math.min(size, this.maxBytes));
    let at = 0;
    for (let i = 0; i < this.count; i++) {
      const held = this.slots[this.order[(this.head + i) % this.maxHeld]];
      this.arena.copy(arena, at, held.byteStart, held.byteStart + held.byteLength);
      rebase(held.packet, arena, at - held.byteStart);
      held.byteStart = at;
      at += held.byteLength;
    }
    this.arena = arena;
    this.arenaTail = at;
    this.wrapped = false;
    return true;
  }

  /** Puts the newest held packet in the hash chains. */
  private hashNewest(): void {
    const index = this.order[(this.head + this.count - 1) % this.maxHeld];
    const held = this.slots[index];
    const bucket = held.key & this.bucketMask;
    const first = this.buckets[bucket];
    held.prev = -1;
    held.next = first;
    if (first >= 0) this.slots[first].prev = index;
    this.buckets[bucket] = index;
    held.inHash = true;
  }

  private unhash(held: HeldPacket): void {
    if (!held.inHash) return;
    held.inHash = false;
    if (held.prev >= 0) this.slots[held.prev].next = held.next;
    else this.buckets[held.key & this.bucketMask] = held.next;
    if (held.next >= 0) this.slots[held.next].prev = held.prev;
    held.next = held.prev = -1;
  }
}

// -------------------------------------------------------------------- what NAT leaves alone

function mix(h: number, value: number): number {
  h = Math.imul(h ^ (value | 0), 0x01000193);
  return (h ^ (h >>> 15)) | 0;
}

/** FNV-1a over the first payload bytes, with the payload length. */
export function payloadFingerprint(packet: DecodedPacket): number {
  const buf = packet.buf;
  const start = packet.payloadOffset;
  const end =
    start + (packet.payloadCaptured < FINGERPRINT_BYTES ? packet.payloadCaptured : FINGERPRINT_BYTES);
  let h = 0x811c9dc5 ^ packet.payloadLength;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i], 0x01000193);
  return h | 0;
}

function isIcmpError(packet: DecodedPacket): boolean {
  const type = packet.icmpType;
  return packet.protocol === IPPROTO_ICMP
    ? type === 3 || type === 4 || type === 5 || type === 11 || type === 12
    : type < 128;
}

/** The hash two sightings of one packet share (the fields every pairing rule requires equal). */
export function pairingKey(packet: DecodedPacket, fingerprint: number): number {
  let h = mix(0x811c9dc5, (packet.ipVersion << 8) | packet.protocol);
  h = mix(h, packet.ipVersion === 4 ? packet.ipId : packet.flowLabel);
  switch (packet.protocol) {
    case IPPROTO_TCP:
      h = mix(h, (packet.tcpFlags << 16) | packet.tcpWindow);
      if (packet.tcpHasTimestamp) h = mix(mix(h, packet.tcpTsVal), packet.tcpTsEcr);
      return h;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      h = mix(h, (packet.icmpType << 8) | packet.icmpCode);
      if (isIcmpError(packet)) return mix(h, (packet.embedded.protocol << 16) | packet.embedded.totalLength);
      return mix(mix(h, packet.icmpSeq), fingerprint);
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
      return mix(mix(h, packet.udpLength), fingerprint);
    default:
      return mix(mix(h, packet.l4Length), fingerprint);
  }
}

/**
 * Whether a router could forward (and so NAT) the packet: not link-local, multicast or broadcast,
 * with a TTL (hop limit) left to decrement.
 */
function forwardable(packet: DecodedPacket): boolean {
  if (packet.ttl <= 1) return false;
  if (packet.ipVersion === 4) {
    const src = packet.srcV4 >>> 0;
    const dst = packet.dstV4 >>> 0;
    if (dst >>> 28 === 0xe || dst === 0xffffffff) return false;
    return src >>> 16 !== 0xa9fe && dst >>> 16 !== 0xa9fe;
  }
  if (packet.dst[0] === 0xff) return false;
  return !isLinkLocal6(packet.src) && !isLinkLocal6(packet.dst);
}

function isLinkLocal6(address: Uint8Array): boolean {
  return address[0] === 0xfe && (address[1] & 0xc0) === 0x80;
}

function sameVantage(a: DecodedPacket, b: DecodedPacket): boolean {
  return (
    a.inputIndex === b.inputIndex &&
    a.interfaceId === b.interfaceId &&
    a.sllIfIndex === b.sllIfIndex &&
    (a.sllPacketType === 4) === (b.sllPacketType === 4)
  );
}

/**
 * How well `b` pairs with the held `a` (same key): 0 not at all; more for more fields equal, so that
 * the best of several candidates wins.
 */
function pairScore(a: DecodedPacket, aFingerprint: number, b: DecodedPacket, bFingerprint: number): number {
  if (a.ipVersion !== b.ipVersion || a.protocol !== b.protocol) return 0;
  if (a.ipVersion === 4 ? a.ipId !== b.ipId : a.flowLabel !== b.flowLabel) return 0;
  // Forwarding never raises the TTL; a pair that differs by more than a few hops is two packets.
  const hops = a.ttl > b.ttl ? a.ttl - b.ttl : b.ttl - a.ttl;
  if (hops > 2) return 0;
  let score = 0;
  switch (a.protocol) {
    case IPPROTO_TCP: {
      if (a.tcpFlags !== b.tcpFlags || a.tcpWindow !== b.tcpWindow) return 0;
      if (a.tcpHasTimestamp !== b.tcpHasTimestamp) return 0;
      if (a.tcpHasTimestamp && (a.tcpTsVal !== b.tcpTsVal || a.tcpTsEcr !== b.tcpTsEcr)) return 0;
      if (a.tcpSeq === b.tcpSeq) score += 2;
      if (a.tcpAck === b.tcpAck) score += 2;
      if (aFingerprint === bFingerprint && a.payloadLength === b.payloadLength) score += 2;
      if (score === 0) return 0;
      break;
    }
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      if (a.icmpType !== b.icmpType || a.icmpCode !== b.icmpCode) return 0;
      if (isIcmpError(a)) {
        if (a.embedded.protocol !== b.embedded.protocol || a.embedded.totalLength !== b.embedded.totalLength)
          return 0;
      } else if (a.icmpSeq !== b.icmpSeq || aFingerprint !== bFingerprint) {
        return 0;
      }
      score = 2;
      break;
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
      if (a.udpLength !== b.udpLength || aFingerprint !== bFingerprint) return 0;
      score = 2;
      break;
    default:
      if (a.l4Length !== b.l4Length || aFingerprint !== bFingerprint) return 0;
      score = 2;
  }
  // NAT rewrites one end of a packet: a shared end makes a candidate likelier.
  if (sameSource(a, b) || sameDestination(a, b)) score++;
  return score;
}

function sameSource(a: DecodedPacket, b: DecodedPacket): boolean {
  if (a.srcPort !== b.srcPort) return false;
  if (a.ipVersion === 4) return a.srcV4 === b.srcV4;
  for (let i = 0; i < 16; i++) if (a.src[i] !== b.src[i]) return false;
  return true;
}

function sameDestination(a: DecodedPacket, b: DecodedPacket): boolean {
  if (a.dstPort !== b.dstPort) return false;
  if (a.ipVersion === 4) return a.dstV4 === b.dstV4;
  for (let i = 0; i < 16; i++) if (a.dst[i] !== b.dst[i]) return false;
  return true;
}

// -------------------------------------------------------------------- copies

/**
 * Copies `length` bytes. Short packets (acks, most of a flow's) by hand: `Buffer.copy` makes a view
 * of the source range first, an allocation per call that is only worth it for longer ones.
 */
function copyBytes(from: Buffer, fromStart: number, to: Buffer, toStart: number, length: number): void {
  if (length > SHORT_COPY) {
    from.copy(to, toStart, fromStart, fromStart + length);
    return;
  }
  for (let i = 0; i < length; i++) to[toStart + i] = from[fromStart + i];
}

function copyPrefix(to: Uint16Array | Uint32Array, from: Uint16Array | Uint32Array, count: number): void {
  const end = count < to.length ? count : to.length;
  for (let i = 0; i < end; i++) to[i] = from[i];
}

/** An IPv4 address is 4 bytes and 12 zeros (as the decoder leaves it); others are 16. */
function copyAddress(to: Uint8Array, from: Uint8Array, ipVersion: number): void {
  if (ipVersion === 4) {
    to[0] = from[0];
    to[1] = from[1];
    to[2] = from[2];
    to[3] = from[3];
    for (let i = 4; i < 16; i++) to[i] = 0;
  } else {
    for (let i = 0; i < 16; i++) to[i] = from[i];
  }
}

/** Moves a held packet's buffer offsets by `delta` into `buf`. */
function rebase(packet: DecodedPacket, buf: Buffer, delta: number): void {
  packet.buf = buf;
  packet.l3Offset += delta;
  packet.l4Offset += delta;
  packet.payloadOffset += delta;
  packet.capturedEnd += delta;
}

function copyRecordFields(to: CaptureRecord, from: CaptureRecord): void {
  copyCaptureRecord(to, from);
  // The link-layer bytes are not kept: a held packet's record names where it came from.
  to.data = NO_BUFFER;
  to.offset = 0;
  to.caplen = 0;
}

/**
 * Copies every field of `from` into `to`, whose network-layer bytes are in `buf` at `delta` from
 * where `from`'s are in its buffer (offsets move by `delta`).
 */
export function copyDecodedPacket(to: DecodedPacket, from: DecodedPacket, buf: Buffer, delta: number): void {
  to.recordNumber = from.recordNumber;
  to.inputIndex = from.inputIndex;
  to.interfaceId = from.interfaceId;
  to.tsSec = from.tsSec;
  to.tsNsec = from.tsNsec;
  to.linkType = from.linkType;
  to.etherType = from.etherType;
  to.vlanCount = from.vlanCount;
  // Small arrays by hand, and only their used part (TypedArray.set costs more than the copy).
  copyPrefix(to.vlanIds, from.vlanIds, from.vlanCount);
  to.sllPacketType = from.sllPacketType;
  to.sllIfIndex = from.sllIfIndex;
  to.buf = buf;
  to.ipVersion = from.ipVersion;
  to.l3Offset = from.l3Offset + delta;
  to.ipLength = from.ipLength;
  to.ipHeaderLength = from.ipHeaderLength;
  copyAddress(to.src, from.src, from.ipVersion);
  copyAddress(to.dst, from.dst, from.ipVersion);
  to.srcV4 = from.srcV4;
  to.dstV4 = from.dstV4;
  to.protocol = from.protocol;
  to.ttl = from.ttl;
  to.ipId = from.ipId;
  to.flowLabel = from.flowLabel;
  to.tos = from.tos;
  to.dontFragment = from.dontFragment;
  to.reassembled = from.reassembled;
  to.fragmentOffset = from.fragmentOffset;
  to.moreFragments = from.moreFragments;
  to.capturedEnd = from.capturedEnd + delta;
  to.ipChecksum = from.ipChecksum;
  to.ipChecksumValid = from.ipChecksumValid;
  to.l4Offset = from.l4Offset + delta;
  to.l4Length = from.l4Length;
  to.hasPorts = from.hasPorts;
  to.srcPort = from.srcPort;
  to.dstPort = from.dstPort;
  to.l4Checksum = from.l4Checksum;
  to.payloadOffset = from.payloadOffset + delta;
  to.payloadCaptured = from.payloadCaptured;
  to.payloadLength = from.payloadLength;
  to.tcpSeq = from.tcpSeq;
  to.tcpAck = from.tcpAck;
  to.tcpFlags = from.tcpFlags;
  to.tcpWindow = from.tcpWindow;
  to.tcpDataOffset = from.tcpDataOffset;
  to.tcpUrgent = from.tcpUrgent;
  to.tcpMss = from.tcpMss;
  to.tcpWindowScale = from.tcpWindowScale;
  to.tcpSackPermitted = from.tcpSackPermitted;
  to.tcpSackCount = from.tcpSackCount;
  copyPrefix(to.tcpSackBlocks, from.tcpSackBlocks, 2 * from.tcpSackCount);
  to.tcpHasTimestamp = from.tcpHasTimestamp;
  to.tcpOptionsComplete = from.tcpOptionsComplete;
  to.tcpTsVal = from.tcpTsVal;
  to.tcpTsEcr = from.tcpTsEcr;
  to.udpLength = from.udpLength;
  to.icmpType = from.icmpType;
  to.icmpCode = from.icmpCode;
  to.icmpId = from.icmpId;
  to.icmpSeq = from.icmpSeq;
  const a = to.embedded;
  const b = from.embedded;
  a.present = b.present;
  a.ipVersion = b.ipVersion;
  if (b.present) {
    copyAddress(a.src, b.src, b.ipVersion);
    copyAddress(a.dst, b.dst, b.ipVersion);
  }
  a.srcV4 = b.srcV4;
  a.dstV4 = b.dstV4;
  a.protocol = b.protocol;
  a.hasPorts = b.hasPorts;
  a.srcPort = b.srcPort;
  a.dstPort = b.dstPort;
  a.icmpType = b.icmpType;
  a.icmpCode = b.icmpCode;
  a.icmpId = b.icmpId;
  a.totalLength = b.totalLength;
  to.greVersion = from.greVersion;
  to.greProtocol = from.greProtocol;
  to.greHasKey = from.greHasKey;
  to.greKey = from.greKey;
  to.reason = from.reason;
}
