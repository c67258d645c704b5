/**
 * IP fragment reassembly as Linux does it before conntrack sees a packet (nf_defrag_ipv4 →
 * ip_defrag, nf_defrag_ipv6 → nf_ct_frag6_gather), so that conntrack's view of fragmented traffic
 * matches the kernel's:
 *
 * - Queues are keyed by (src, dst, protocol, id) for IPv4 and (src, dst, id) for IPv6 (the kernel
 *   adds the netns, defrag user and interface, which a capture does not distinguish).
 * - A queue expires `timeout` seconds after its first fragment (ipfrag_time 30 s; nf_conntrack_frag6_timeout
 *   60 s), measured in capture time: the timer is set once when the queue is created.
 * - inet_frag_queue_insert(): fragments are kept as "runs" of adjacent fragments. A fragment that lies
 *   entirely inside one run is a duplicate and is dropped alone; any other overlap drops the whole
 *   datagram (RFC 5722).
 * - ip_frag_queue(): a last fragment ending before data already held, or a second last fragment with a
 *   different end, or a fragment reaching past a known end, drops the datagram (IPv6: just the fragment);
 *   non-last fragments are cut to a multiple of 8 bytes (IPv6: such a fragment is refused and its
 *   queue dropped); a fragment with no data drops the datagram (IPv6: just the fragment).
 * - Memory: while the bytes held exceed the limit (ipfrag_high_thresh, 4 MiB) every new fragment is
 *   refused, as inet_frag_find() does; kernels since 4.17 evict nothing, queues leave by timing out.
 *   Bytes are charged per fragment as its IP length plus an estimate of the sk_buff overhead.
 * - The datagram is rebuilt from the first fragment's header (IPv4: total length, DF and checksum
 *   rewritten as ip_frag_reasm does; IPv6: fragment header removed, payload length rewritten) and is
 *   refused when longer than 65535 bytes, or when its fragments mix ECN-capable and non-ECT marks.
 *
 * Not modelled: ipfrag_max_dist (the per-source reordering bound of IPv4) and the interface part of
 * the key. Per-packet work allocates nothing; a queue allocates its own small arrays and byte store.
 */
import { computeIpv4HeaderChecksum } from "./checksum.js";
import type { Ipv6FragmentHeader } from "./ipv6.js";
import type { DecodedPacket } from "./packet.js";

export const DEFAULT_IPV4_FRAGMENT_TIMEOUT = 30;
export const DEFAULT_IPV6_FRAGMENT_TIMEOUT = 60;
export const DEFAULT_FRAGMENT_MEMORY_LIMIT = 4 * 1024 * 1024;
/** Rough sk_buff + skb_shared_info overhead the kernel charges per fragment on top of its bytes. */
export const FRAGMENT_OVERHEAD_BYTES = 576;
/** Rough size of the kernel's queue structure, charged once per queue. */
export const QUEUE_OVERHEAD_BYTES = 256;
const MAX_DATAGRAM = 0xffff;

/** What became of a fragment given to the defragmenter. */
export const enum FragmentOutcome {
  /** Kept, dropped as duplicate, or dropped with its datagram: the fragment goes no further. */
  Consumed = 0,
  /** The fragment completed its datagram: `output` holds it. */
  Completed = 1,
  /** The fragment is malformed in itself; packet.reason says how. */
  Malformed = 2,
}

export interface DefragmenterOptions {
  ipv4TimeoutSeconds?: number;
  ipv6TimeoutSeconds?: number;
  memoryLimitBytes?: number;
}

export class DefragmenterStats {
  /** Fragments given to the defragmenter. */
  fragments = 0;
  /** Fragments taken into a queue. */
  queued = 0;
  /** Fragments dropped because a run already held all their bytes. */
  duplicates = 0;
  /** Fragments that partly overlapped held data: each dropped its datagram. */
  overlaps = 0;
  /** Fragments contradicting the datagram's known end (IPv4: the datagram was dropped too). */
  inconsistentEnds = 0;
  /** Fragments refused because the bytes held were over the memory limit. */
  refusedForMemory = 0;
  /** Fragments malformed in themselves (no data, bad length …). */
  malformed = 0;
  datagramsReassembled = 0;
  datagramsTimedOut = 0;
  /** Datagrams that would have exceeded 65535 bytes. */
  datagramsTooLarge = 0;
  /** Datagrams refused for mixing ECN-capable and non-ECT fragments. */
  datagramsEcnMismatch = 0;
  /** Queues dropped by an overlap, an inconsistent end or a data-less IPv4 fragment. */
  datagramsDropped = 0;
  /** Queues currently open, and the bytes they are charged. */
  queues = 0;
  bytesHeld = 0;
  peakBytesHeld = 0;

  toJSON(): Record<string, number> {
    return { ...(this as unknown as Record<string, number>) };
  }
}

const enum QueueFlag {
  FirstIn = 1,
  LastIn = 2,
}

class FragmentQueue {
  ipVersion = 4;
  hash = 0;
  srcV4 = 0;
  dstV4 = 0;
  readonly src = new Uint8Array(16);
  readonly dst = new Uint8Array(16);
  protocol = 0;
  id = 0;
  deadline = 0;
  flags = 0;
  /** Datagram data length as known so far (the kernel's q.len) and bytes held (q.meat). */
  length = 0;
  meat = 0;
  /** Disjoint runs of adjacent fragments, sorted by start: [start, end) pairs. */
  readonly runStarts: number[] = [];
  readonly runEnds: number[] = [];
  /** Fragments held: their data offset, length, captured length and position in `store`. */
  readonly fragmentOffsets: number[] = [];
  readonly fragmentLengths: number[] = [];
  readonly fragmentCaptured: number[] = [];
  readonly storePositions: number[] = [];
  store: Buffer = Buffer.alloc(0);
  storeUsed = 0;
  /** IPv4: the first fragment's header. IPv6: the unfragmentable part (header + extension headers). */
  header: Buffer | null = null;
  /** IPv6: where in `header` the next-header byte naming the fragment header is, and what it must become. */
  nextHeaderFieldOffset = 0;
  nextHeader = 0;
  ecn = 0;
  maxSize = 0;
  maxDfSize = 0;
  charge = QUEUE_OVERHEAD_BYTES;
  older: FragmentQueue | null = null;
  newer: FragmentQueue | null = null;
  nextInBucket: FragmentQueue | null = null;
}

const BUCKET_COUNT = 4096;

const enum Insert {
  Ok = 0,
  Duplicate = 1,
  Overlap = 2,
}

export class Defragmenter {
  readonly stats = new DefragmenterStats();
  /** The last completed datagram, from index 0; valid until the next completion. */
  output: Buffer = Buffer.alloc(0);
  outputLength = 0;
  /** End of the captured bytes in `output` (fragments cut by the snaplen leave zeros after it). */
  outputCapturedEnd = 0;

  private readonly ipv4Timeout: number;
  private readonly ipv6Timeout: number;
  private readonly memoryLimit: number;
  private readonly buckets: (FragmentQueue | null)[] = new Array<FragmentQueue | null>(BUCKET_COUNT).fill(
    null,
  );
  private oldest: FragmentQueue | null = null;
  private newest: FragmentQueue | null = null;

  constructor(options: DefragmenterOptions = {}) {
    this.ipv4Timeout = options.ipv4TimeoutSeconds ?? DEFAULT_IPV4_FRAGMENT_TIMEOUT;
    this.ipv6Timeout = options.ipv6TimeoutSeconds ?? DEFAULT_IPV6_FRAGMENT_TIMEOUT;
    this.memoryLimit = options.memoryLimitBytes ?? DEFAULT_FRAGMENT_MEMORY_LIMIT;
  }

  /** Open queues (cheap check so callers only compute the time when there is something to expire). */
  get queueCount(): number {
    return this.stats.queues;
  }

  /** Drops the queues whose timer has run out by capture time `now` (seconds). */
  expire(now: number): void {
    let queue = this.oldest;
    while (queue !== null && queue.deadline <= now) {
      const next = queue.newer;
      this.stats.datagramsTimedOut++;
      this.kill(queue);
      queue = next;
    }
  }

  /** Drops every open queue, counting them as timed out (end of input). */
  expireAll(): void {
    while (this.oldest !== null) {
      this.stats.datagramsTimedOut++;
      this.kill(this.oldest);
    }
  }

  /** Takes the IPv4 fragment the decoder just put in `packet` (bytes in `buf`). */
  addIpv4(packet: DecodedPacket, buf: Buffer, now: number): FragmentOutcome {
    const stats = this.stats;
    stats.fragments++;
    if (stats.bytesHeld > this.memoryLimit) {
      stats.refusedForMemory++;
      return FragmentOutcome.Consumed;
    }
    const headerLength = packet.ipHeaderLength;
    const dataStart = packet.l3Offset + headerLength;
    const wireLength = packet.ipLength - headerLength;
    const offset = packet.fragmentOffset;
    let end = offset + wireLength;

    const hash = hashIpv4(packet.srcV4, packet.dstV4, packet.protocol, packet.ipId);
    let queue = this.findIpv4(hash, packet);
    if (queue === null) {
      queue = this.create(4, hash, now + this.ipv4Timeout);
      queue.srcV4 = packet.srcV4;
      queue.dstV4 = packet.dstV4;
      queue.protocol = packet.protocol;
      queue.id = packet.ipId;
    }

    if (!packet.moreFragments) {
      if (end < queue.length || ((queue.flags & QueueFlag.LastIn) !== 0 && end !== queue.length)) {
        stats.inconsistentEnds++;
        this.drop(queue);
        return FragmentOutcome.Consumed;
      }
      queue.flags |= QueueFlag.LastIn;
      queue.length = end;
    } else {
      end &= ~7;
      if (end > queue.length) {
        if ((queue.flags & QueueFlag.LastIn) !== 0) {
          stats.inconsistentEnds++;
          this.drop(queue);
          return FragmentOutcome.Consumed;
        }
        queue.length = end;
      }
    }
    if (end === offset) {
      this.drop(queue);
      stats.malformed++;
      packet.reason = "ipv4 fragment holds no data";
      return FragmentOutcome.Malformed;
    }

    const inserted = insertRun(queue, offset, end);
    if (inserted === Insert.Duplicate) {
      stats.duplicates++;
      return FragmentOutcome.Consumed;
    }
    if (inserted === Insert.Overlap) {
      stats.overlaps++;
      this.drop(queue);
      return FragmentOutcome.Consumed;
    }

    this.hold(queue, buf, dataStart, offset, end - offset, packet.capturedEnd, packet.ipLength);
    queue.ecn |= 1 << (packet.tos & 3);
    if (offset === 0) {
      queue.flags |= QueueFlag.FirstIn;
      queue.header = Buffer.allocUnsafe(headerLength);
      buf.copy(queue.header, 0, packet.l3Offset, dataStart);
    }
    const fragmentSize = end - offset + headerLength;
    if (fragmentSize > queue.maxSize) queue.maxSize = fragmentSize;
    if (packet.dontFragment && fragmentSize > queue.maxDfSize) queue.maxDfSize = fragmentSize;

    if (queue.flags !== (QueueFlag.FirstIn | QueueFlag.LastIn) || queue.meat !== queue.length) {
      return FragmentOutcome.Consumed;
    }
    return this.reassembleIpv4(queue);
  }

  /**
   * Takes the IPv6 fragment the decoder just put in `packet`, whose fragment header `fragment`
   * describes. `transportEnd` is where the first fragment's upper-layer header ends (−1 unknown).
   */
  addIpv6(packet: DecodedPacket, buf: Buffer, fragment: Ipv6FragmentHeader, now: number): FragmentOutcome {
    const stats = this.stats;
    stats.fragments++;
    if (stats.bytesHeld > this.memoryLimit) {
      stats.refusedForMemory++;
      return FragmentOutcome.Consumed;
    }
    const dataStart = fragment.offset + 8;
    const offset = packet.fragmentOffset;
    const end = offset + (packet.l3Offset + packet.ipLength - dataStart);
    if (end > MAX_DATAGRAM) {
      stats.malformed++;
      packet.reason = "ipv6 fragment ends beyond 65535 bytes";
      return FragmentOutcome.Malformed;
    }

    const hash = hashIpv6(packet.src, packet.dst, packet.ipId);
    let queue = this.findIpv6(hash, packet);
    if (queue === null) {
      queue = this.create(6, hash, now + this.ipv6Timeout);
      queue.src.set(packet.src);
      queue.dst.set(packet.dst);
      queue.id = packet.ipId;
    }

    if (!packet.moreFragments) {
      if (end < queue.length || ((queue.flags & QueueFlag.LastIn) !== 0 && end !== queue.length)) {
        stats.inconsistentEnds++;
        this.dropIfEmpty(queue);
        return FragmentOutcome.Consumed;
      }
      queue.flags |= QueueFlag.LastIn;
      queue.length = end;
    } else {
      if ((end & 7) !== 0) {
        // RFC 8200 asks for a parameter problem; the kernel drops the queue and lets the packet pass.
        this.drop(queue);
        stats.malformed++;
        packet.reason = "ipv6 fragment length not a multiple of 8";
        return FragmentOutcome.Malformed;
      }
      if (end > queue.length) {
        if ((queue.flags & QueueFlag.LastIn) !== 0) {
          stats.inconsistentEnds++;
          this.dropIfEmpty(queue);
          return FragmentOutcome.Consumed;
        }
        queue.length = end;
      }
    }
    if (end === offset) {
      this.dropIfEmpty(queue);
      stats.malformed++;
      packet.reason = "ipv6 fragment holds no data";
      return FragmentOutcome.Malformed;
    }

    const inserted = insertRun(queue, offset, end);
    if (inserted === Insert.Duplicate) {
      stats.duplicates++;
      return FragmentOutcome.Consumed;
    }
    if (inserted === Insert.Overlap) {
      stats.overlaps++;
      this.drop(queue);
      return FragmentOutcome.Consumed;
    }

    this.hold(queue, buf, dataStart, offset, end - offset, packet.capturedEnd, packet.ipLength);
    queue.ecn |= 1 << (packet.tos & 3);
    if (offset === 0) {
      queue.flags |= QueueFlag.FirstIn;
      const unfragmentable = fragment.offset - packet.l3Offset;
      queue.header = Buffer.allocUnsafe(unfragmentable);
      buf.copy(queue.header, 0, packet.l3Offset, fragment.offset);
      queue.nextHeaderFieldOffset = fragment.nextHeaderFieldOffset - packet.l3Offset;
      queue.nextHeader = fragment.nextHeader;
    }

    if (queue.flags !== (QueueFlag.FirstIn | QueueFlag.LastIn) || queue.meat !== queue.length) {
      return FragmentOutcome.Consumed;
    }
    return this.reassembleIpv6(queue);
  }

  private reassembleIpv4(queue: FragmentQueue): FragmentOutcome {
    const stats = this.stats;
    const header = queue.header as Buffer;
    const headerLength = header.length;
    const total = headerLength + queue.length;
    this.kill(queue);
    if (total > MAX_DATAGRAM) {
      stats.datagramsTooLarge++;
      return FragmentOutcome.Consumed;
    }
    const ecn = reassembledEcn(queue.ecn);
    if (ecn < 0) {
      stats.datagramsEcnMismatch++;
      return FragmentOutcome.Consumed;
    }
    const out = this.outputBuffer();
    header.copy(out, 0, 0, headerLength);
    out[1] |= ecn;
    out[2] = total >> 8;
    out[3] = total & 0xff;
    const dontFragment = queue.maxDfSize === queue.maxSize;
    out[6] = dontFragment ? 0x40 : 0;
    out[7] = 0;
    out[10] = 0;
    out[11] = 0;
    const checksum = computeIpv4HeaderChecksum(out, 0, headerLength);
    out[10] = checksum >> 8;
    out[11] = checksum & 0xff;
    this.placeData(queue, out, headerLength, total);
    stats.datagramsReassembled++;
    return FragmentOutcome.Completed;
  }

  private reassembleIpv6(queue: FragmentQueue): FragmentOutcome {
    const stats = this.stats;
    const header = queue.header as Buffer;
    const headerLength = header.length;
    const payloadLength = headerLength - 40 + queue.length;
    this.kill(queue);
    const ecn = reassembledEcn(queue.ecn);
    if (ecn < 0) {
      stats.datagramsEcnMismatch++;
      return FragmentOutcome.Consumed;
    }
    if (payloadLength > MAX_DATAGRAM) {
      stats.datagramsTooLarge++;
      return FragmentOutcome.Consumed;
    }
    const out = this.outputBuffer();
    header.copy(out, 0, 0, headerLength);
    out[queue.nextHeaderFieldOffset] = queue.nextHeader;
    out[4] = payloadLength >> 8;
    out[5] = payloadLength & 0xff;
    // ECN sits in the low two bits of the traffic class: bits 4-5 of byte 1.
    out[1] |= ecn << 4;
    this.placeData(queue, out, headerLength, 40 + payloadLength);
    stats.datagramsReassembled++;
    return FragmentOutcome.Completed;
  }

  private placeData(queue: FragmentQueue, out: Buffer, dataStart: number, total: number): void {
    let capturedEnd = total;
    const count = queue.fragmentOffsets.length;
    for (let i = 0; i < count; i++) {
      const target = dataStart + queue.fragmentOffsets[i];
      const captured = queue.fragmentCaptured[i];
      const position = queue.storePositions[i];
      queue.store.copy(out, target, position, position + captured);
      if (captured < queue.fragmentLengths[i]) {
        out.fill(0, target + captured, target + queue.fragmentLengths[i]);
        if (target + captured < capturedEnd) capturedEnd = target + captured;
      }
    }
    this.outputLength = total;
    this.outputCapturedEnd = capturedEnd;
  }

  private outputBuffer(): Buffer {
    // One buffer for every datagram: IPv6's 40-byte header plus the largest payload.
    if (this.output.length === 0) this.output = Buffer.alloc(40 + MAX_DATAGRAM);
    return this.output;
  }

  /** Copies a fragment's captured data into the queue's store and charges its memory. */
  private hold(
    queue: FragmentQueue,
    buf: Buffer,
    dataStart: number,
    offset: number,
    length: number,
    capturedEnd: number,
    ipLength: number,
  ): void {
    let captured = capturedEnd - dataStart;
    if (captured > length) captured = length;
    if (captured < 0) captured = 0;
    // Data past 65535 can never be reassembled; its bookkeeping is kept but not its bytes.
    if (offset + length > MAX_DATAGRAM) captured = 0;
    const needed = queue.storeUsed + captured;
    if (needed > queue.store.length) {
      let size = queue.store.length === 0 ? 2048 : queue.store.length * 2;
      while (size < needed) size *= 2;
      const grown = Buffer.allocUnsafe(size);
      queue.store.copy(grown, 0, 0, queue.storeUsed);
      queue.store = grown;
    }
    buf.copy(queue.store, queue.storeUsed, dataStart, dataStart + captured);
    queue.fragmentOffsets.push(offset);
    queue.fragmentLengths.push(length);
    queue.fragmentCaptured.push(captured);
    queue.storePositions.push(queue.storeUsed);
    queue.storeUsed += captured;
    queue.meat += length;
    const charge = ipLength + FRAGMENT_OVERHEAD_BYTES;
    queue.charge += charge;
    this.charge(charge);
    this.stats.queued++;
  }

  private charge(bytes: number): void {
    const stats = this.stats;
    stats.bytesHeld += bytes;
    if (stats.bytesHeld > stats.peakBytesHeld) stats.peakBytesHeld = stats.bytesHeld;
  }

  private findIpv4(hash: number, packet: DecodedPacket): FragmentQueue | null {
    for (let q = this.buckets[hash & (BUCKET_COUNT - 1)]; q !== null; q = q.nextInBucket) {
      if (
        q.hash === hash &&
        q.ipVersion === 4 &&
        q.srcV4 === packet.srcV4 &&
        q.dstV4 === packet.dstV4 &&
        q.protocol === packet.protocol &&
        q.id === packet.ipId
      ) {
        return q;
      }
    }
    return null;
  }

  private findIpv6(hash: number, packet: DecodedPacket): FragmentQueue | null {
    for (let q = this.buckets[hash & (BUCKET_COUNT - 1)]; q !== null; q = q.nextInBucket) {
      if (q.hash === hash && q.ipVersion === 6 && q.id === packet.ipId && sameAddress(q, packet)) return q;
    }
    return null;
  }

  private create(ipVersion: number, hash: number, deadline: number): FragmentQueue {
    const queue = new FragmentQueue();
    queue.ipVersion = ipVersion;
    queue.hash = hash;
    queue.deadline = deadline;
    const bucket = hash & (BUCKET_COUNT - 1);
    queue.nextInBucket = this.buckets[bucket];
    this.buckets[bucket] = queue;
    queue.older = this.newest;
    if (this.newest !== null) this.newest.newer = queue;
    else this.oldest = queue;
    this.newest = queue;
    this.stats.queues++;
    this.charge(queue.charge);
    return queue;
  }

  /** Drops a datagram for an error in its fragments. */
  private drop(queue: FragmentQueue): void {
    if (queue.fragmentOffsets.length > 0) this.stats.datagramsDropped++;
    this.kill(queue);
  }

  /** A refused fragment leaves its queue alone, unless the refusal left it an empty shell just made. */
  private dropIfEmpty(queue: FragmentQueue): void {
    if (queue.fragmentOffsets.length === 0 && queue.flags === 0) this.kill(queue);
  }

  private kill(queue: FragmentQueue): void {
    const bucket = queue.hash & (BUCKET_COUNT - 1);
    let link = this.buckets[bucket];
    if (link === queue) {
      this.buckets[bucket] = queue.nextInBucket;
    } else {
      while (link !== null && link.nextInBucket !== queue) link = link.nextInBucket;
      if (link === null) return;
      link.nextInBucket = queue.nextInBucket;
    }
    if (queue.older !== null) queue.older.newer = queue.newer;
    else this.oldest = queue.newer;
    if (queue.newer !== null) queue.newer.older = queue.older;
    else this.newest = queue.older;
    queue.older = null;
    queue.newer = null;
    queue.nextInBucket = null;
    this.stats.queues--;
    this.stats.bytesHeld -= queue.charge;
  }
}

/**
 * inet_frag_queue_insert(): appending at the tail extends the last run (or starts one after a gap);
 * anything else must fall in a gap between runs, or inside a single run (duplicate).
 */
function insertRun(queue: FragmentQueue, offset: number, end: number): Insert {
  const starts = queue.runStarts;
  const ends = queue.runEnds;
  const last = starts.length - 1;
  if (last < 0) {
    starts.push(offset);
    ends.push(end);
    return Insert.Ok;
  }
  const tailEnd = ends[last];
  if (tailEnd < end) {
    if (offset < tailEnd) return Insert.Overlap;
    if (offset === tailEnd) ends[last] = end;
    else {
      starts.push(offset);
      ends.push(end);
    }
    return Insert.Ok;
  }
  // Binary search for the first run ending after `offset`.
  let low = 0;
  let high = last + 1;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (ends[middle] <= offset) low = middle + 1;
    else high = middle;
  }
  if (low <= last && starts[low] < end) {
    return offset >= starts[low] && end <= ends[low] ? Insert.Duplicate : Insert.Overlap;
  }
  starts.splice(low, 0, offset);
  ends.splice(low, 0, end);
  return Insert.Ok;
}

/** ip_frag_ecn_table: CE wins over ECT; non-ECT mixed with any ECN mark is refused (−1). */
function reassembledEcn(seen: number): number {
  const NOT_ECT = 1;
  const CE = 8;
  if ((seen & NOT_ECT) !== 0) return seen === NOT_ECT ? 0 : -1;
  return (seen & CE) !== 0 ? 3 : 0;
}

function sameAddress(queue: FragmentQueue, packet: DecodedPacket): boolean {
  const a = queue.src;
  const b = queue.dst;
  const s = packet.src;
  const d = packet.dst;
  for (let i = 0; i < 16; i++) if (a[i] !== s[i] || b[i] !== d[i]) return false;
  return true;
}

function mix(h: number, value: number): number {
  h = Math.imul(h ^ value, 0x9e3779b1);
  return h ^ (h >>> 15);
}

function hashIpv4(src: number, dst: number, protocol: number, id: number): number {
  return mix(mix(mix(0x811c9dc5, src), dst), (id << 8) | protocol) >>> 0;
}

function hashIpv6(src: Uint8Array, dst: Uint8Array, id: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 16; i += 4) {
    h = mix(h, (src[i] << 24) | (src[i + 1] << 16) | (src[i + 2] << 8) | src[i + 3]);
    h = mix(h, (dst[i] << 24) | (dst[i + 1] << 16) | (dst[i + 2] << 8) | dst[i + 3]);
  }
  return mix(h, id) >>> 0;
}
