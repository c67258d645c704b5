/**
 * A binary min-heap of small integers (input indexes, buffer slots) whose order lives elsewhere: the
 * caller's `before(a, b)` compares what the integers stand for. Fixed capacity, no allocation after
 * construction, so the merge and the reorder window can use it per record.
 */
export class IndexHeap {
  private readonly items: Int32Array;
  size = 0;

  constructor(
    capacity: number,
    private readonly before: (a: number, b: number) => boolean,
  ) {
    this.items = new Int32Array(capacity);
  }

  /** The first integer in order; only meaningful when size > 0. */
  get top(): number {
    return this.items[0];
  }

  push(value: number): void {
    const items = this.items;
    let at = this.size++;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.before(value, items[parent])) break;
      items[at] = items[parent];
      at = parent;
    }
    items[at] = value;
  }

  /** Removes the top. */
  pop(): void {
    const last = this.items[--this.size];
    if (this.size > 0) {
      this.items[0] = last;
      this.topChanged();
    }
  }

  /** Restores the order after what the top stands for moved later (a merge input's next record). */
  topChanged(): void {
    const items = this.items;
    const size = this.size;
    const moving = items[0];
    let at = 0;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= size) break;
      if (child + 1 < size && this.before(items[child + 1], items[child])) child++;
      if (!this.before(items[child], moving)) break;
      items[at] = items[child];
      at = child;
    }
    items[at] = moving;
  }
}
