/**
 * An engine's live connections' data in typed arrays, a row per table slot (the slot the table gives
 * a connection indexes its keys, the expiry heap's pages and these): counters and start time; the
 * expiry is the heap's. TCP tracker data has rows of its own, only for TCP connections, found from
 * the slot. A live connection's object is then a handle of a few fields whose accessors read the
 * rows. Rows come in pages of `PAGE_SLOTS`, added as needed, never copied.
 */
import {
  Connection,
  N_ORIGINAL_PACKETS,
  N_STARTED,
  ROW_DOUBLES,
  TB_STATE,
  TCP_BYTE_BASE,
  TCP_ROW_WORDS,
  TcpConnectionState,
  type ConnectionRows,
  Tuple,
} from "./connection.js";
import { PAGE_MASK, PAGE_SHIFT, PAGE_SLOTS, type ConnectionTable, type ExpiryHeap } from "./table.js";

export class ConnectionStore implements ConnectionRows {
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
    this.addTcpPage();
    this.tcpView = new TcpConnectionState(this.tcpWordPages[0], this.tcpBytePages[0], 0);
    table.onSlotsGrown = (slots) => this.grow(slots);
    // A destroyed connection reads its rows until its slot goes to another.
    table.onSlotRetaken = (connection) => {
      connection.moveOut();
      this.releaseTcp(connection);
    };
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
    for (let field = N_ORIGINAL_PACKETS; field <= N_STARTED; field++) numbers[at + field] = 0;
    return connection;
  }

  /**
   * The TCP data of `connection` (which must be in this store; given a row if it has none) through the
   * one view the engine uses per packet: valid until the next call.
   */
  tcpOf(connection: Connection): TcpConnectionState {
    let row = connection.tcpRow - 1;
    if (row < 0) row = this.takeTcpRow(connection);
    const page = row >>> PAGE_SHIFT;
    return this.tcpView.bind(this.tcpWordPages[page], this.tcpBytePages[page], row & PAGE_MASK);
  }

  number(slot: number, field: number): number {
    return this.heap.pages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * ROW_DOUBLES + field];
  }

  setNumber(slot: number, field: number, value: number): void {
    this.heap.pages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * ROW_DOUBLES + field] = value;
  }

  tcpStateOf(slot: number): number {
    const row = this.table.entryAt(slot)!.tcpRow - 1;
    if (row < 0) return -1;
    return this.tcpBytePages[row >>> PAGE_SHIFT][
      (row & PAGE_MASK) * TCP_ROW_WORDS * 4 + TCP_BYTE_BASE + TB_STATE
    ];
  }

  tcpViewOf(slot: number): TcpConnectionState | null {
    const row = this.table.entryAt(slot)!.tcpRow - 1;
    if (row < 0) return null;
    const page = row >>> PAGE_SHIFT;
    return new TcpConnectionState(this.tcpWordPages[page], this.tcpBytePages[page], row & PAGE_MASK);
  }

  setTcp(slot: number, value: TcpConnectionState | null): void {
    const connection = this.table.entryAt(slot)!;
    if (value === null) {
      this.releaseTcp(connection);
      return;
    }
    let row = connection.tcpRow - 1;
    if (row < 0) row = this.takeTcpRow(connection);
    const page = row >>> PAGE_SHIFT;
    const at = row & PAGE_MASK;
    this.tcpWordPages[page].set(value.words.subarray(value.w, value.w + TCP_ROW_WORDS), at * TCP_ROW_WORDS);
  }

  /** Gives `connection` a TCP row (zeroed: state NONE) and returns it. */
  private takeTcpRow(connection: Connection): number {
    let row: number;
    if (this.tcpFreeCount > 0) {
      row = this.tcpFree[--this.tcpFreeCount];
    } else {
      row = this.tcpNextFresh++;
      if (row >>> PAGE_SHIFT >= this.tcpWordPages.length) this.addTcpPage();
    }
    const page = row >>> PAGE_SHIFT;
    const at = row & PAGE_MASK;
    this.tcpWordPages[page].fill(0, at * TCP_ROW_WORDS, (at + 1) * TCP_ROW_WORDS);
    connection.tcpRow = row + 1;
    return row;
  }

  /** `connection` gives back its TCP row, if it has one. */
  private releaseTcp(connection: Connection): void {
    const row = connection.tcpRow - 1;
    if (row < 0) return;
    connection.tcpRow = 0;
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

  /** A page of TCP rows: words and bytes are two views of one buffer (see `TCP_ROW_WORDS`). */
  private addTcpPage(): void {
    const words = new Int32Array(PAGE_SLOTS * TCP_ROW_WORDS);
    this.tcpWordPages.push(words);
    this.tcpBytePages.push(new Uint8Array(words.buffer));
  }

  /** Adds pages until there are rows for `slots` slots. */
  private grow(slots: number): void {
    this.heap.ensureSlots(slots);
  }
}
