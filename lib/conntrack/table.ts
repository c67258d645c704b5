/**
 * The connection table (a chained hash over both tuples of every connection, so a packet finds its
 * connection from either direction) and the expiry heap (a binary min-heap on expiry time with lazy
 * raising, so refreshing a timer per packet is a field write).
 */
import { Connection, Tuple, TupleNode } from "./connection.js";

const INITIAL_BUCKETS = 1024;

export class ConnectionTable {
  private buckets: (TupleNode | null)[] = new Array<TupleNode | null>(INITIAL_BUCKETS).fill(null);
  private mask = INITIAL_BUCKETS - 1;
  /** Connections in the table (each holds two nodes). */
  size = 0;

  /** The node whose tuple equals `probe`, or null. Allocates nothing. */
  find(probe: Tuple): TupleNode | null {
    const hash = probe.hash();
    let node = this.buckets[hash & this.mask];
    while (node !== null) {
      if (node.hash === hash && node.tuple.equals(probe)) return node;
      node = node.next;
    }
    return null;
  }

  insert(connection: Connection): void {
    if ((this.size + 1) * 2 > this.buckets.length) this.grow();
    this.link(connection.originalNode, connection.original.hash());
    this.link(connection.replyNode, connection.reply.hash());
    this.size++;
  }

  remove(connection: Connection): void {
    this.unlink(connection.originalNode);
    this.unlink(connection.replyNode);
    this.size--;
  }

  *connections(): IterableIterator<Connection> {
    for (const head of this.buckets) {
      for (let node = head; node !== null; node = node.next) {
        if (node.direction === 0) yield node.connection;
      }
    }
  }

  private link(node: TupleNode, hash: number): void {
    node.hash = hash;
    const index = hash & this.mask;
    node.next = this.buckets[index];
    this.buckets[index] = node;
  }

  private unlink(node: TupleNode): void {
    const index = node.hash & this.mask;
    let previous: TupleNode | null = null;
    for (let current = this.buckets[index]; current !== null; current = current.next) {
      if (current === node) {
        if (previous === null) this.buckets[index] = node.next;
        else previous.next = node.next;
        node.next = null;
        return;
      }
      previous = current;
    }
  }

  private grow(): void {
    const old = this.buckets;
    this.buckets = new Array<TupleNode | null>(old.length * 2).fill(null);
    this.mask = this.buckets.length - 1;
    for (const head of old) {
      let node = head;
      while (node !== null) {
        const next = node.next;
        const index = node.hash & this.mask;
        node.next = this.buckets[index];
        this.buckets[index] = node;
        node = next;
      }
    }
  }
}

/**
 * Min-heap of connections keyed by `heapKey`. A connection's key may lag behind a later
 * `expiresAt` (refreshes only write the field); `popExpired` re-files such entries. Shortened
 * timeouts must call `update` so the key never runs late.
 */
export class ExpiryHeap {
  private items: Connection[] = [];

  get size(): number {
    return this.items.length;
  }

  push(connection: Connection): void {
    connection.heapKey = connection.expiresAt;
    connection.heapIndex = this.items.length;
    this.items.push(connection);
    this.siftUp(connection.heapIndex);
  }

  /** Call after `expiresAt` changed: moves the key earlier at once, later only lazily. */
  update(connection: Connection): void {
    if (connection.expiresAt < connection.heapKey) {
      connection.heapKey = connection.expiresAt;
      this.siftUp(connection.heapIndex);
    }
  }

  remove(connection: Connection): void {
    const index = connection.heapIndex;
    if (index < 0) return;
    const last = this.items.pop()!;
    connection.heapIndex = -1;
    if (last === connection) return;
    this.items[index] = last;
    last.heapIndex = index;
    this.siftDown(index);
    this.siftUp(last.heapIndex);
  }

  /**
   * The connection that expires first at or before `now`, removed from the heap, or null. Entries
   * whose key is due but whose real expiry moved later are re-filed on the way.
   */
  popExpired(now: number): Connection | null {
    while (this.items.length > 0) {
      const top = this.items[0];
      if (top.heapKey > now) return null;
      if (top.expiresAt > top.heapKey) {
        top.heapKey = top.expiresAt;
        this.siftDown(0);
        continue;
      }
      this.remove(top);
      return top;
    }
    return null;
  }

  private siftUp(index: number): void {
    const items = this.items;
    const item = items[index];
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = items[parentIndex];
      if (!ExpiryHeap.before(item, parent)) break;
      items[index] = parent;
      parent.heapIndex = index;
      index = parentIndex;
    }
    items[index] = item;
    item.heapIndex = index;
  }

  private siftDown(index: number): void {
    const items = this.items;
    const length = items.length;
    const item = items[index];
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      const child = right < length && ExpiryHeap.before(items[right], items[left]) ? right : left;
      if (!ExpiryHeap.before(items[child], item)) break;
      items[index] = items[child];
      items[index].heapIndex = index;
      index = child;
    }
    items[index] = item;
    item.heapIndex = index;
  }

  /** Earlier key first; equal keys by connection id so simultaneous expiries come out in creation order. */
  private static before(a: Connection, b: Connection): boolean {
    return a.heapKey < b.heapKey || (a.heapKey === b.heapKey && a.id < b.id);
  }
}
