import { copyCaptureRecord, emptyCaptureRecord } from "./source.js";
import { IndexHeap } from "./index-heap.js";
/**
 * k-way merge of several capture sources by timestamp.
 *
 * Every input keeps its next record ("head") in its own reused record object; a binary heap of input
 * indices orders the heads by (timestamp, input index), and since an input offers one head at a time
 * its own file order is kept. The merge copies the chosen head's fields into its own record, so the
 * bytes stay those of the input's buffer: that input is advanced only at the following `next()`.
 *
 * When an input runs out of buffered bytes it cannot offer a head, and no minimum can be decided
 * without it: `next()` returns false and the following `fill()` refills just the inputs waiting.
 *
 * Interface ids: merged ids are handed out in the order the merge first sees each input interface
 * (every input's interfaces are taken in at each `fill()`, and at once when a record names one not yet
 * taken in). `interfaces[id]` is the input's own interface object; `interfaceOrigin(id)` tells which
 * input and which of its ids it was.
 */
import type {
  CaptureFormat,
  CaptureInterface,
  CaptureRecord,
  CaptureSource,
  CaptureWarning,
} from "./source.js";

export class MergedSource implements CaptureSource {
  readonly name: string;
  readonly record: CaptureRecord = emptyCaptureRecord();
  readonly interfaces: CaptureInterface[] = [];
  private readonly originInput: number[] = [];
  private readonly originId: number[] = [];
  /** Per input: its interface id → merged id. */
  private readonly interfaceMaps: number[][];
  private readonly heap: IndexHeap;
  /** Inputs that need `fill()` before they can offer a head. */
  private readonly waiting: Int32Array;
  private waitingCount: number;
  /** The input whose head was delivered last, advanced at the next `next()`; -1 for none. */
  private owner = -1;

  constructor(private readonly sources: CaptureSource[]) {
    this.name = sources.map((source) => source.name).join(" + ");
    this.interfaceMaps = sources.map(() => []);
    this.heap = new IndexHeap(sources.length, (a, b) => this.before(a, b));
    this.waiting = new Int32Array(sources.length);
    for (let index = 0; index < sources.length; index++) this.waiting[index] = index;
    this.waitingCount = sources.length;
  }

  get format(): CaptureFormat[] {
    return this.sources.map((source) => source.format as CaptureFormat);
  }

  get compressed(): boolean[] {
    return this.sources.map((source) => source.compressed as boolean);
  }

  get warnings(): CaptureWarning[] {
    return this.sources.flatMap((source) => source.warnings);
  }

  get outOfOrder(): number {
    let total = 0;
    for (const source of this.sources) total += source.outOfOrder;
    return total;
  }

  /** Which input, and which interface id of it, a merged interface id stands for. */
  interfaceOrigin(interfaceId: number): { inputIndex: number; interfaceId: number } {
    return { inputIndex: this.originInput[interfaceId], interfaceId: this.originId[interfaceId] };
  }

  next(): boolean {
    const owner = this.owner;
    if (owner >= 0) {
      this.owner = -1;
      if (this.sources[owner].next()) {
        this.heap.topChanged();
      } else {
        this.heap.pop();
        this.waiting[this.waitingCount++] = owner;
      }
    }
    if (this.waitingCount > 0 || this.heap.size === 0) return false;
    const chosen = this.heap.top;
    const from = this.sources[chosen].record;
    const record = this.record;
    copyCaptureRecord(record, from);
    const map = this.interfaceMaps[chosen];
    if (from.interfaceId >= map.length) this.takeInInterfaces(chosen);
    record.interfaceId = map[from.interfaceId];
    record.inputIndex = chosen;
    this.owner = chosen;
    return true;
  }

  async fill(): Promise<boolean> {
    // The delivered record is released by this call: advance its input first.
    if (this.owner >= 0) {
      const owner = this.owner;
      this.owner = -1;
      if (this.sources[owner].next()) this.heap.topChanged();
      else {
        this.heap.pop();
        this.waiting[this.waitingCount++] = owner;
      }
    }
    const count = this.waitingCount;
    this.waitingCount = 0;
    for (let slot = 0; slot < count; slot++) {
      const index = this.waiting[slot];
      const source = this.sources[index];
      let hasHead = source.next();
      while (!hasHead) {
        const more = await source.fill();
        hasHead = source.next();
        if (!more) break;
      }
      if (hasHead) this.heap.push(index);
    }
    for (let index = 0; index < this.sources.length; index++) this.takeInInterfaces(index);
    return this.heap.size > 0;
  }

  async close(): Promise<void> {
    await Promise.all(this.sources.map((source) => source.close()));
  }

  private takeInInterfaces(inputIndex: number): void {
    const map = this.interfaceMaps[inputIndex];
    const own = this.sources[inputIndex].interfaces;
    while (map.length < own.length) {
      map.push(this.interfaces.length);
      this.originInput.push(inputIndex);
      this.originId.push(map.length - 1);
      this.interfaces.push(own[map.length - 1]);
    }
  }

  /** Whether input a's head goes before input b's. */
  private before(a: number, b: number): boolean {
    const ra = this.sources[a].record;
    const rb = this.sources[b].record;
    if (ra.tsSec !== rb.tsSec) return ra.tsSec < rb.tsSec;
    if (ra.tsNsec !== rb.tsNsec) return ra.tsNsec < rb.tsNsec;
    return a < b;
  }
}

/** Merges inputs by timestamp (ties: lower input index first, then file order); see MergedSource. */
export function mergeSources(sources: CaptureSource[]): MergedSource {
  return new MergedSource(sources);
}
