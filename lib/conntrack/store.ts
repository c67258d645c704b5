/**
 * An engine's live connections' data in typed arrays, a row per table slot (the slot the table gives
 * a connection indexes its keys, the expiry heap's pages and these): counters and start time; the
 * expiry is the heap's. TCP tracker data has rows of its own, only for TCP connections, found from
 * the slot. A live connection's object is then a handle of a few fields whose accessors read the
 * rows. Rows come in pages of `PAGE_SLOTS`, added as needed, never copied.
 */
import {
  Connection,
  NUMBER_FIELDS,
  TB_STATE,
  TCP_BYTES,
  TCP_WORDS,
  TcpConnectionState,
  type ConnectionRows,
  Tuple,
} from "./connection.js";
import { PAGE_MASK, PAGE_SHIFT, PAGE_SLOTS, type ConnectionTable, type ExpiryHeap } from "./table.js";

export class ConnectionStore implements ConnectionRows {
  /** `NUMBER_FIELDS` doubles per slot: the counters and the start time (`N_*`). */
  readonly numberPages: Float64Array[] = [];
  /** By slot: the slot's TCP row + 1, 0 for none. */
  private readonly tcpRowPages: Int32Array[] = [];
  /** By TCP row. */
  private readonly tcpWordPages: Int32Array[] = [];
  private readonly tcpBytePages: Uint8Array[] = [];
  private tcpFree = new Int32Array(64);
  private tcpFreeCount = 0;
  private tcpNextFresh = 0;
  /** The engine's view of one connection's TCP data (see `tcpOf`). */
  private readonly tcpView: TcpConnectionState;

  constructor(
    private readonly table: ConnectionTable,
    readonly heap: ExpiryHeap,
  ) {
    this.grow(table.slotCapacity);
    this.tcpWordPages.push(new Int32Array(PAGE_SLOTS * TCP_WORDS));
    this.tcpBytePages.push(new Uint8Array(PAGE_SLOTS * TCP_BYTES));
    this.tcpView = new TcpConnectionState(this.tcpWordPages[0], this.tcpBytePages[0], 0);
    table.onSlotsGrown = (slots) => this.grow(slots);
    // A destroyed connection reads its rows until its slot goes to another.
    table.onSlotRetaken = (connection) => {
      const slot = connection.tableSlot;
      connection.moveOut();
      this.releaseTcp(slot);
    };
  }

  /** A new connection with a row (and table slot) of its own, not yet in the table's chains. */
  newConnection(): Connection {
    const connection = new Connection(this);
    this.table.reserve(connection);
    const slot = connection.tableSlot;
    const numbers = this.numberPages[slot >>> PAGE_SHIFT];
    const at = (slot & PAGE_MASK) * NUMBER_FIELDS;
    // Element stores, not fill(): this runs per new connection.
    numbers[at] = numbers[at + 1] = numbers[at + 2] = numbers[at + 3] = numbers[at + 4] = 0;
    this.heap.setExpiry(slot, 0);
    return connection;
  }

  /**
   * The TCP data of `connection` (which must be in this store; given a row if it has none) through the
   * one view the engine uses per packet: valid until the next call.
   */
  tcpOf(connection: Connection): TcpConnectionState {
    const slot = connection.tableSlot;
    let row = this.tcpRowPages[slot >>> PAGE_SHIFT][slot & PAGE_MASK] - 1;
    if (row < 0) row = this.takeTcpRow(slot);
    const page = row >>> PAGE_SHIFT;
    return this.tcpView.bind(this.tcpWordPages[page], this.tcpBytePages[page], row & PAGE_MASK);
  }

  number(slot: number, field: number): number {
    return this.numberPages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * NUMBER_FIELDS + field];
  }

  setNumber(slot: number, field: number, value: number): void {
    this.numberPages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * NUMBER_FIELDS + field] = value;
  }

  tcpStateOf(slot: number): number {
    const row = this.tcpRowPages[slot >>> PAGE_SHIFT][slot & PAGE_MASK] - 1;
    if (row < 0) return -1;
    return this.tcpBytePages[row >>> PAGE_SHIFT][(row & PAGE_MASK) * TCP_BYTES + TB_STATE];
  }

  tcpViewOf(slot: number): TcpConnectionState | null {
    const row = this.tcpRowPages[slot >>> PAGE_SHIFT][slot & PAGE_MASK] - 1;
    if (row < 0) return null;
    const page = row >>> PAGE_SHIFT;
    return new TcpConnectionState(this.tcpWordPages[page], this.tcpBytePages[page], row & PAGE_MASK);
  }

  setTcp(slot: number, value: TcpConnectionState | null): void {
    if (value === null) {
      this.releaseTcp(slot);
      return;
    }
    let row = this.tcpRowPages[slot >>> PAGE_SHIFT][slot & PAGE_MASK] - 1;
    if (row < 0) row = this.takeTcpRow(slot);
    const page = row >>> PAGE_SHIFT;
    const at = row & PAGE_MASK;
    this.tcpWordPages[page].set(value.words.subarray(value.w, value.w + TCP_WORDS), at * TCP_WORDS);
    this.tcpBytePages[page].set(value.bytes.subarray(value.b, value.b + TCP_BYTES), at * TCP_BYTES);
  }

  /** Gives slot `slot` a TCP row (zeroed: state NONE) and returns it. */
  private takeTcpRow(slot: number): number {
    let row: number;
    if (this.tcpFreeCount > 0) {
      row = this.tcpFree[--this.tcpFreeCount];
    } else {
      row = this.tcpNextFresh++;
      if (row >>> PAGE_SHIFT >= this.tcpWordPages.length) {
        this.tcpWordPages.push(new Int32Array(PAGE_SLOTS * TCP_WORDS));
        this.tcpBytePages.push(new Uint8Array(PAGE_SLOTS * TCP_BYTES));
      }
    }
    const page = row >>> PAGE_SHIFT;
    const at = row & PAGE_MASK;
    this.tcpWordPages[page].fill(0, at * TCP_WORDS, at * TCP_WORDS + TCP_WORDS);
    this.tcpBytePages[page].fill(0, at * TCP_BYTES, at * TCP_BYTES + TCP_BYTES);
    this.tcpRowPages[slot >>> PAGE_SHIFT][slot & PAGE_MASK] = row + 1;
    return row;
  }

  /** Slot `slot` gives back its TCP row, if it has one. */
  private releaseTcp(slot: number): void {
    const rows = this.tcpRowPages[slot >>> PAGE_SHIFT];
    const row = rows[slot & PAGE_MASK] - 1;
    if (row < 0) return;
    rows[slot & PAGE_MASK] = 0;
    if (this.tcpFreeCount === this.tcpFree.length) {
      const free = new Int32Array(this.tcpFree.length * 2);
      free.set(this.tcpFree);
      this.tcpFree = free;
    }
    this.tcpFree[this.tcpFreeCount++] = row;
  }

  tupleOf(node: number, out: Tuple): Tuple {
    return this.table.tupleOf(node, out);
  }

  tuple(node: number): Tuple {
    return this.table.tupleOf(node, new Tuple());
  }

  writeTuple(node: number, tuple: Tuple): void {
    this.table.writeTuple(node, tuple);
  }

  protocolOf(slot: number): number {
    return this.table.protocolOf(slot);
  }

  expiresAt(slot: number): number {
    return this.heap.expiryAt(slot);
  }

  setExpiresAt(slot: number, at: number): void {
    this.heap.setExpiry(slot, at);
  }

  /** Adds pages until there are rows for `slots` slots. */
  private grow(slots: number): void {
    while (this.numberPages.length * PAGE_SLOTS < slots) {
      this.numberPages.push(new Float64Array(PAGE_SLOTS * NUMBER_FIELDS));
      this.tcpRowPages.push(new Int32Array(PAGE_SLOTS));
    }
    this.heap.ensureSlots(slots);
  }
}
