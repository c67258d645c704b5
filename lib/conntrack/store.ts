/**
 * An engine's live connections' data in typed arrays: a row of `ROW_DOUBLES` doubles (64 bytes, one
 * cache line) per table slot, the slot the table gives a connection (which also indexes its keys): the
 * expiry heap's fields, the last packet's time, the counters and start time, so what a packet updates
 * sits together. A TCP connection also has a row of tracker data (`TCP_ROW_WORDS` words, one cache line)
 * in TCP pages of its own, found through its slot; other protocols carry none. A live connection's object
 * is then a handle of a few fields whose accessors read the rows. The rows are the heap's pages (see
 * `PAGE_SLOTS`); TCP pages are added likewise, never copied, and freed TCP rows are reused.
 */
import {
  Connection,
  N_LAST_SEEN,
  N_STARTED,
  ROW_DOUBLES,
  TB_STATE,
  TCP_BYTE_BASE,
  TCP_NONE,
  TCP_ROW_WORDS,
  TcpConnectionState,
  Tuple,
  type ConnectionRows,
} from "./connection.js";
import { PAGE_MASK, PAGE_SHIFT, PAGE_SLOTS, type ConnectionTable, type ExpiryHeap } from "./table.js";

/** Bytes per TCP row. */
const TCP_ROW_BYTES = TCP_ROW_WORDS * 4;

export class ConnectionStore implements ConnectionRows {
  /** TCP row index + 1 by slot (0: the slot's connection has no TCP data), a page per `PAGE_SLOTS` slots. */
  private readonly tcpIndexPages: Int32Array[] = [];
  /** TCP rows, `PAGE_SLOTS` a page, as 32-bit words and as bytes (views of the same buffers). */
  private readonly tcpWordPages: Int32Array[] = [];
  private readonly tcpBytePages: Uint8Array[] = [];
  /** Freed TCP rows (a stack), and the first never used. */
  private freeTcp = new Int32Array(64);
  private freeTcpCount = 0;
  private nextFreshTcp = 0;
  /** The engine's view of one connection's TCP data (see `tcpOf`). */
  private readonly tcpView = new TcpConnectionState();

  constructor(
    private readonly table: ConnectionTable,
    readonly heap: ExpiryHeap,
  ) {
    this.grow(table.slotCapacity);
    table.onSlotsGrown = (slots) => this.grow(slots);
    // A destroyed connection reads its rows until its slot goes to another.
    table.onSlotRetaken = (connection) => connection.moveOut();
  }

  /** A new connection with a row (and table slot) of its own, not yet in the table's chains. */
  newConnection(): Connection {
    const connection = new Connection(this);
    // A connection retired from the slot copies its data out first (`onSlotRetaken`).
    this.table.reserve(connection);
    const slot = connection.tableSlot;
    this.heap.setExpiry(slot, 0);
    const numbers = this.heap.pages[slot >>> PAGE_SHIFT];
    const at = (slot & PAGE_MASK) * ROW_DOUBLES;
    // Element stores, not fill(): this runs per new connection.
    for (let field = N_LAST_SEEN; field <= N_STARTED; field++) numbers[at + field] = 0;
    this.table.setIdOf(slot, 0);
    this.freeTcpRow(slot);
    return connection;
  }

  /**
   * The TCP data of `connection` (which must be in this store) through the one view the engine uses
   * per packet: valid until the next call. A connection without TCP data gets a row (its tracker is
   * about to start it; `TB_STATE` says it has not yet).
   */
  tcpOf(connection: Connection): TcpConnectionState {
    return this.bindTcp(this.tcpView, this.tcpRowOf(connection.tableSlot));
  }

  number(slot: number, field: number): number {
    return this.heap.pages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * ROW_DOUBLES + field];
  }

  setNumber(slot: number, field: number, value: number): void {
    this.heap.pages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * ROW_DOUBLES + field] = value;
  }

  tcpStateOf(slot: number): number {
    const index = this.tcpIndexOf(slot);
    if (index < 0) return -1;
    const state =
      this.tcpBytePages[index >>> PAGE_SHIFT][(index & PAGE_MASK) * TCP_ROW_BYTES + TCP_BYTE_BASE + TB_STATE];
    return state === TCP_NONE ? -1 : state;
  }

  tcpViewOf(slot: number): TcpConnectionState | null {
    if (this.tcpStateOf(slot) < 0) return null;
    return this.bindTcp(new TcpConnectionState(), this.tcpIndexOf(slot));
  }

  setTcp(slot: number, value: TcpConnectionState | null): void {
    if (value === null) {
      this.freeTcpRow(slot);
      return;
    }
    const index = this.tcpRowOf(slot);
    this.tcpWordPages[index >>> PAGE_SHIFT].set(
      value.words.subarray(value.w, value.w + TCP_ROW_WORDS),
      (index & PAGE_MASK) * TCP_ROW_WORDS,
    );
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

  idOf(slot: number): number {
    return this.table.idOf(slot);
  }

  setId(slot: number, id: number): void {
    this.table.setIdOf(slot, id);
  }

  /** TCP rows in use (live TCP connections, and retired ones whose slots nobody took yet). */
  get tcpRows(): number {
    return this.nextFreshTcp - this.freeTcpCount;
  }

  /** The index of slot `slot`'s TCP row, -1 when it has none. */
  private tcpIndexOf(slot: number): number {
    return this.tcpIndexPages[slot >>> PAGE_SHIFT][slot & PAGE_MASK] - 1;
  }

  /** The index of slot `slot`'s TCP row, taken (marked not started) when it has none. */
  private tcpRowOf(slot: number): number {
    const index = this.tcpIndexOf(slot);
    return index >= 0 ? index : this.takeTcpRow(slot);
  }

  /** A TCP row for slot `slot` (marked not started); returns its index. */
  private takeTcpRow(slot: number): number {
    let index: number;
    if (this.freeTcpCount > 0) {
      index = this.freeTcp[--this.freeTcpCount];
    } else {
      index = this.nextFreshTcp++;
      if (index >>> PAGE_SHIFT >= this.tcpWordPages.length) {
        const buffer = new ArrayBuffer(PAGE_SLOTS * TCP_ROW_BYTES);
        this.tcpWordPages.push(new Int32Array(buffer));
        this.tcpBytePages.push(new Uint8Array(buffer));
      }
    }
    this.tcpBytePages[index >>> PAGE_SHIFT][(index & PAGE_MASK) * TCP_ROW_BYTES + TCP_BYTE_BASE + TB_STATE] =
      TCP_NONE;
    this.tcpIndexPages[slot >>> PAGE_SHIFT][slot & PAGE_MASK] = index + 1;
    return index;
  }

  /** Gives slot `slot`'s TCP row (if any) back to the pool. */
  private freeTcpRow(slot: number): void {
    const page = this.tcpIndexPages[slot >>> PAGE_SHIFT];
    const index = page[slot & PAGE_MASK] - 1;
    if (index < 0) return;
    page[slot & PAGE_MASK] = 0;
    if (this.freeTcpCount === this.freeTcp.length) {
      const grown = new Int32Array(this.freeTcp.length * 2);
      grown.set(this.freeTcp);
      this.freeTcp = grown;
    }
    this.freeTcp[this.freeTcpCount++] = index;
  }

  /** Points `view` at TCP row `index`. */
  private bindTcp(view: TcpConnectionState, index: number): TcpConnectionState {
    const page = index >>> PAGE_SHIFT;
    const w = (index & PAGE_MASK) * TCP_ROW_WORDS;
    return view.bind(this.tcpWordPages[page], this.tcpBytePages[page], w, w * 4 + TCP_BYTE_BASE);
  }

  /** Makes rows for `slots` slots (the heap adds pages; this adds the TCP index's). */
  private grow(slots: number): void {
    this.heap.ensureSlots(slots);
    while (this.tcpIndexPages.length * PAGE_SLOTS < slots)
      this.tcpIndexPages.push(new Int32Array(PAGE_SLOTS));
  }
}
