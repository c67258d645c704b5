import { PACKET_CLASS_NAMES, PacketClass, type PacketClassName } from "../decode/packet.js";

/**
 * Counts every record read into exactly one class, per input, so that the totals reconcile:
 * the sum over classes equals the records read. Reasons refine the malformed and truncated classes.
 */
export class PacketAccounting {
  private readonly perInput: Float64Array[] = [];
  private readonly reasonCounts = new Map<string, number>();
  private readonly duplicatesPerInput: Float64Array;
  private readonly otherShardPerInput: Float64Array;

  constructor(readonly inputCount: number) {
    for (let i = 0; i < inputCount; i++) this.perInput.push(new Float64Array(PACKET_CLASS_NAMES.length));
    this.duplicatesPerInput = new Float64Array(inputCount);
    this.otherShardPerInput = new Float64Array(inputCount);
  }

  /**
   * A decoded packet another shard tracks (`--shard`): counted `decoded`, never given to this run's
   * engine, so that decoded = tracked + duplicate sightings + other shards.
   */
  countOtherShard(inputIndex: number): void {
    this.otherShardPerInput[inputIndex]++;
  }

  get otherShards(): number {
    let total = 0;
    for (const n of this.otherShardPerInput) total += n;
    return total;
  }

  /**
   * A decoded packet that was the second sighting of one already seen at another vantage (observed
   * NAT): counted `decoded` as well, but never given to the engine, so that decoded = tracked +
   * duplicate sightings.
   */
  countDuplicateSighting(inputIndex: number): void {
    this.duplicatesPerInput[inputIndex]++;
  }

  duplicateSightingsOf(inputIndex: number): number {
    return this.duplicatesPerInput[inputIndex];
  }

  get duplicateSightings(): number {
    let total = 0;
    for (const n of this.duplicatesPerInput) total += n;
    return total;
  }

  count(inputIndex: number, packetClass: PacketClass, reason: string): void {
    this.perInput[inputIndex][packetClass]++;
    if (packetClass === PacketClass.Malformed || packetClass === PacketClass.Truncated) {
      const key = `${PACKET_CLASS_NAMES[packetClass]}: ${reason}`;
      this.reasonCounts.set(key, (this.reasonCounts.get(key) ?? 0) + 1);
    }
  }

  recordsOf(inputIndex: number): number {
    let total = 0;
    for (const n of this.perInput[inputIndex]) total += n;
    return total;
  }

  get records(): number {
    let total = 0;
    for (let i = 0; i < this.inputCount; i++) total += this.recordsOf(i);
    return total;
  }

  classesOf(inputIndex: number): Record<PacketClassName, number> {
    return toClassRecord(this.perInput[inputIndex]);
  }

  get classes(): Record<PacketClassName, number> {
    const sums = new Float64Array(PACKET_CLASS_NAMES.length);
    for (const counts of this.perInput) for (let c = 0; c < counts.length; c++) sums[c] += counts[c];
    return toClassRecord(sums);
  }

  /** "malformed: reason" and "truncated: reason" keys with their counts, most frequent first. */
  get reasons(): Record<string, number> {
    const sorted = [...this.reasonCounts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    return Object.fromEntries(sorted);
  }
}

function toClassRecord(counts: Float64Array): Record<PacketClassName, number> {
  const result = {} as Record<PacketClassName, number>;
  PACKET_CLASS_NAMES.forEach((name, index) => (result[name] = counts[index]));
  return result;
}
