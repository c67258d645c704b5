/**
 * `summary.json`: the packet accounting (it reconciles: records = the sum of the classes, decoded =
 * the sum of the engine's verdicts), connections by protocol, final state and end reason, orphans by
 * reason, the top talkers, the capture's span, and the options and timeouts the model ran with.
 */
import { PACKET_CLASS_NAMES } from "../decode/packet.js";
import { VERDICT_NAMES } from "../conntrack/engine.js";
import type { ReplayResult } from "../pipeline/replay.js";
import type { InputOrderStats } from "../pipeline/inputs.js";
import type { ShardSelection } from "../pipeline/shard.js";
import { natKind, type FlowEnd, type FlowRecord } from "./flows.js";
import { tupleAddress } from "./packet-tuple.js";
import { formatIpv4 } from "../conntrack/address.js";
import type { OrphanTracker } from "./orphans.js";
import { isoTimeNs, protocolName } from "./event-formats.js";

/**
 * The heaviest keys of a stream in bounded memory: at most 2 × `capacity` counters; when full, the
 * lighter half is dropped and the heaviest weight dropped becomes the most any key's total can be
 * missing (a key dropped and seen again starts over). Keys heavier than that are exact.
 *
 * Counts are in typed arrays by counter index, reused once dropped, and a key may be a number (an IPv4
 * address word) named by `label` only when the top is asked for: counting allocates nothing per key
 * but the Map's entry (counters that live a while and then die by the thousand would fill the old
 * generation).
 */
export class TopCounter {
  private readonly indexOf = new Map<string | number, number>();
  private readonly keys: (string | number)[] = [];
  private readonly weights: Float64Array;
  private readonly packets: Float64Array;
  private readonly flows: Float64Array;
  private readonly freeIndices: number[] = [];
  /** The most weight a listed key may be missing (0 while nothing was dropped). */
  undercountAtMost = 0;

  constructor(
    readonly capacity: number,
    /** The text a key is listed as (default: the key itself). */
    private readonly label: (key: string | number) => string = String,
  ) {
    this.weights = new Float64Array(capacity * 2);
    this.packets = new Float64Array(capacity * 2);
    this.flows = new Float64Array(capacity * 2);
  }

  add(key: string | number, weight: number, packets: number): void {
    let index = this.indexOf.get(key);
    if (index === undefined) {
      index = this.freeIndices.length > 0 ? this.freeIndices.pop()! : this.keys.length;
      this.keys[index] = key;
      this.weights[index] = this.packets[index] = this.flows[index] = 0;
      this.indexOf.set(key, index);
    }
    this.weights[index] += weight;
    this.packets[index] += packets;
    this.flows[index]++;
    if (this.indexOf.size >= this.capacity * 2) this.prune();
  }

  private prune(): void {
    // By weight, heaviest first; equal weights in the order the keys came (the Map's).
    const sorted = [...this.indexOf.values()].sort((a, b) => this.weights[b] - this.weights[a]);
    for (let i = this.capacity; i < sorted.length; i++) {
      const index = sorted[i];
      this.indexOf.delete(this.keys[index]);
      this.freeIndices.push(index);
      if (this.weights[index] > this.undercountAtMost) this.undercountAtMost = this.weights[index];
    }
  }

  /** The `n` heaviest, heaviest first (ties by key). */
  top(n: number): { key: string; weight: number; packets: number; flows: number }[] {
    return [...this.indexOf.values()]
      .map((index) => ({
        key: this.label(this.keys[index]),
        weight: this.weights[index],
        packets: this.packets[index],
        flows: this.flows[index],
      }))
      .sort((a, b) => b.weight - a.weight || a.key.localeCompare(b.key))
      .slice(0, n);
  }
}

function increment(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

function sortedCounts(map: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(map).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
}

export interface SummaryOptions {
  /** How many top talkers to list (default 20) and how many counters to keep for them (default 1000). */
  topTalkers?: number;
  talkerCounters?: number;
}

/** Collects flow statistics as records stream by; `build` adds the replay's accounting. */
export class SummaryBuilder {
  private readonly byProtocol: Record<string, number> = {};
  private readonly byFinalState: Record<string, number> = {};
  private readonly byEndReason: Record<string, number> = {};
  private readonly byNat: Record<string, number> = {};
  private readonly talkers: TopCounter;
  private readonly topCount: number;
  flows = 0;
  assured = 0;
  unreplied = 0;
  related = 0;

  constructor(options: SummaryOptions = {}) {
    this.topCount = options.topTalkers ?? 20;
    // IPv4 addresses counted from a flow's state are their words (see `addFlowEnd`).
    this.talkers = new TopCounter(options.talkerCounters ?? 5000, (key) =>
      typeof key === "number" ? formatIpv4(key) : key,
    );
  }

  addFlow(record: FlowRecord): void {
    this.tally(
      record.protocol,
      record.finalState,
      record.endReason,
      record.nat,
      record.flags.includes("ASSURED"),
      record.flags.includes("UNREPLIED"),
      record.flags.includes("RELATED"),
      record.originalBytes + record.replyBytes,
      record.originalPackets + record.replyPackets,
      record.original.src,
      record.original.dst,
    );
  }

  /** `addFlow` of the flow's record, read from its state (no record built). */
  addFlowEnd(end: FlowEnd): void {
    const connection = end.connection!;
    const original = end.original!;
    this.tally(
      protocolName(connection.protocol),
      end.finalState,
      end.endReason,
      natKind(original, end.reply!),
      connection.assured,
      !connection.seenReply,
      connection.expected || connection.masterId > 0,
      connection.originalBytes + connection.replyBytes,
      connection.originalPackets + connection.replyPackets,
      original.family === 4 ? original.src0 : tupleAddress(original, "src"),
      original.family === 4 ? original.dst0 : tupleAddress(original, "dst"),
    );
  }

  private tally(
    protocol: string,
    finalState: string,
    endReason: string,
    nat: string,
    assured: boolean,
    unreplied: boolean,
    related: boolean,
    bytes: number,
    packets: number,
    src: string | number,
    dst: string | number,
  ): void {
    this.flows++;
    increment(this.byProtocol, protocol);
    increment(this.byFinalState, `${protocol} ${finalState}`);
    increment(this.byEndReason, endReason);
    increment(this.byNat, nat);
    if (assured) this.assured++;
    if (unreplied) this.unreplied++;
    if (related) this.related++;
    this.addTalkers(src, dst, bytes, packets);
  }

  /** Counts a flow's bytes and packets for its two addresses' top-talker totals (once when they are one). */
  addTalkers(src: string | number, dst: string | number, bytes: number, packets: number): void {
    this.talkers.add(src, bytes, packets);
    if (dst !== src) this.talkers.add(dst, bytes, packets);
  }

  /**
   * The top talkers of the flows added so far. Talkers span shards (an address talks to hosts of every
   * shard), so merging shard reports feeds the merged flows through a builder of its own and asks this.
   */
  topTalkers(): Pick<ReportSummary, "topTalkers" | "topTalkersUndercountAtMost"> {
    return {
      topTalkers: this.talkers.top(this.topCount).map((talker) => ({
        address: talker.key,
        bytes: talker.weight,
        packets: talker.packets,
        flows: talker.flows,
      })),
      topTalkersUndercountAtMost: this.talkers.undercountAtMost,
    };
  }

  /** `orphans` null: they were not tracked (a shard's report written for files that do not need them). */
  build(result: ReplayResult, orphans: OrphanTracker | null, extra: Record<string, unknown>): ReportSummary {
    const classes = result.accounting.classes;
    const classSum = PACKET_CLASS_NAMES.reduce((sum, name) => sum + classes[name], 0);
    const stats = result.engine.stats;
    const verdicts: Record<string, number> = {};
    VERDICT_NAMES.forEach((name, index) => (verdicts[name] = stats.verdicts[index]));
    const verdictSum = stats.verdicts.reduce((sum, n) => sum + n, 0);
    const first = result.first;
    const last = result.last;
    return {
      packets: {
        records: result.records,
        classes,
        classReasons: result.accounting.reasons,
        decoded: result.tracked,
        verdicts,
        verdictReasons: sortedCounts(Object.fromEntries(stats.reasons)),
        tcpAcceptedWithoutUpdate: stats.tcpIgnored,
        earlierThanClock: stats.timeWentBack,
        ...(result.observedNat ? { duplicateSightings: result.accounting.duplicateSightings } : {}),
        ...(result.shard ? { shard: result.shard, otherShards: result.accounting.otherShards } : {}),
        reconciles: {
          records: classSum === result.records,
          decoded:
            classes.decoded ===
              result.tracked + result.accounting.duplicateSightings + result.accounting.otherShards &&
            verdictSum === result.tracked,
        },
      },
      connections: {
        total: this.flows,
        created: stats.connectionsCreated,
        liveAtEnd: this.byEndReason.live ?? 0,
        mostLiveAtOnce: stats.maxLive,
        assured: this.assured,
        unreplied: this.unreplied,
        related: this.related,
        byProtocol: sortedCounts(this.byProtocol),
        byFinalState: sortedCounts(this.byFinalState),
        byEndReason: sortedCounts(this.byEndReason),
        byNat: sortedCounts(this.byNat),
      },
      orphans:
        orphans === null
          ? null
          : {
              total: orphans.count,
              byKind: sortedCounts(Object.fromEntries(orphans.byKind)),
              byReason: sortedCounts(Object.fromEntries(orphans.byReason)),
            },
      events: { ...stats.events },
      expectations: {
        created: stats.expectations.created,
        used: stats.expectations.used,
        expired: stats.expectations.expired,
        liveAtEnd: result.engine.liveExpectations,
        events: { ...result.expectEvents },
      },
      ...this.topTalkers(),
      capture: {
        inputs: result.inputNames.map((name, index) => ({
          file: name,
          records: result.accounting.recordsOf(index),
        })),
        firstPacket: first === null ? null : isoTimeNs(first.tsSec, first.tsNsec),
        lastPacket: last === null ? null : isoTimeNs(last.tsSec, last.tsNsec),
        spanSeconds:
          first === null || last === null
            ? 0
            : Number((last.tsSec - first.tsSec + (last.tsNsec - first.tsNsec) / 1e9).toFixed(9)),
        stoppedEarly: result.stoppedEarly,
        order: result.order ?? null,
        warnings: result.warnings.map((warning) => ({ ...warning })),
      },
      settings: { ...result.engine.settings },
      ...extra,
    };
  }
}

export interface ReportSummary {
  packets: {
    records: number;
    classes: Record<string, number>;
    classReasons: Record<string, number>;
    decoded: number;
    verdicts: Record<string, number>;
    verdictReasons: Record<string, number>;
    tcpAcceptedWithoutUpdate: number;
    earlierThanClock: number;
    /**
     * Observed NAT only: decoded packets that were a second sighting of one seen at another vantage,
     * not tracked (decoded = tracked + these).
     */
    duplicateSightings?: number;
    shard?: ShardSelection;
    otherShards?: number;
    reconciles: { records: boolean; decoded: boolean };
  };
  connections: {
    total: number;
    created: number;
    liveAtEnd: number;
    mostLiveAtOnce: number;
    assured: number;
    unreplied: number;
    related: number;
    byProtocol: Record<string, number>;
    byFinalState: Record<string, number>;
    byEndReason: Record<string, number>;
    byNat: Record<string, number>;
  };
  /**
   * Null in a shard's report written with `--only` files that need no orphans (its summary.json is
   * there for the merge): they were not tracked.
   */
  orphans: { total: number; byKind: Record<string, number>; byReason: Record<string, number> } | null;
  events: { NEW: number; UPDATE: number; DESTROY: number };
  expectations: {
    created: number;
    used: number;
    expired: number;
    liveAtEnd: number;
    events: { NEW: number; DESTROY: number };
  };
  topTalkers: { address: string; bytes: number; packets: number; flows: number }[];
  /** Bytes a listed talker may be missing because the bounded counter dropped it once (0: exact). */
  topTalkersUndercountAtMost: number;
  capture: {
    inputs: { file: string; records: number }[];
    firstPacket: string | null;
    lastPacket: string | null;
    spanSeconds: number;
    stoppedEarly: boolean;
    /** Records out of time order as read, and what `--reorder-window` did with them. */
    order: InputOrderStats | null;
    warnings: object[];
  };
  settings: Record<string, number>;
  [key: string]: unknown;
}
