/**
 * An engine's live connections' data in typed arrays, a row per table slot (the slot the table gives
 * a connection indexes its keys, the expiry heap's arrays and these): status, event bits, counters,
 * times and TCP tracker data. A live connection's object is then a handle of a few fields; its
 * accessors read the row. Rows grow with the table's slots.
 */
import {
  Connection,
  ROW_EXPIRES,
  TB_STATE,
  TCP_BYTES,
  TCP_NONE,
  TCP_WORDS,
  TcpConnectionState,
  type ConnectionRows,
  type Tuple,
} from "./connection.js";
import type { ConnectionTable, ExpiryHeap } from "./table.js";

export class ConnectionStore implements ConnectionRows {
  counters: Float64Array;
  times: Float64Array;
  tcpWords: Int32Array;
  tcpBytes: Uint8Array;
  /** The engine's view of one connection's TCP data (see `tcpOf`). */
  private readonly tcpView: TcpConnectionState;

  constructor(
    private readonly table: ConnectionTable,
    private readonly heap: ExpiryHeap,
  ) {
    const rows = table.slotCapacity;
    this.counters = new Float64Array(rows * 4);
    this.times = new Float64Array(rows * 3);
    this.tcpWords = new Int32Array(rows * TCP_WORDS);
    this.tcpBytes = new Uint8Array(rows * TCP_BYTES);
    this.tcpView = new TcpConnectionState(this.tcpWords, this.tcpBytes, 0);
    table.onSlotsGrown = (slots) => this.grow(slots);
    // A destroyed connection reads its row until the row goes to another.
    table.onSlotRetaken = (connection) => connection.moveOut();
  }

  /** A new connection with a row (and table slot) of its own, not yet in the table's chains. */
  newConnection(): Connection {
    const connection = new Connection(this);
    this.table.reserve(connection);
    const slot = connection.tableSlot;
    // Element stores, not fill(): this runs per new connection.
    const counters = this.counters;
    counters[slot * 4] = counters[slot * 4 + 1] = counters[slot * 4 + 2] = counters[slot * 4 + 3] = 0;
    const times = this.times;
    times[slot * 3] = times[slot * 3 + 1] = times[slot * 3 + 2] = 0;
    this.tcpBytes[slot * TCP_BYTES + TB_STATE] = TCP_NONE;
    return connection;
  }

  /**
   * The TCP data of `connection` (which must be in this store and have some) through the one view
   * the engine uses per packet: valid until the next call.
   */
  tcpOf(connection: Connection): TcpConnectionState {
    return this.tcpView.bind(this.tcpWords, this.tcpBytes, connection.tableSlot);
  }

  tupleOf(node: number, out: Tuple): Tuple {
    return this.table.tupleOf(node, out);
  }

  writeTuple(node: number, tuple: Tuple): void {
    this.table.writeTuple(node, tuple);
  }

  protocolOf(slot: number): number {
    return this.table.protocolOf(slot);
  }

  expiresAt(slot: number): number {
    return this.heap.contains(slot) ? this.heap.expiryAt(slot) : this.times[slot * 3 + ROW_EXPIRES];
  }

  setExpiresAt(slot: number, at: number): void {
    if (this.heap.contains(slot)) this.heap.setExpiry(slot, at);
    else this.times[slot * 3 + ROW_EXPIRES] = at;
  }

  private grow(rows: number): void {
    this.counters = grown(this.counters, new Float64Array(rows * 4));
    this.times = grown(this.times, new Float64Array(rows * 3));
    this.tcpWords = grown(this.tcpWords, new Int32Array(rows * TCP_WORDS));
    this.tcpBytes = grown(this.tcpBytes, new Uint8Array(rows * TCP_BYTES));
  }
}

function grown<T extends Int32Array | Uint8Array | Float64Array>(old: T, fresh: T): T {
  fresh.set(old as never);
  return fresh;
}
