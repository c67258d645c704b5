/**
 * `merge` of event streams: connection ids numbered in order of first appearance, forgotten at DESTROY
 * (memory follows the live connections), a destroyed master's id kept while its related connections live.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import { mergeEventStreams } from "../../lib/pipeline/merge-events.js";
import { EVENT_CSV_COLUMNS, csvRow } from "../../lib/report/event-formats.js";

interface Event {
  second: number;
  type: "NEW" | "UPDATE" | "DESTROY";
  id: number;
  master?: number;
}

function csvEvent(event: Event): string {
  const cells: (string | number)[] = EVENT_CSV_COLUMNS.map(() => "");
  cells[EVENT_CSV_COLUMNS.indexOf("time")] =
    `2025-11-24T16:00:${String(event.second).padStart(2, "0")}.000000000Z`;
  cells[EVENT_CSV_COLUMNS.indexOf("epoch")] = `${1764000000 + event.second}.000000`;
  cells[EVENT_CSV_COLUMNS.indexOf("type")] = event.type;
  cells[EVENT_CSV_COLUMNS.indexOf("protocol")] = "tcp";
  cells[EVENT_CSV_COLUMNS.indexOf("cause")] = event.type === "DESTROY" ? "a cause, with a comma" : "";
  cells[EVENT_CSV_COLUMNS.indexOf("connection_id")] = event.id;
  cells[EVENT_CSV_COLUMNS.indexOf("master_connection_id")] = event.master ?? "";
  return csvRow(cells);
}

function ndjsonEvent(event: Event): string {
  const time = `2025-11-24T16:00:${String(event.second).padStart(2, "0")}.000000000Z`;
  return (
    `{"time":"${time}","epoch":${1764000000 + event.second},"type":"${event.type}","protocol":"tcp",` +
    `"id":${event.id},"masterId":${event.master ?? "null"},"cause":${event.type === "DESTROY" ? '"expired"' : "null"}}\n`
  );
}

async function merge(inputs: string[]): Promise<{ text: string; mostIdsHeld: number }> {
  let text = "";
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  const result = await mergeEventStreams(
    inputs.map((input, index) => ({ name: `input${index}`, stream: Readable.from([input]) })),
    out,
  );
  return { text, mostIdsHeld: result.mostIdsHeld };
}

/** (connection id, master id) of each merged event line. */
function idsOf(text: string, format: "csv" | "ndjson"): [string, string][] {
  const lines = text.trim().split("\n");
  if (format === "ndjson")
    return lines.map((line) => {
      const match = /"id":(\d+),"masterId":(null|\d+)/.exec(line)!;
      return [match[1], match[2] === "null" ? "" : match[2]];
    });
  const id = EVENT_CSV_COLUMNS.indexOf("connection_id");
  const master = EVENT_CSV_COLUMNS.indexOf("master_connection_id");
  return lines.slice(1).map((line) => {
    const cells = line.split(",");
    return [cells[id], cells[master]];
  });
}

for (const format of ["csv", "ndjson"] as const) {
  const write = (events: Event[]) =>
    (format === "csv" ? csvRow(EVENT_CSV_COLUMNS) : "") +
    events.map(format === "csv" ? csvEvent : ndjsonEvent).join("");

  test(`merge ${format}: a master destroyed before its related connection keeps its id for it`, async () => {
    // Input 0: FTP control 1, data 2 related to it; the control connection ends first.
    // Input 1: connections 1 and 2 of its own, interleaved.
    const first = write([
      { second: 1, type: "NEW", id: 1 },
      { second: 3, type: "NEW", id: 2, master: 1 },
      { second: 5, type: "DESTROY", id: 1 },
      { second: 6, type: "UPDATE", id: 2, master: 1 },
      { second: 8, type: "DESTROY", id: 2, master: 1 },
      { second: 9, type: "NEW", id: 3 },
    ]);
    const second = write([
      { second: 2, type: "NEW", id: 1 },
      { second: 4, type: "DESTROY", id: 1 },
      { second: 7, type: "NEW", id: 2 },
    ]);
    const { text, mostIdsHeld } = await merge([first, second]);
    assert.deepEqual(idsOf(text, format), [
      ["1", ""], // input 0's 1
      ["2", ""], // input 1's 1
      ["3", "1"], // input 0's 2, related to 1
      ["2", ""], // input 1's 1 ends
      ["1", ""], // input 0's 1 ends; kept for its related connection
      ["3", "1"],
      ["4", ""], // input 1's 2
      ["3", "1"], // input 0's 2 ends, and its master is forgotten
      ["5", ""], // input 0's 3
    ]);
    assert.ok(mostIdsHeld <= 4, `most ids held ${mostIdsHeld}`);
  });

  test(`merge ${format}: ids held follow the live connections, not the stream's length`, async () => {
    const events = (offset: number): Event[] =>
      Array.from({ length: 3000 }, (_, index) => [
        { second: (index % 50) + offset, type: "NEW" as const, id: index + 1 },
        { second: (index % 50) + offset, type: "DESTROY" as const, id: index + 1 },
      ]).flat();
    // Times repeat, so the inputs interleave in runs; every connection ends right after it starts.
    const sorted = (list: Event[]) => list.sort((a, b) => a.second - b.second);
    const { text, mostIdsHeld } = await merge([write(sorted(events(0))), write(sorted(events(1)))]);
    assert.equal(idsOf(text, format).length, 12000);
    assert.equal(new Set(idsOf(text, format).map(([id]) => id)).size, 6000);
    assert.ok(mostIdsHeld <= 2, `most ids held ${mostIdsHeld}, not bounded by the live connections`);
  });
}
