/** One shard's live table for `table --jobs N` (lib/pipeline/table-jobs.ts). */
import { workerData } from "node:worker_threads";
import type { Connection } from "../conntrack/connection.js";
import { formatProcLine } from "../report/conntrack-text.js";
import {
  connectionRecord,
  formatConntrackListLine,
  procLineOptionsOf,
  tableViewOf,
} from "../report/event-formats.js";
import { replayCaptures, settingsWithEvents } from "./replay.js";
import { answerParent } from "./one-shot-worker.js";
import type { TableJobData, TableJobResult } from "./table-jobs.js";

const data = workerData as TableJobData;

async function run(): Promise<TableJobResult> {
  const confirmations: number[] = [];
  let records = 0;
  // The confirmations are read off NEW events (the table is the same with events off).
  const result = await replayCaptures(data.files, {
    ...data.options,
    settings: settingsWithEvents(data.options.settings),
    shard: data.shard,
    onEvent: (event) => {
      if (event.type === "NEW") confirmations[event.connection.id - 1] = records;
    },
    // Every record read reaches here once, after its events: `records` is the next one's index.
    onPacket: () => void records++,
  });
  const engine = result.engine;
  const view = tableViewOf(engine);
  const connections: Connection[] = [...engine.entries()].sort((a, b) => a.id - b.id);
  const procOptions = procLineOptionsOf(engine);
  return {
    type: "done",
    confirmations: Float64Array.from(confirmations),
    created: Float64Array.from(connections, (connection) => confirmations[connection.id - 1]),
    masters: Float64Array.from(connections, (connection) =>
      connection.masterId > 0 ? confirmations[connection.masterId - 1] : -1,
    ),
    lines:
      data.output === "proc"
        ? connections.map((connection) => formatProcLine(connection, procOptions))
        : data.output === "conntrack"
          ? connections.map((connection) => formatConntrackListLine(connection, view))
          : null,
    records:
      data.output === "records" ? connections.map((connection) => connectionRecord(connection, view)) : null,
    warnings: result.warnings,
    first: result.first,
    last: result.last,
    until: result.until,
    summary: {
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
    },
  };
}

answerParent(run());
