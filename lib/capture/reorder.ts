import { copyCaptureRecord, emptyCaptureRecord } from "./source.js";
import { IndexHeap } from "./index-heap.js";
/**
 * Puts records that arrive a little late back into timestamp order.
 *
 * Records are held until their timestamp is at least `windowNs` older than the newest timestamp
 * seen, then released in (timestamp, arrival) order from a binary heap. Held bytes are copied into
 * one preallocated ring arena; metadata lives in typed arrays indexed by slot. Space is reclaimed in
 * arrival order (the arena is a ring), which matches release order except for the records that were
 * reordered, so the arena rarely fragments.
 *
 * A record older than one already released can no longer be put in order: it is passed on at once
 * and counted in `lateBeyondWindow`. When the arena or the slots are full, the earliest held record is
 * released before its time and counted in `releasedEarly`.
 */
import type { CaptureRecord, CaptureSource } from "./source.js";

export interface ReorderOptions {
  /** How long records are held, in nanoseconds; 0 returns the source unchanged. */
  windowNs: number;
  /** Arena size for held record bytes (default 16 MiB). */
  maxHeldBytes?: number;
  /** Most records held at once (default 65536). */
  maxHeldRecords?: number;
}

const NANOS_PER_SECOND = 1_000_000_000;

export class ReorderedSource implements CaptureSource {
  readonly record: CaptureRecord = emptyCaptureRecord();
  /** Records that arrived after a newer one and were released in timestamp order. */
  reordered = 0;
  /** Records older than one already released: passed on out of order. */
  lateBeyondWindow = 0;
  /** Records released before their window ran out because the arena or the slots were full. */
  releasedEarly = 0;

  private readonly windowNs: number;
  private readonly arena: Buffer;
  private readonly capacity: number;
  // Slot metadata.
  private readonly slotSec: Float64Array;
  private readonly slotNsec: Float64Array;
  private readonly slotArrival: Float64Array;
  private readonly slotOffset: Float64Array;
  private readonly slotCaplen: Float64Array;
  private readonly slotOriglen: Float64Array;
  private readonly slotLinkType: Float64Array;
  private readonly slotInterface: Float64Array;
  private readonly slotInput: Float64Array;
  private readonly slotRecordNumber: Float64Array;
  private readonly slotFileOffset: Float64Array;
  /** Position of each held slot's entry in the arrival ring. */
  private readonly slotArrivalEntry: Int32Array;
  private readonly freeSlots: Int32Array;
  private freeCount: number;
  /**
   * Arena extents in arrival order (a ring): space is reclaimed from its front once the front's
   * record has been delivered. Slots, unlike bytes, are reused as soon as their record is delivered.
   */
  private readonly arrivalOffset: Float64Array;
  private readonly arrivalReleased: Uint8Array;
  private arrivalsFront = 0;
  private arrivalsCount = 0;
  private readonly heap: IndexHeap;
  // Arena ring: bytes live from `arenaTail` to `arenaHead`, wrapped past the end when `arenaWrapped`.
  private arenaHead = 0;
  private arenaTail = 0;
  private arenaWrapped = false;

  private arrivalCounter = 0;
  private newestSec = -Infinity;
  private newestNsec = 0;
  private releasedSec = -Infinity;
  private releasedNsec = 0;
  /** Slot delivered by the last `next()`, freed at the following call; -1 for none. */
  private deliveredSlot = -1;
  /** The upstream record is in hand but could not be stored yet (arena full). */
  private upstreamPending = false;
  private upstreamEnded = false;

  constructor(
    private readonly source: CaptureSource,
    options: ReorderOptions,
  ) {
    this.windowNs = options.windowNs;
    this.capacity = options.maxHeldBytes ?? 16 << 20;
    const slots = options.maxHeldRecords ?? 65536;
    this.arena = Buffer.allocUnsafe(this.capacity);
    this.slotSec = new Float64Array(slots);
    this.slotNsec = new Float64Array(slots);
    this.slotArrival = new Float64Array(slots);
    this.slotOffset = new Float64Array(slots);
    this.slotCaplen = new Float64Array(slots);
    this.slotOriglen = new Float64Array(slots);
    this.slotLinkType = new Float64Array(slots);
    this.slotInterface = new Float64Array(slots);
    this.slotInput = new Float64Array(slots);
    this.slotRecordNumber = new Float64Array(slots);
    this.slotFileOffset = new Float64Array(slots);
    this.slotArrivalEntry = new Int32Array(slots);
    this.freeSlots = new Int32Array(slots);
    for (let slot = 0; slot < slots; slot++) this.freeSlots[slot] = slots - 1 - slot;
    this.freeCount = slots;
    this.arrivalOffset = new Float64Array(2 * slots);
    this.arrivalReleased = new Uint8Array(2 * slots);
    this.heap = new IndexHeap(slots, (a, b) => this.slotBefore(a, b));
  }

  get name(): string {
    return this.source.name;
  }
  get interfaces() {
    return this.source.interfaces;
  }
  get warnings() {
    return this.source.warnings;
  }
  get format() {
    return this.source.format;
  }
  get compressed() {
    return this.source.compressed;
  }
  get outOfOrder(): number {
    return this.source.outOfOrder;
  }

  next(): boolean {
    if (this.deliveredSlot >= 0) {
      this.releaseSlot(this.deliveredSlot);
      this.deliveredSlot = -1;
    }
    for (;;) {
      if (this.heap.size > 0 && this.windowPassed(this.heap.top)) return this.deliverTop();
      if (!this.upstreamPending) {
        if (!this.source.next()) {
          if (this.upstreamEnded && this.heap.size > 0) return this.deliverTop();
          return false;
        }
        const incoming = this.source.record;
        if (this.isBefore(incoming.tsSec, incoming.tsNsec, this.releasedSec, this.releasedNsec)) {
          this.lateBeyondWindow++;
          this.passThrough(incoming);
          return true;
        }
        if (this.isBefore(incoming.tsSec, incoming.tsNsec, this.newestSec, this.newestNsec)) this.reordered++;
        else {
          this.newestSec = incoming.tsSec;
          this.newestNsec = incoming.tsNsec;
        }
        this.upstreamPending = true;
      }
      const incoming = this.source.record;
      if (!this.store(incoming)) {
        if (this.heap.size > 0) {
          this.releasedEarly++;
          return this.deliverTop();
        }
        // Larger than the whole arena and nothing held: it is in order already.
        this.upstreamPending = false;
        this.passThrough(incoming);
        return true;
      }
      this.upstreamPending = false;
    }
  }

  async fill(): Promise<boolean> {
    if (this.deliveredSlot >= 0) {
      this.releaseSlot(this.deliveredSlot);
      this.deliveredSlot = -1;
    }
    if (this.upstreamEnded) return false;
    const more = await this.source.fill();
    if (!more) this.upstreamEnded = true;
    return more || this.heap.size > 0;
  }

  async close(): Promise<void> {
    await this.source.close();
  }

  private isBefore(sec: number, nsec: number, otherSec: number, otherNsec: number): boolean {
    return sec < otherSec || (sec === otherSec && nsec < otherNsec);
  }

  /** Whether a held record is at least the window older than the newest timestamp seen. */
  private windowPassed(slot: number): boolean {
    const behindNs =
      (this.newestSec - this.slotSec[slot]) * NANOS_PER_SECOND + (this.newestNsec - this.slotNsec[slot]);
    return behindNs >= this.windowNs;
  }

  private passThrough(from: CaptureRecord): void {
    copyCaptureRecord(this.record, from);
  }

  private deliverTop(): boolean {
    const slot = this.heap.top;
    this.heap.pop();
    const record = this.record;
    record.data = this.arena;
    record.offset = this.slotOffset[slot];
    record.caplen = this.slotCaplen[slot];
    record.origlen = this.slotOriglen[slot];
    record.tsSec = this.slotSec[slot];
    record.tsNsec = this.slotNsec[slot];
    record.linkType = this.slotLinkType[slot];
    record.interfaceId = this.slotInterface[slot];
    record.inputIndex = this.slotInput[slot];
    record.recordNumber = this.slotRecordNumber[slot];
    record.fileOffset = this.slotFileOffset[slot];
    this.releasedSec = record.tsSec;
    this.releasedNsec = record.tsNsec;
    this.deliveredSlot = slot;
    return true;
  }

  /** Copies the record into the arena and the heap; false when there is no room. */
  private store(from: CaptureRecord): boolean {
    const ringCapacity = this.arrivalOffset.length;
    if (this.freeCount === 0 || this.arrivalsCount === ringCapacity) return false;
    const size = from.caplen;
    let at: number;
    if (!this.arenaWrapped) {
      if (this.arenaHead + size <= this.capacity) at = this.arenaHead;
      else if (size <= this.arenaTail) {
        at = 0;
        this.arenaWrapped = true;
      } else return false;
    } else if (this.arenaHead + size <= this.arenaTail) at = this.arenaHead;
    else return false;
    this.arenaHead = at + size;
    from.data.copy(this.arena, at, from.offset, from.offset + size);
    const slot = this.freeSlots[--this.freeCount];
    this.slotSec[slot] = from.tsSec;
    this.slotNsec[slot] = from.tsNsec;
    this.slotArrival[slot] = this.arrivalCounter++;
    this.slotOffset[slot] = at;
    this.slotCaplen[slot] = size;
    this.slotOriglen[slot] = from.origlen;
    this.slotLinkType[slot] = from.linkType;
    this.slotInterface[slot] = from.interfaceId;
    this.slotInput[slot] = from.inputIndex;
    this.slotRecordNumber[slot] = from.recordNumber;
    this.slotFileOffset[slot] = from.fileOffset;
    const entry = (this.arrivalsFront + this.arrivalsCount++) % ringCapacity;
    this.arrivalOffset[entry] = at;
    this.arrivalReleased[entry] = 0;
    this.slotArrivalEntry[slot] = entry;
    this.heap.push(slot);
    return true;
  }

  /** Frees a delivered slot and reclaims arena space from the front of the arrival order. */
  private releaseSlot(slot: number): void {
    this.freeSlots[this.freeCount++] = slot;
    this.arrivalReleased[this.slotArrivalEntry[slot]] = 1;
    const capacity = this.arrivalOffset.length;
    while (this.arrivalsCount > 0 && this.arrivalReleased[this.arrivalsFront] === 1) {
      this.arrivalsFront = (this.arrivalsFront + 1) % capacity;
      this.arrivalsCount--;
    }
    if (this.arrivalsCount === 0) {
      this.arenaHead = 0;
      this.arenaTail = 0;
      this.arenaWrapped = false;
      return;
    }
    const newTail = this.arrivalOffset[this.arrivalsFront];
    if (newTail < this.arenaTail) this.arenaWrapped = false;
    this.arenaTail = newTail;
  }

  /** Heap order: timestamp, then arrival. */
  private slotBefore(a: number, b: number): boolean {
    if (this.slotSec[a] !== this.slotSec[b]) return this.slotSec[a] < this.slotSec[b];
    if (this.slotNsec[a] !== this.slotNsec[b]) return this.slotNsec[a] < this.slotNsec[b];
    return this.slotArrival[a] < this.slotArrival[b];
  }
}

/** Wraps a source so late records within `windowNs` come out in timestamp order (see ReorderedSource). */
export function reorderSource(source: CaptureSource, options: ReorderOptions): CaptureSource {
  if (!(options.windowNs > 0)) return source;
  return new ReorderedSource(source, options);
}
