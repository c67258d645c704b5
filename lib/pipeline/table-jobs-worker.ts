/** One shard's live table for `table --jobs N` (lib/pipeline/table-jobs.ts). */
import { workerData } from "node:worker_threads";
import type { Connection } from "../conntrack/connection.js";
import { formatProcLine } from "../report/conntrack-text.js";
import {
  connectionRecord,
  expectationRecord,
  expectationTimeout,
  formatConntrackListLine,
  formatExpectListLine,
  procLineOptionsOf,
  tableViewOf,
} from "../report/event-formats.js";
import { formatExpectProcLine } from "../report/expect-text.js";
import { replayCaptures, settingsWithEvents } from "./replay.js";
import { answerParent } from "./one-shot-worker.js";
import type { TableJobData, TableJobResult } from "./table-jobs.js";

const data = workerData as TableJobData;

async function run(): Promise<TableJobResult> {
  const confirmations: number[] = [];
  const expectationsCreated: number[] = [];
  let records = 0;
  // The confirmations are read off NEW events (the table is the same with events off).
  const result = await replayCaptures(data.files, {
    ...data.options,
    settings: settingsWithEvents(data.options.settings),
    shard: data.shard,
    onEvent: (event) => {
      if (event.type === "NEW") confirmations[event.connection.id - 1] = records;
    },
    onExpectEvent: data.expect
      ? (event) => {
          if (event.type === "NEW") expectationsCreated[event.expectation.id - 1] = records;
        }
      : undefined,
    // Every record read reaches here once, after its events: `records` is the next one's index.
    onPacket: () => void records++,
  });
  const engine = result.engine;
  const view = tableViewOf(engine);
  const confirmedBy = (connection: Connection): number =>
    connection.id > 0 ? confirmations[connection.id - 1] : -1;
  let table: Pick<TableJobResult, "created" | "localIds" | "masters" | "lines" | "records">;
  if (data.expect) {
    const expectations = engine.expectations();
    table = {
      created: Float64Array.from(expectations, (expectation) => expectationsCreated[expectation.id - 1]),
      localIds: Float64Array.from(expectations, (expectation) => expectation.id),
      masters: Float64Array.from(expectations, (expectation) => confirmedBy(expectation.master)),
      lines:
        data.output === "proc"
          ? expectations.map((expectation) =>
              formatExpectProcLine(expectation, { now: view.now, hz: view.hz }),
            )
          : data.output === "conntrack"
            ? expectations.map((expectation) => formatExpectListLine(expectation, view))
            : null,
      records:
        data.output === "records"
          ? expectations.map((expectation) =>
              expectationRecord(expectation, expectationTimeout(expectation, view)),
            )
          : null,
    };
  } else {
    const connections: Connection[] = [...engine.entries()].sort((a, b) => a.id - b.id);
    const procOptions = procLineOptionsOf(engine);
    table = {
      created: Float64Array.from(connections, confirmedBy),
      localIds: Float64Array.from(connections, (connection) => connection.id),
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
        data.output === "records"
          ? connections.map((connection) => connectionRecord(connection, view))
          : null,
    };
  }
  return {
    type: "done",
    confirmations: Float64Array.from(confirmations),
    expectationsCreated: Float64Array.from(expectationsCreated),
    ...table,
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
