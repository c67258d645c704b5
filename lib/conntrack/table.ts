/**
 * The connection table (a chained hash over both tuples of every connection, so a packet finds its
 * connection from either direction) and the expiry heap (a binary min-heap on expiry time with lazy
 * raising, so refreshing a timer per packet is a field write).
 *
 * Both keep what a lookup or a sift touches in typed arrays indexed by a connection's table slot, so
 * the per-packet path reads a few contiguous words instead of chasing a chain of objects (the table
 * holds ~10^5 connections; pointer chasing over them is what used to cost most).
 *
 * The arrays by slot come in pages of `PAGE_SLOTS` slots: the table grows by adding a page, never by
 * copying. (Copying left the old arrays to the garbage collector, which frees them late: the copies
 * made a third of a run's peak memory per live connection.)
 */
import { Connection, ROW_DOUBLES, Tuple, TupleNode, signedTupleHash } from "./connection.js";

/** What the table keys on: two tuples (original, reply) and the slot the table gives it. */
export interface TableEntry {
  readonly original: Tuple;
  readonly reply: Tuple;
  tableSlot: number;
}

const INITIAL_BUCKETS = 1024;

/** Slots per page of every array by slot (the table's, the heap's and the store's): `slot >>> PAGE_SHIFT` is the page. */
export const PAGE_SHIFT = 12;
export const PAGE_SLOTS = 1 << PAGE_SHIFT;
export const PAGE_MASK = PAGE_SLOTS - 1;
/** Nodes (two per slot) per page of keys. */
const NODE_PAGE_SHIFT = PAGE_SHIFT + 1;
const NODE_PAGE_MASK = (1 << NODE_PAGE_SHIFT) - 1;

/**
 * Words per tuple node in the keys (32 bytes: a slot's two nodes fill one cache line). Node index =
 * slot * 2 + direction. An address's first word is in the node; IPv6 addresses with more than that
 * (most) keep their other six words in the wide keys, so IPv4 nodes carry no unused words.
 */
const NODE_WORDS = 8;
const W_HASH = 0;
/** Next node in the bucket's chain, plus one (0 ends the chain). */
const W_NEXT = 1;
/** family << 8 | protocol */
const W_KIND = 2;
/** srcPort << 16 | dstPort */
const W_PORTS = 3;
const W_SRC0 = 4;
const W_DST0 = 5;
/** Index + 1 of the node's wide key (0: words 1 to 3 of both addresses are 0). */
const W_WIDE = 6;
/**
 * The slot's entry's id, where the entry keeps it there (an engine's connections, see
 * `ConnectionStore`): the low 32 bits in the original node's word, the bits above in the reply node's.
 */
const W_ID = 7;

/** Words per wide key: source words 1 to 3, destination words 1 to 3. */
const WIDE_WORDS = 6;
const WIDE_PAGE_SHIFT = 12;
const WIDE_PAGE_MASK = (1 << WIDE_PAGE_SHIFT) - 1;

const TWO_POW_32 = 4294967296;

/**
 * Keyed on `Connection`s by default; the engine keeps a second one of `NatAlias`es (the tuples
 * translated connections show on the inside interface).
 */
export class ConnectionTable<T extends TableEntry = Connection> {
  /** First node of each bucket, plus one (0: empty). Buckets are indexed by the hash's high bits. */
  private heads = new Uint32Array(INITIAL_BUCKETS);
  /** 32 - log2(bucket count): `hash >>> shift` is the bucket. */
  private shift = 32 - Math.log2(INITIAL_BUCKETS);
  /** Keys by node, a page per `PAGE_SLOTS` slots. */
  private readonly keyPages: Int32Array[] = [new Int32Array(PAGE_SLOTS * 2 * NODE_WORDS)];
  /** The IPv6 address words past the first of nodes that have them, in pages; a stack of free ones. */
  private readonly widePages: Int32Array[] = [];
  private freeWide = new Int32Array(64);
  private freeWideCount = 0;
  private nextFreshWide = 0;
  /** Entries by slot, a page per `PAGE_SLOTS` slots (a retired entry stays until its slot is taken). */
  private readonly entryPages: (T | null)[][] = [new Array<T | null>(PAGE_SLOTS).fill(null)];
  /** Freed slots, a stack grown as slots are freed (a growing table frees few). */
  private freeSlots = new Int32Array(64);
  private freeCount = 0;
  /** Slots never used yet start here. */
  private nextFreshSlot = 0;
  /** Connections in the table (each holds two nodes). */
  size = 0;
  /** Called with the new slot count when a page of slots was added (the engine's store adds its own). */
  onSlotsGrown: ((slots: number) => void) | null = null;
  /** Called with a retired entry (see `remove`) when its slot is taken again. */
  onSlotRetaken: ((entry: T) => void) | null = null;
  private readonly scratch = new Tuple();

  /** Slots the by-slot arrays have room for. */
  get slotCapacity(): number {
    return this.entryPages.length * PAGE_SLOTS;
  }

  /** The entry in slot `slot` (live, reserved or retired), or null. */
  entryAt(slot: number): T | null {
    return this.entryPages[slot >>> PAGE_SHIFT][slot & PAGE_MASK];
  }

  private setEntry(slot: number, entry: T | null): void {
    this.entryPages[slot >>> PAGE_SHIFT][slot & PAGE_MASK] = entry;
  }

  get bucketCount(): number {
    return this.heads.length;
  }

  /** The node whose tuple equals `probe`, or null. Allocates nothing. */
  find(this: ConnectionTable<Connection>, probe: Tuple): TupleNode | null {
    const node = this.findNode(probe, probe.hash());
    if (node < 0) return null;
    const connection = this.entryAt(node >>> 1)!;
    return (node & 1) === 0 ? connection.originalNode : connection.replyNode;
  }

  /**
   * The index of the node whose tuple equals `probe` (slot * 2 + direction), or -1. `hash` must be
   * `probe.hash()` or `signedTupleHash(probe)`.
   */
  findNode(probe: Tuple, hash: number): number {
    const keyPages = this.keyPages;
    const ports = (probe.srcPort << 16) | probe.dstPort;
    const src0 = probe.srcWord0;
    const dst0 = probe.dstWord0;
    const signedHash = hash | 0;
    const kind = (probe.family << 8) | probe.protocol;
    const wide = hasWideWords(probe);
    let link = this.heads[hash >>> this.shift];
    while (link !== 0) {
      const node = link - 1;
      const keys = keyPages[node >>> NODE_PAGE_SHIFT];
      const at = (node & NODE_PAGE_MASK) * NODE_WORDS;
      if (
        keys[at + W_HASH] === signedHash &&
        keys[at + W_PORTS] === ports &&
        keys[at + W_SRC0] === src0 &&
        keys[at + W_DST0] === dst0 &&
        keys[at + W_KIND] === kind &&
        (wide
          ? keys[at + W_WIDE] !== 0 && this.wideEquals(keys[at + W_WIDE] - 1, probe)
          : keys[at + W_WIDE] === 0)
      )
        return node;
      link = keys[at + W_NEXT];
    }
    return -1;
  }

  /** Node `node`'s tuple (slot * 2 + direction) written into `out`, which is returned. */
  tupleOf(node: number, out: Tuple): Tuple {
    const keys = this.keyPages[node >>> NODE_PAGE_SHIFT];
    const at = (node & NODE_PAGE_MASK) * NODE_WORDS;
    const kind = keys[at + W_KIND];
    const ports = keys[at + W_PORTS];
    out.family = kind >>> 8;
    out.protocol = kind & 0xff;
    out.srcPort = ports >>> 16;
    out.dstPort = ports & 0xffff;
    out.srcWord0 = keys[at + W_SRC0];
    out.dstWord0 = keys[at + W_DST0];
    const wide = keys[at + W_WIDE] - 1;
    if (wide < 0) {
      out.srcWord1 = out.srcWord2 = out.srcWord3 = 0;
      out.dstWord1 = out.dstWord2 = out.dstWord3 = 0;
      return out;
    }
    const words = this.widePages[wide >>> WIDE_PAGE_SHIFT];
    const w = (wide & WIDE_PAGE_MASK) * WIDE_WORDS;
    out.srcWord1 = words[w];
    out.srcWord2 = words[w + 1];
    out.srcWord3 = words[w + 2];
    out.dstWord1 = words[w + 3];
    out.dstWord2 = words[w + 4];
    out.dstWord3 = words[w + 5];
    return out;
  }

  /** Whether node `node`'s tuple equals `tuple`. */
  nodeEquals(node: number, tuple: Tuple): boolean {
    const keys = this.keyPages[node >>> NODE_PAGE_SHIFT];
    const at = (node & NODE_PAGE_MASK) * NODE_WORDS;
    const wide = keys[at + W_WIDE];
    return (
      keys[at + W_PORTS] === ((tuple.srcPort << 16) | tuple.dstPort) &&
      keys[at + W_KIND] === ((tuple.family << 8) | tuple.protocol) &&
      keys[at + W_SRC0] === tuple.srcWord0 &&
      keys[at + W_DST0] === tuple.dstWord0 &&
      (hasWideWords(tuple) ? wide !== 0 && this.wideEquals(wide - 1, tuple) : wide === 0)
    );
  }

  private wideEquals(wide: number, tuple: Tuple): boolean {
    const words = this.widePages[wide >>> WIDE_PAGE_SHIFT];
    const w = (wide & WIDE_PAGE_MASK) * WIDE_WORDS;
    return (
      words[w] === tuple.srcWord1 &&
      words[w + 1] === tuple.srcWord2 &&
      words[w + 2] === tuple.srcWord3 &&
      words[w + 3] === tuple.dstWord1 &&
      words[w + 4] === tuple.dstWord2 &&
      words[w + 5] === tuple.dstWord3
    );
  }

  /** The connection a node index from `findNode` belongs to. */
  connectionOf(node: number): T {
    return this.entryAt(node >>> 1)!;
  }

  /**
   * Adds the connection under both tuples. `originalHash`, when known, must be `original.hash()` or
   * `signedTupleHash(original)`.
   */
  insert(connection: T, originalHash?: number): void {
    if ((this.size + 1) * 2 > this.heads.length) this.grow();
    let slot = connection.tableSlot;
    if (slot < 0 || this.entryAt(slot) !== connection) {
      slot = this.takeSlot();
      connection.tableSlot = slot;
      this.setEntry(slot, connection);
      this.writeTuple(slot * 2, connection.original);
      this.writeTuple(slot * 2 + 1, connection.reply);
    }
    // A reserved slot's keys were written through the connection (`writeTuple`).
    this.link(slot * 2, originalHash ?? signedTupleHash(this.tupleOf(slot * 2, this.scratch)));
    this.link(slot * 2 + 1, signedTupleHash(this.tupleOf(slot * 2 + 1, this.scratch)));
    this.size++;
  }

  /**
   * Gives `entry` a slot without adding it to the chains: its tuples are written into the slot's keys
   * (`writeTuple`) and `insert` links them later. The engine's next new connection holds one.
   */
  reserve(entry: T): void {
    const slot = this.takeSlot();
    entry.tableSlot = slot;
    this.setEntry(slot, entry);
  }

  /** Writes `tuple` as node `node`'s key (slot * 2 + direction), not linking it. */
  writeTuple(node: number, tuple: Tuple): void {
    const keys = this.keyPages[node >>> NODE_PAGE_SHIFT];
    const at = (node & NODE_PAGE_MASK) * NODE_WORDS;
    keys[at + W_KIND] = (tuple.family << 8) | tuple.protocol;
    keys[at + W_PORTS] = (tuple.srcPort << 16) | tuple.dstPort;
    keys[at + W_SRC0] = tuple.srcWord0;
    keys[at + W_DST0] = tuple.dstWord0;
    // The node's previous key (a slot taken again) may have had a wide key: reused or freed.
    let wide = keys[at + W_WIDE] - 1;
    if (!hasWideWords(tuple)) {
      if (wide >= 0) this.freeWideKey(wide);
      keys[at + W_WIDE] = 0;
      return;
    }
    if (wide < 0) {
      wide = this.takeWideKey();
      keys[at + W_WIDE] = wide + 1;
    }
    const words = this.widePages[wide >>> WIDE_PAGE_SHIFT];
    const w = (wide & WIDE_PAGE_MASK) * WIDE_WORDS;
    words[w] = tuple.srcWord1;
    words[w + 1] = tuple.srcWord2;
    words[w + 2] = tuple.srcWord3;
    words[w + 3] = tuple.dstWord1;
    words[w + 4] = tuple.dstWord2;
    words[w + 5] = tuple.dstWord3;
  }

  private takeWideKey(): number {
    if (this.freeWideCount > 0) return this.freeWide[--this.freeWideCount];
    const wide = this.nextFreshWide++;
    if (wide >>> WIDE_PAGE_SHIFT >= this.widePages.length)
      this.widePages.push(new Int32Array((1 << WIDE_PAGE_SHIFT) * WIDE_WORDS));
    return wide;
  }

  private freeWideKey(wide: number): void {
    if (this.freeWideCount === this.freeWide.length) {
      const grown = new Int32Array(this.freeWide.length * 2);
      grown.set(this.freeWide);
      this.freeWide = grown;
    }
    this.freeWide[this.freeWideCount++] = wide;
  }

  /** The id kept in slot `slot`'s keys (see `W_ID`). */
  idOf(slot: number): number {
    const keys = this.keyPages[slot >>> PAGE_SHIFT];
    const at = (slot & PAGE_MASK) * 2 * NODE_WORDS;
    return keys[at + NODE_WORDS + W_ID] * TWO_POW_32 + (keys[at + W_ID] >>> 0);
  }

  setIdOf(slot: number, id: number): void {
    const keys = this.keyPages[slot >>> PAGE_SHIFT];
    const at = (slot & PAGE_MASK) * 2 * NODE_WORDS;
    keys[at + W_ID] = id % TWO_POW_32;
    keys[at + NODE_WORDS + W_ID] = Math.floor(id / TWO_POW_32);
  }

  /** The protocol of the connection in slot `slot`. */
  protocolOf(slot: number): number {
    return this.keyPages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * 2 * NODE_WORDS + W_KIND] & 0xff;
  }

  /**
   * Takes the connection out of the chains and frees its slot. `retire`: the entry keeps the slot
   * (and its keys) until the slot is taken again, when `onSlotRetaken` gets it first.
   */
  remove(connection: T, retire = false): void {
    const slot = connection.tableSlot;
    if (slot < 0 || this.entryAt(slot) !== connection) return;
    this.unlink(slot * 2);
    this.unlink(slot * 2 + 1);
    if (!retire) {
      this.setEntry(slot, null);
      connection.tableSlot = -1;
    }
    if (this.freeCount === this.freeSlots.length) {
      const freeSlots = new Int32Array(this.freeSlots.length * 2);
      freeSlots.set(this.freeSlots);
      this.freeSlots = freeSlots;
    }
    this.freeSlots[this.freeCount++] = slot;
    this.size--;
  }

  /** Every connection, in bucket order (ascending hash of a tuple). */
  *connections(): IterableIterator<T> {
    for (let bucket = 0; bucket < this.heads.length; bucket++) {
      for (let link = this.heads[bucket]; link !== 0; link = this.nextLink(link - 1)) {
        const node = link - 1;
        if ((node & 1) === 0) yield this.entryAt(node >>> 1)!;
      }
    }
  }

  /**
   * Calls `visit` with every connection that has a tuple whose hash falls in bucket `bucket` of a
   * table of `bucketCount` buckets indexed as the kernel indexes its own (`reciprocal_scale`: the
   * hash times the bucket count, over 2^32), in chain order. Connections removed by `visit` are fine.
   * Returns nothing; `visit` returns false to stop early.
   */
  visitForeignBucket(bucket: number, bucketCount: number, visit: (connection: T) => boolean): void {
    const ourBuckets = this.heads.length;
    // The kernel bucket is a contiguous hash range; so is each of ours. Scan ours that overlap it
    // (one either side for rounding) and keep the nodes whose hash maps to the kernel bucket.
    const first = Math.max(0, Math.floor((bucket / bucketCount) * ourBuckets) - 1);
    const last = Math.min(ourBuckets - 1, Math.floor(((bucket + 1) / bucketCount) * ourBuckets) + 1);
    for (let ours = first; ours <= last; ours++) {
      let link = this.heads[ours];
      while (link !== 0) {
        const node = link - 1;
        const keys = this.keyPages[node >>> NODE_PAGE_SHIFT];
        const at = (node & NODE_PAGE_MASK) * NODE_WORDS;
        // Read the successor first: `visit` may unlink this node.
        link = keys[at + W_NEXT];
        if (foreignBucket(keys[at + W_HASH] >>> 0, bucketCount) !== bucket) continue;
        const connection = this.entryAt(node >>> 1);
        if (connection !== null && !visit(connection)) return;
      }
    }
  }

  /** The link (node + 1, 0 for none) after node `node` in its chain. */
  private nextLink(node: number): number {
    return this.keyPages[node >>> NODE_PAGE_SHIFT][(node & NODE_PAGE_MASK) * NODE_WORDS + W_NEXT];
  }

  private takeSlot(): number {
    if (this.freeCount > 0) {
      const slot = this.freeSlots[--this.freeCount];
      const retired = this.entryAt(slot);
      if (retired !== null) {
        // Told while the slot is still the retired entry's: its rows are read through the slot.
        this.onSlotRetaken?.(retired);
        this.setEntry(slot, null);
      }
      return slot;
    }
    const slot = this.nextFreshSlot++;
    if (slot >= this.slotCapacity) this.addPage();
    return slot;
  }

  private addPage(): void {
    this.keyPages.push(new Int32Array(PAGE_SLOTS * 2 * NODE_WORDS));
    this.entryPages.push(new Array<T | null>(PAGE_SLOTS).fill(null));
    this.onSlotsGrown?.(this.slotCapacity);
  }

  /** Adds node `node` (its key written) to its bucket's chain. */
  private link(node: number, hash: number): void {
    const keys = this.keyPages[node >>> NODE_PAGE_SHIFT];
    const at = (node & NODE_PAGE_MASK) * NODE_WORDS;
    keys[at + W_HASH] = hash;
    const bucket = hash >>> this.shift;
    keys[at + W_NEXT] = this.heads[bucket];
    this.heads[bucket] = node + 1;
  }

  private unlink(node: number): void {
    const keyPages = this.keyPages;
    const keys = keyPages[node >>> NODE_PAGE_SHIFT];
    const at = (node & NODE_PAGE_MASK) * NODE_WORDS;
    const bucket = keys[at + W_HASH] >>> this.shift;
    const target = node + 1;
    if (this.heads[bucket] === target) {
      this.heads[bucket] = keys[at + W_NEXT];
    } else {
      let link = this.heads[bucket];
      while (link !== 0) {
        const linkKeys = keyPages[(link - 1) >>> NODE_PAGE_SHIFT];
        const linkAt = ((link - 1) & NODE_PAGE_MASK) * NODE_WORDS;
        const next = linkKeys[linkAt + W_NEXT];
        if (next === target) {
          linkKeys[linkAt + W_NEXT] = keys[at + W_NEXT];
          break;
        }
        link = next;
      }
    }
    keys[at + W_NEXT] = 0;
  }

  private grow(): void {
    const old = this.heads;
    const keyPages = this.keyPages;
    this.heads = new Uint32Array(old.length * 2);
    this.shift--;
    for (let bucket = 0; bucket < old.length; bucket++) {
      let link = old[bucket];
      while (link !== 0) {
        const keys = keyPages[(link - 1) >>> NODE_PAGE_SHIFT];
        const at = ((link - 1) & NODE_PAGE_MASK) * NODE_WORDS;
        const next = keys[at + W_NEXT];
        const index = keys[at + W_HASH] >>> this.shift;
        keys[at + W_NEXT] = this.heads[index];
        this.heads[index] = link;
        link = next;
      }
    }
  }
}

/** Whether a tuple has address words past the first (IPv6 only): what a node's wide key holds. */
function hasWideWords(tuple: Tuple): boolean {
  return (
    (tuple.srcWord1 | tuple.srcWord2 | tuple.srcWord3 | tuple.dstWord1 | tuple.dstWord2 | tuple.dstWord3) !==
    0
  );
}

/** The bucket a hash falls in, in a table of `bucketCount` buckets (the kernel's `reciprocal_scale`). */
export function foreignBucket(hash: number, bucketCount: number): number {
  return Math.floor((hash * bucketCount) / TWO_POW_32);
}

/**
 * The heap's doubles at the start of each slot's `ROW_DOUBLES` (the engine's store keeps the rest):
 * the key the heap files the slot under (NaN while it is not in the heap) and the real expiry.
 */
export const H_KEY = 0;
export const H_EXPIRY = 1;

/** Children per heap node: four keys share a cache line, and the heap is half as deep as a binary one. */
const ARITY = 4;

/**
 * Min-heap of connections keyed by expiry. A connection's key may lag behind a later expiry
 * (refreshes only write `H_EXPIRY`); `popExpired` re-files such entries. Shortened timeouts must call
 * `update` (or `setExpiry`) so the key never runs late.
 *
 * Connections must be in a ConnectionTable while in the heap: the heap is indexed by their
 * `tableSlot`. The keys are kept twice: in heap order beside the slots (`keys`), which is what sifting
 * compares, so a sift reads a few dense arrays instead of a row per level; and in each slot's row,
 * where the per-packet refresh compares its new expiry without a lookup. Heap positions are by slot in
 * their own dense pages. A slot's expiry stays in its row while the connection is out of the heap (the
 * engine's store reads it there).
 */
export class ExpiryHeap {
  // `order`, `keys`, `count` and `pages` are read and `pages` written by the engine's per-packet path
  // directly: a time passed to a call V8 does not inline is a new heap number each time.
  /** Heap order: slots, and their keys. */
  order = new Int32Array(PAGE_SLOTS);
  keys = new Float64Array(PAGE_SLOTS);
  count = 0;
  /** `ROW_DOUBLES` doubles per slot, one cache line (the store uses the ones after the heap's). */
  readonly pages: Float64Array[] = [];
  /** Heap index + 1 by slot (0: not in the heap). */
  private readonly positionPages: Int32Array[] = [];
  /** Connections by slot when no table was given: what `popExpired` returns. */
  private readonly ownEntries: (Connection | null)[] | null;

  /** `table`: the table whose slots index this heap; it says which connection a slot holds. */
  constructor(private readonly table: ConnectionTable | null = null) {
    this.ownEntries = table === null ? [] : null;
    this.ensureSlots(1);
  }

  get size(): number {
    return this.count;
  }

  /** Makes room for slots below `slots` (the engine's store calls this as its table grows). */
  ensureSlots(slots: number): void {
    while (this.pages.length * PAGE_SLOTS < slots) {
      const page = new Float64Array(PAGE_SLOTS * ROW_DOUBLES);
      for (let slot = 0; slot < PAGE_SLOTS; slot++) page[slot * ROW_DOUBLES + H_KEY] = NaN;
      this.pages.push(page);
      this.positionPages.push(new Int32Array(PAGE_SLOTS));
    }
  }

  push(connection: Connection): void {
    const slot = connection.tableSlot;
    if (slot < 0) throw new Error("ExpiryHeap.push: the connection is not in a table");
    this.ensureSlots(slot + 1);
    if (this.contains(slot)) throw new Error("ExpiryHeap.push: the connection is in the heap already");
    if (this.count >= this.order.length) {
      const order = new Int32Array(this.order.length * 2);
      order.set(this.order);
      this.order = order;
      const keys = new Float64Array(this.keys.length * 2);
      keys.set(this.keys);
      this.keys = keys;
    }
    const expiresAt = connection.expiresAt;
    const page = this.pages[slot >>> PAGE_SHIFT];
    const at = (slot & PAGE_MASK) * ROW_DOUBLES;
    page[at + H_KEY] = expiresAt;
    page[at + H_EXPIRY] = expiresAt;
    if (this.ownEntries !== null) this.ownEntries[slot] = connection;
    this.siftUp(this.count++, slot, expiresAt);
  }

  /** Call after `expiresAt` changed: moves the key earlier at once, later only lazily. */
  update(connection: Connection): void {
    this.setExpiry(connection.tableSlot, connection.expiresAt);
  }

  /** Whether the connection in table slot `slot` is in the heap. */
  contains(slot: number): boolean {
    return slot >= 0 && slot < this.pages.length * PAGE_SLOTS && this.positionOf(slot) >= 0;
  }

  /** The expiry of the connection in table slot `slot` (in the heap, or last set while out of it). */
  expiryAt(slot: number): number {
    return this.pages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * ROW_DOUBLES + H_EXPIRY];
  }

  /**
   * Sets the expiry of the connection in table slot `slot`: if it is in the heap, moves its key
   * earlier at once, later only lazily.
   */
  setExpiry(slot: number, expiresAt: number): void {
    this.ensureSlots(slot + 1);
    const page = this.pages[slot >>> PAGE_SHIFT];
    const at = (slot & PAGE_MASK) * ROW_DOUBLES;
    page[at + H_EXPIRY] = expiresAt;
    const index = this.positionOf(slot);
    if (index >= 0 && expiresAt < page[at + H_KEY]) {
      page[at + H_KEY] = expiresAt;
      this.siftUp(index, slot, expiresAt);
    }
  }

  remove(connection: Connection): void {
    const slot = connection.tableSlot;
    if (!this.contains(slot)) return;
    const page = this.pages[slot >>> PAGE_SHIFT];
    const at = (slot & PAGE_MASK) * ROW_DOUBLES;
    const index = this.positionOf(slot);
    const expiresAt = page[at + H_EXPIRY];
    page[at + H_KEY] = NaN;
    this.positionPages[slot >>> PAGE_SHIFT][slot & PAGE_MASK] = 0;
    if (this.ownEntries !== null) this.ownEntries[slot] = null;
    const last = --this.count;
    if (index !== last) {
      const lastSlot = this.order[last];
      const lastKey = this.keys[last];
      this.siftDown(index, lastSlot, lastKey);
      this.siftUp(this.positionOf(lastSlot), lastSlot, lastKey);
    }
    // Out of the heap, the connection keeps its expiry (a connection alone in its own field).
    connection.expiresAt = expiresAt;
  }

  /**
   * The connection that expires first at or before `now`, removed from the heap, or null. Entries
   * whose key is due but whose real expiry moved later are re-filed on the way.
   */
  popExpired(now: number): Connection | null {
    while (this.count > 0) {
      const key = this.keys[0];
      if (key > now) return null;
      const slot = this.order[0];
      const page = this.pages[slot >>> PAGE_SHIFT];
      const at = (slot & PAGE_MASK) * ROW_DOUBLES;
      const expiresAt = page[at + H_EXPIRY];
      if (expiresAt > key) {
        page[at + H_KEY] = expiresAt;
        this.siftDown(0, slot, expiresAt);
        continue;
      }
      const top = (this.table !== null ? this.table.entryAt(slot) : this.ownEntries![slot])!;
      this.remove(top);
      return top;
    }
    return null;
  }

  /** The earliest key in the heap (may be earlier than that connection's real expiry), or Infinity. */
  peekKey(): number {
    return this.count === 0 ? Infinity : this.keys[0];
  }

  /**
   * The `k`-th earliest key (1 for the earliest), Infinity when the heap holds fewer: at most `k`
   * connections expire up to it (a key is never later than its connection's expiry). A best-first walk
   * of the heap's top, the heap itself untouched.
   */
  keyAt(k: number): number {
    if (k > this.count) return Infinity;
    const keys = this.keys;
    // Candidates: heap indices ordered by key, in a small binary heap of their own.
    const frontier = new Int32Array(k * ARITY + 1);
    let size = 0;
    const push = (index: number): void => {
      let at = size++;
      while (at > 0) {
        const parent = (at - 1) >> 1;
        if (keys[frontier[parent]] <= keys[index]) break;
        frontier[at] = frontier[parent];
        at = parent;
      }
      frontier[at] = index;
    };
    const pop = (): number => {
      const top = frontier[0];
      const last = frontier[--size];
      let at = 0;
      for (;;) {
        let child = 2 * at + 1;
        if (child >= size) break;
        if (child + 1 < size && keys[frontier[child + 1]] < keys[frontier[child]]) child++;
        if (keys[frontier[child]] >= keys[last]) break;
        frontier[at] = frontier[child];
        at = child;
      }
      frontier[at] = last;
      return top;
    };
    push(0);
    for (let taken = 1; ; taken++) {
      const index = pop();
      if (taken === k) return keys[index];
      const first = ARITY * index + 1;
      const end = Math.min(first + ARITY, this.count);
      for (let child = first; child < end; child++) push(child);
    }
  }

  /**
   * The id of the connection in slot `slot`, which breaks ties between equal keys (read from the
   * connection: ties are rare, and an id per slot in the pages cost 8 bytes per live connection).
   */
  private idAt(slot: number): number {
    return (this.table !== null ? this.table.entryAt(slot) : this.ownEntries![slot])!.id;
  }

  /** Heap index of `slot`, -1 when it is not in the heap. */
  private positionOf(slot: number): number {
    return this.positionPages[slot >>> PAGE_SHIFT][slot & PAGE_MASK] - 1;
  }

  /** Whether (`key`, `slot`) comes before (`otherKey`, `other`). */
  private before(key: number, slot: number, otherKey: number, other: number): boolean {
    return key < otherKey || (key === otherKey && this.idAt(slot) < this.idAt(other));
  }

  private place(index: number, slot: number, key: number): void {
    this.order[index] = slot;
    this.keys[index] = key;
    this.positionPages[slot >>> PAGE_SHIFT][slot & PAGE_MASK] = index + 1;
  }

  /** Places `slot` (filed under `key`) at `index` or above, moving later parents down. */
  private siftUp(index: number, slot: number, key: number): void {
    const order = this.order;
    const keys = this.keys;
    while (index > 0) {
      const parentIndex = ((index - 1) / ARITY) | 0;
      const parent = order[parentIndex];
      const parentKey = keys[parentIndex];
      if (!this.before(key, slot, parentKey, parent)) break;
      this.place(index, parent, parentKey);
      index = parentIndex;
    }
    this.place(index, slot, key);
  }

  /** Places `slot` (filed under `key`) at `index` or below, moving earlier children up. */
  private siftDown(index: number, slot: number, key: number): void {
    const order = this.order;
    const keys = this.keys;
    const length = this.count;
    for (;;) {
      const first = ARITY * index + 1;
      if (first >= length) break;
      const end = first + ARITY < length ? first + ARITY : length;
      let child = first;
      let childSlot = order[first];
      let childKey = keys[first];
      for (let other = first + 1; other < end; other++) {
        const otherKey = keys[other];
        if (otherKey > childKey) continue;
        const otherSlot = order[other];
        if (!this.before(otherKey, otherSlot, childKey, childSlot)) continue;
        child = other;
        childSlot = otherSlot;
        childKey = otherKey;
      }
      if (!this.before(childKey, childSlot, key, slot)) break;
      this.place(index, childSlot, childKey);
      index = child;
    }
    this.place(index, slot, key);
  }
}
