/**
 * The report's state of every live connection (first reply, ASSURED, the state history; the first and
 * last packet are the engine's, see `N_LAST_SEEN`) in typed arrays: an 84-byte row per table slot, in
 * pages that are added as the table grows and never copied, so the garbage collector sees a few arrays
 * instead of an object per connection. A connection's flow is the row of its table slot: no lookup, no
 * index of its own.
 *
 * A time is kept as 32-bit seconds counted from the first flow's second, plus nanoseconds: exact in
 * 8 bytes. A flow with a time outside that range (more than 68 years from the first flow: damaged or
 * made-up timestamps) keeps its times as plain numbers in an array of its own instead.
 */
import type { Connection } from "../conntrack/connection.js";
import { PAGE_MASK, PAGE_SHIFT, PAGE_SLOTS } from "../conntrack/table.js";

/** Time fields of a row; history entry `i` (below `POOLED_ENTRIES`) is field `FLOW_HISTORY + i`. */
export const FLOW_REPLY = 0;
export const FLOW_ASSURED = 1;
const FLOW_HISTORY = 2;
/**
 * History entries kept in the row (a TCP connection's whole life, SYN_SENT to TIME_WAIT, takes 7); the
 * few flows with more keep the rest in an array.
 */
export const POOLED_ENTRIES = 7;
const TIME_FIELDS = FLOW_HISTORY + POOLED_ENTRIES;

/**
 * 32-bit words per row (84 bytes): the bits word, the time fields' (seconds, nanoseconds) pairs, then
 * the pooled entries' state codes as bytes.
 */
const ROW_WORDS = 21;
/** Pooled history entries (low byte), the bits below, and the last state code + 1 (high half). */
const W_BITS = 0;
const W_TIMES = 1;
const CODE_BYTE = (W_TIMES + TIME_FIELDS * 2) * 4;
const POOLED_MASK = 0xff;
const REPLIED = 0x100;
const ASSURED = 0x200;
/** The flow's times are in `wideTimes`, not in its row. */
const WIDE = 0x400;
/** The row holds a live flow. */
const LIVE = 0x800;
const LAST_STATE_SHIFT = 16;

const ROW_BYTES = ROW_WORDS * 4;
if (CODE_BYTE + POOLED_ENTRIES > ROW_BYTES) throw new Error("flow row too small");

export class FlowRows {
  private readonly wordPages: Int32Array[] = [];
  private readonly bytePages: Uint8Array[] = [];
  /** History entries past the pooled ones: [code, seconds, nanoseconds] triples. */
  private readonly moreHistory = new Map<number, number[]>();
  /** State changes counted but not kept (beyond `maxHistory`), by flow: rare. */
  private readonly omitted = new Map<number, number>();
  /** Times of flows marked `WIDE`: (seconds, nanoseconds) by time field. */
  private readonly wideTimes = new Map<number, Float64Array>();
  /** The second that row seconds count from: the first flow's. */
  private epochSec = Number.NaN;
  size = 0;

  /**
   * A row for `connection`'s flow, which starts at second `sec`; returns its index, the connection's
   * table slot (it must be in an engine's table).
   */
  add(connection: Connection, sec: number): number {
    const index = connection.tableSlot;
    if (index < 0) throw new Error(`connection ${connection.id}: a flow's connection must be in a table`);
    if (Number.isNaN(this.epochSec)) this.epochSec = sec;
    while (index >>> PAGE_SHIFT >= this.wordPages.length) {
      const buffer = new ArrayBuffer(PAGE_SLOTS * ROW_BYTES);
      this.wordPages.push(new Int32Array(buffer));
      this.bytePages.push(new Uint8Array(buffer));
    }
    const words = this.wordPages[index >>> PAGE_SHIFT];
    const at = (index & PAGE_MASK) * ROW_WORDS;
    // Element stores, not fill(): this runs per new connection.
    for (let word = 1; word < ROW_WORDS; word++) words[at + word] = 0;
    words[at + W_BITS] = LIVE;
    this.size++;
    return index;
  }

  /**
   * The index of `connection`'s live flow, -1 when it has none. A slot's flow is its connection's:
   * the flow ends with the connection's DESTROY, before the table gives the slot to another, and a
   * retired connection whose slot was taken no longer names it.
   */
  find(connection: Connection): number {
    const slot = connection.tableSlot;
    if (slot < 0 || slot >>> PAGE_SHIFT >= this.wordPages.length) return -1;
    const bits = this.wordPages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * ROW_WORDS + W_BITS];
    return (bits & LIVE) !== 0 ? slot : -1;
  }

  remove(index: number): void {
    const words = this.wordPages[index >>> PAGE_SHIFT];
    const at = (index & PAGE_MASK) * ROW_WORDS + W_BITS;
    const bits = words[at];
    if ((bits & POOLED_MASK) === POOLED_ENTRIES) this.moreHistory.delete(index);
    if ((bits & WIDE) !== 0) this.wideTimes.delete(index);
    if (this.omitted.size !== 0) this.omitted.delete(index);
    words[at] = 0;
    this.size--;
  }

  setTime(index: number, field: number, sec: number, nsec: number): void {
    const words = this.wordPages[index >>> PAGE_SHIFT];
    const at = (index & PAGE_MASK) * ROW_WORDS;
    if ((words[at + W_BITS] & WIDE) === 0) {
      const relative = sec - this.epochSec;
      if ((relative | 0) === relative && (nsec | 0) === nsec) {
        words[at + W_TIMES + field * 2] = relative;
        words[at + W_TIMES + field * 2 + 1] = nsec;
        return;
      }
      this.widen(index);
    }
    const times = this.wideTimes.get(index)!;
    times[field * 2] = sec;
    times[field * 2 + 1] = nsec;
  }

  /** Writes time `field` as (seconds, nanoseconds) into `out` at `to`; returns the seconds. */
  readTime(index: number, field: number, out: Float64Array, to: number): number {
    const words = this.wordPages[index >>> PAGE_SHIFT];
    const at = (index & PAGE_MASK) * ROW_WORDS;
    if ((words[at + W_BITS] & WIDE) === 0) {
      out[to] = this.epochSec + words[at + W_TIMES + field * 2];
      out[to + 1] = words[at + W_TIMES + field * 2 + 1];
    } else {
      const times = this.wideTimes.get(index)!;
      out[to] = times[field * 2];
      out[to + 1] = times[field * 2 + 1];
    }
    return out[to];
  }

  /** Nanoseconds from (`firstSec`, `firstNsec`) to time `field`. */
  sinceFirst(index: number, field: number, firstSec: number, firstNsec: number): number {
    this.readTime(index, field, timeScratch, 0);
    return (timeScratch[0] - firstSec) * 1e9 + (timeScratch[1] - firstNsec);
  }

  /** The last state code noted, -1 before the first. */
  lastState(index: number): number {
    return (this.bits(index) >>> LAST_STATE_SHIFT) - 1;
  }

  /** `code`: below 2^16 - 1. */
  setLastState(index: number, code: number): void {
    const words = this.wordPages[index >>> PAGE_SHIFT];
    const at = (index & PAGE_MASK) * ROW_WORDS + W_BITS;
    words[at] = (words[at] & ((1 << LAST_STATE_SHIFT) - 1)) | ((code + 1) << LAST_STATE_SHIFT);
  }

  replied(index: number): boolean {
    return (this.bits(index) & REPLIED) !== 0;
  }

  assured(index: number): boolean {
    return (this.bits(index) & ASSURED) !== 0;
  }

  /** Marks the first reply (or ASSURED) at (`sec`, `nsec`); false when it was marked already. */
  markReplied(index: number, sec: number, nsec: number): boolean {
    return this.mark(index, REPLIED, FLOW_REPLY, sec, nsec);
  }

  markAssured(index: number, sec: number, nsec: number): boolean {
    return this.mark(index, ASSURED, FLOW_ASSURED, sec, nsec);
  }

  historyLength(index: number): number {
    const pooled = this.bits(index) & POOLED_MASK;
    if (pooled < POOLED_ENTRIES) return pooled;
    const more = this.moreHistory.get(index);
    return more === undefined ? pooled : pooled + more.length / 3;
  }

  historyOmitted(index: number): number {
    return this.omitted.size === 0 ? 0 : (this.omitted.get(index) ?? 0);
  }

  /** Appends a history entry, or counts it as omitted when the flow has `maxHistory` already. */
  pushHistory(index: number, code: number, sec: number, nsec: number, maxHistory: number): void {
    const words = this.wordPages[index >>> PAGE_SHIFT];
    const at = (index & PAGE_MASK) * ROW_WORDS;
    if (this.historyLength(index) >= maxHistory) {
      this.omitted.set(index, this.historyOmitted(index) + 1);
      return;
    }
    const pooled = words[at + W_BITS] & POOLED_MASK;
    if (pooled < POOLED_ENTRIES) {
      this.bytePages[index >>> PAGE_SHIFT][(index & PAGE_MASK) * ROW_BYTES + CODE_BYTE + pooled] = code;
      this.setTime(index, FLOW_HISTORY + pooled, sec, nsec);
      words[at + W_BITS]++;
      return;
    }
    let more = this.moreHistory.get(index);
    if (more === undefined) this.moreHistory.set(index, (more = []));
    more.push(code, sec, nsec);
  }

  /** History entry `i` into `entry`: state code, seconds, nanoseconds. */
  readHistory(index: number, i: number, entry: Float64Array): void {
    if (i < POOLED_ENTRIES) {
      entry[0] = this.bytePages[index >>> PAGE_SHIFT][(index & PAGE_MASK) * ROW_BYTES + CODE_BYTE + i];
      this.readTime(index, FLOW_HISTORY + i, entry, 1);
      return;
    }
    const more = this.moreHistory.get(index)!;
    const at = (i - POOLED_ENTRIES) * 3;
    entry[0] = more[at];
    entry[1] = more[at + 1];
    entry[2] = more[at + 2];
  }

  private bits(index: number): number {
    return this.wordPages[index >>> PAGE_SHIFT][(index & PAGE_MASK) * ROW_WORDS + W_BITS];
  }

  private mark(index: number, bit: number, field: number, sec: number, nsec: number): boolean {
    const words = this.wordPages[index >>> PAGE_SHIFT];
    const at = (index & PAGE_MASK) * ROW_WORDS + W_BITS;
    if ((words[at] & bit) !== 0) return false;
    words[at] |= bit;
    this.setTime(index, field, sec, nsec);
    return true;
  }

  private widen(index: number): void {
    const times = new Float64Array(TIME_FIELDS * 2);
    for (let field = 0; field < TIME_FIELDS; field++) this.readTime(index, field, times, field * 2);
    this.wideTimes.set(index, times);
    this.wordPages[index >>> PAGE_SHIFT][(index & PAGE_MASK) * ROW_WORDS + W_BITS] |= WIDE;
  }
}

const timeScratch = new Float64Array(2);
