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
import { join } from "node:path";
import { replayCaptures, settingsWithEvents, type ReplayResult } from "./replay.js";
import { RecordLogWriter } from "./record-log.js";
import { answerParent } from "./one-shot-worker.js";
import { shardReplaySummary } from "./shard-summary.js";
import type { TableJobData, TableJobResult } from "./table-jobs.js";

const data = workerData as TableJobData;

async function run(): Promise<TableJobResult> {
  // Every creation goes to a file; only the live entries' records stay in memory.
  const confirmations = new RecordLogWriter(join(data.scratch, `shard${data.shard.index}.connections`));
  const expectationsCreated = new RecordLogWriter(
    join(data.scratch, `shard${data.shard.index}.expectations`),
  );
  /** By local id: the record that created each live connection, and its master's (related ones). */
  const liveCreated = new Map<number, number>();
  const liveMasters = new Map<number, number>();
  const liveExpectations = new Map<number, number>();
  let records = 0;
  let result: ReplayResult;
  try {
    // The confirmations are read off NEW events (the table is the same with events off).
    result = await replayCaptures(data.files, {
      ...data.options,
      settings: settingsWithEvents(data.options.settings),
      shard: data.shard,
      onEvent: (event) => {
        const id = event.connection.id;
        if (event.type === "NEW") {
          confirmations.append(records);
          liveCreated.set(id, records);
          // The master is live: its expectation went with it otherwise.
          const master = event.connection.masterId;
          if (master > 0) liveMasters.set(id, liveCreated.get(master)!);
        } else if (event.type === "DESTROY") {
          liveCreated.delete(id);
          liveMasters.delete(id);
        }
      },
      onExpectEvent: data.expect
        ? (event) => {
            if (event.type === "NEW") {
              expectationsCreated.append(records);
              liveExpectations.set(event.expectation.id, records);
            } else liveExpectations.delete(event.expectation.id);
          }
        : undefined,
      // Every record read reaches here once, after its events: `records` is the next one's index.
      onPacket: () => void records++,
    });
  } finally {
    confirmations.close();
    expectationsCreated.close();
  }
  const engine = result.engine;
  const view = tableViewOf(engine);
  const confirmedBy = (connection: Connection): number => liveCreated.get(connection.id) ?? -1;
  let table: Pick<TableJobResult, "created" | "localIds" | "masters" | "lines" | "records">;
  if (data.expect) {
    const expectations = engine.expectations();
    table = {
      created: Float64Array.from(expectations, (expectation) => liveExpectations.get(expectation.id)!),
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
      masters: Float64Array.from(connections, (connection) => liveMasters.get(connection.id) ?? -1),
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
    confirmations: { path: confirmations.path, count: confirmations.count },
    expectationsCreated: { path: expectationsCreated.path, count: expectationsCreated.count },
    ...table,
    warnings: result.warnings,
    first: result.first,
    last: result.last,
    until: result.until,
    summary: shardReplaySummary(result),
  };
}

answerParent(run());
