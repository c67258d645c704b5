/**
 * What `--summary` says of a replay split over workers or shards, added up: the engines' counters summed
 * (`events`, `table` and `report --jobs`), and a shard's replay as a worker returns it.
 */
import type { EngineStats } from "../conntrack/engine.js";
import type { ReplayResult } from "./replay.js";

/** What `ReplayResult.engine` gives, summed over the workers. */
export interface EngineSummary {
  stats: EngineStats;
  liveConnections: number;
  liveExpectations: number;
}

/** Engine counters of several workers as one: sums (maps and arrays by key), "most live" summed too. */
export function sumStats(all: EngineStats[]): EngineStats {
  const add = (into: unknown, from: unknown): unknown => {
    if (typeof from === "number") return ((into as number | undefined) ?? 0) + from;
    if (from instanceof Map) {
      const map = (into as Map<string, unknown> | undefined) ?? new Map<string, unknown>();
      for (const [key, value] of from) map.set(key, add(map.get(key), value));
      return map;
    }
    if (Array.isArray(from)) {
      const array = (into as unknown[] | undefined) ?? [];
      from.forEach((value, index) => (array[index] = add(array[index], value)));
      return array;
    }
    if (from !== null && typeof from === "object") {
      const object = (into as Record<string, unknown> | undefined) ?? {};
      for (const [key, value] of Object.entries(from)) object[key] = add(object[key], value);
      return object;
    }
    return into ?? from;
  };
  let total: unknown = undefined;
  for (const stats of all) total = add(total, stats);
  return total as EngineStats;
}

/** Several workers' engines as one ("most live at once" is their sum). */
export function sumEngines(engines: readonly EngineSummary[]): EngineSummary {
  return {
    stats: sumStats(engines.map((engine) => engine.stats)),
    liveConnections: engines.reduce((total, engine) => total + engine.liveConnections, 0),
    liveExpectations: engines.reduce((total, engine) => total + engine.liveExpectations, 0),
  };
}

/** Several workers' expectation events by type, added up. */
export function sumExpectEvents(parts: readonly { expectEvents: { NEW: number; DESTROY: number } }[]): {
  NEW: number;
  DESTROY: number;
} {
  return {
    NEW: parts.reduce((total, part) => total + part.expectEvents.NEW, 0),
    DESTROY: parts.reduce((total, part) => total + part.expectEvents.DESTROY, 0),
  };
}

export interface ShardReplaySummary {
  records: number;
  order: ReplayResult["order"];
  accounting: {
    classes: ReplayResult["accounting"]["classes"];
    reasons: Record<string, number>;
    duplicateSightings: number;
    otherShards: number;
  };
  expectEvents: ReplayResult["expectEvents"];
  engine: EngineSummary;
}

/**
 * The merged replay summary (`--summary`): the records and their classes counted once, the engines'
 * counts added up (so that the verdicts reconcile with the packets decoded; "most live at once" is the
 * workers' sum).
 */
export interface MergedShardSummary extends ShardReplaySummary {
  observedNat: null;
  shard: null;
  jobs: number;
}

/** What `--summary` says of one shard's replay (a worker's result, structured-cloneable). */
export function shardReplaySummary(result: ReplayResult): ShardReplaySummary {
  const engine = result.engine;
  return {
    records: result.records,
    order: result.order,
    accounting: {
      classes: result.accounting.classes,
      reasons: result.accounting.reasons,
      duplicateSightings: result.accounting.duplicateSightings,
      otherShards: result.accounting.otherShards,
    },
    expectEvents: result.expectEvents,
    engine: {
      stats: engine.stats,
      liveConnections: engine.liveConnections,
      liveExpectations: engine.liveExpectations,
    },
  };
}

/**
 * The shards' replays as one (`--summary` of a `--jobs` run): the records and their classes counted
 * once, the engines' counts added up ("most live at once" is the workers' sum).
 */
export function mergeShardSummaries(shards: ShardReplaySummary[]): MergedShardSummary {
  const first = shards[0];
  return {
    records: first.records,
    order: first.order,
    // Packets of other shards were tracked by those: counted in their verdicts, not here.
    accounting: { ...first.accounting, otherShards: 0 },
    expectEvents: sumExpectEvents(shards),
    engine: sumEngines(shards.map((shard) => shard.engine)),
    observedNat: null,
    shard: null,
    jobs: shards.length,
  };
}
