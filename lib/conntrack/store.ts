/**
 * An engine's live connections' data in typed arrays: a row of `ROW_DOUBLES` doubles (128 bytes, two
 * cache lines) per table slot, the slot the table gives a connection (which also indexes its keys):
 * the expiry heap's fields, the counters and start time, then the TCP tracker data (`TCP_ROW_WORDS`
 * words from `ROW_TCP_WORD`), so what a packet updates sits together. A live connection's object is
 * then a handle of a few fields whose accessors read the row. The rows are the heap's pages (see
 * `PAGE_SLOTS`), with 32-bit and byte views of the same buffers; pages are added, never copied.
 */
import {
  Connection,
  N_LAST_SEEN,
  N_STARTED,
  ROW_DOUBLES,
  ROW_TCP_WORD,
  TB_STATE,
  TCP_BYTE_BASE,
  TCP_NONE,
  TCP_ROW_WORDS,
  TcpConnectionState,
  Tuple,
  type ConnectionRows,
} from "./connection.js";
import { PAGE_MASK, PAGE_SHIFT, type ConnectionTable, type ExpiryHeap } from "./table.js";

/** 32-bit words and bytes per row. */
const ROW_WORDS = ROW_DOUBLES * 2;
const ROW_BYTES = ROW_DOUBLES * 8;

export class ConnectionStore implements ConnectionRows {
  /** 32-bit and byte views of the heap's pages (the rows). */
  private readonly wordPages: Int32Array[] = [];
  private readonly bytePages: Uint8Array[] = [];
  /** The engine's view of one connection's TCP data (see `tcpOf`). */
  private readonly tcpView = new TcpConnectionState();

  constructor(
    private readonly table: ConnectionTable,
    readonly heap: ExpiryHeap,
  ) {
    this.grow(table.slotCapacity);
    table.onSlotsGrown = (slots) => this.grow(slots);
    // A destroyed connection reads its row until its slot goes to another.
    table.onSlotRetaken = (connection) => connection.moveOut();
  }

  /** A new connection with a row (and table slot) of its own, not yet in the table's chains. */
  newConnection(): Connection {
    const connection = new Connection(this);
    this.table.reserve(connection);
    const slot = connection.tableSlot;
    this.heap.setExpiry(slot, 0);
    const numbers = this.heap.pages[slot >>> PAGE_SHIFT];
    const at = (slot & PAGE_MASK) * ROW_DOUBLES;
    // Element stores, not fill(): this runs per new connection.
    for (let field = N_LAST_SEEN; field <= N_STARTED; field++) numbers[at + field] = 0;
    this.bytePages[slot >>> PAGE_SHIFT][this.tcpByte(slot) + TB_STATE] = TCP_NONE;
    return connection;
  }

  /**
   * The TCP data of `connection` (which must be in this store) through the one view the engine uses
   * per packet: valid until the next call.
   */
  tcpOf(connection: Connection): TcpConnectionState {
    return this.bindTcp(this.tcpView, connection.tableSlot);
  }

  number(slot: number, field: number): number {
    return this.heap.pages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * ROW_DOUBLES + field];
  }

  setNumber(slot: number, field: number, value: number): void {
    this.heap.pages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * ROW_DOUBLES + field] = value;
  }

  tcpStateOf(slot: number): number {
    const state = this.bytePages[slot >>> PAGE_SHIFT][this.tcpByte(slot) + TB_STATE];
    return state === TCP_NONE ? -1 : state;
  }

  tcpViewOf(slot: number): TcpConnectionState | null {
    return this.tcpStateOf(slot) < 0 ? null : this.bindTcp(new TcpConnectionState(), slot);
  }

  setTcp(slot: number, value: TcpConnectionState | null): void {
    const page = slot >>> PAGE_SHIFT;
    if (value === null) {
      this.bytePages[page][this.tcpByte(slot) + TB_STATE] = TCP_NONE;
      return;
    }
    this.wordPages[page].set(value.words.subarray(value.w, value.w + TCP_ROW_WORDS), this.tcpWord(slot));
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

  /** Points `view` at slot `slot`'s TCP data. */
  private bindTcp(view: TcpConnectionState, slot: number): TcpConnectionState {
    const page = slot >>> PAGE_SHIFT;
    return view.bind(this.wordPages[page], this.bytePages[page], this.tcpWord(slot), this.tcpByte(slot));
  }

  /** First 32-bit word of slot `slot`'s TCP data within its page. */
  private tcpWord(slot: number): number {
    return (slot & PAGE_MASK) * ROW_WORDS + ROW_TCP_WORD;
  }

  /** First byte of slot `slot`'s TCP bytes within its page. */
  private tcpByte(slot: number): number {
    return (slot & PAGE_MASK) * ROW_BYTES + ROW_TCP_WORD * 4 + TCP_BYTE_BASE;
  }

  /** Makes rows for `slots` slots (the heap adds pages; this makes their views). */
  private grow(slots: number): void {
    this.heap.ensureSlots(slots);
    for (let page = this.wordPages.length; page < this.heap.pages.length; page++) {
      const buffer = this.heap.pages[page].buffer;
      this.wordPages.push(new Int32Array(buffer));
      this.bytePages.push(new Uint8Array(buffer));
    }
  }
}
