/**
 * Merges event streams written by `pcap-conntrack events` (for example the N shards of a `--shard` run)
 * into one, in time order, reading each input once, line by line: memory stays at one line per input.
 * Lines with equal times keep the order of the inputs, then their own order.
 *
 * Formats: text with its `[sec.usec]` stamp (not `--no-timestamp`), csv (one header, the same in every
 * input; rows by their `time` column) and ndjson (records by their `time` field). All inputs must be in
 * the same format; a `--format json` array is not line by line (use ndjson).
 *
 * Connection ids (csv and ndjson) are each input's own: they are numbered again in the order the
 * connections first appear in the merged stream, which is the order a single run creates (and numbers)
 * them; a master connection id follows its connection.
 */
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";

export type MergeFormat = "text" | "csv" | "ndjson";

export interface MergeInput {
  name: string;
  stream: Readable;
}

export class MergeError extends Error {}

interface Cursor {
  index: number;
  name: string;
  lines: AsyncIterator<string>;
  lineNumber: number;
  line: string | null;
  key: string;
}

/** Writes the merged stream to `out`; returns the format and the number of lines (rows) merged. */
export async function mergeEventStreams(
  inputs: readonly MergeInput[],
  out: Writable,
): Promise<{ format: MergeFormat | null; lines: number }> {
  let format: MergeFormat | null = null;
  let header: string | null = null;
  const cursors: Cursor[] = [];
  for (const input of inputs) {
    const lines = createInterface({ input: input.stream, crlfDelay: Infinity })[Symbol.asyncIterator]();
    const cursor: Cursor = {
      index: cursors.length,
      name: input.name,
      lines,
      lineNumber: 0,
      line: null,
      key: "",
    };
    const first = await nextLine(cursor);
    if (first === null) continue;
    const inputFormat = formatOf(first, cursor);
    if (format !== null && inputFormat !== format)
      throw new MergeError(`${input.name}: ${inputFormat} events, the inputs before it are ${format}`);
    format = inputFormat;
    if (format === "csv") {
      if (header !== null && first !== header)
        throw new MergeError(`${input.name}: line 1: a CSV header other than the first input's`);
      header = first;
      if ((await nextLine(cursor)) === null) continue;
    }
    cursor.key = keyOf(cursor.line!, format, cursor);
    cursors.push(cursor);
  }
  if (header !== null) await write(out, `${header}\n`);
  const ids = new ConnectionIds(format, header);
  let merged = 0;
  while (cursors.length > 0) {
    let earliest = 0;
    for (let i = 1; i < cursors.length; i++) if (cursors[i].key < cursors[earliest].key) earliest = i;
    const cursor = cursors[earliest];
    await write(out, `${ids.renumber(cursor.line!, cursor)}\n`);
    merged++;
    if ((await nextLine(cursor)) === null) cursors.splice(earliest, 1);
    else cursor.key = keyOf(cursor.line!, format!, cursor);
  }
  return { format, lines: merged };
}

async function nextLine(cursor: Cursor): Promise<string | null> {
  for (;;) {
    const next = await cursor.lines.next();
    if (next.done === true) {
      cursor.line = null;
      return null;
    }
    cursor.lineNumber++;
    if (next.value === "") continue;
    cursor.line = next.value;
    return next.value;
  }
}

function formatOf(line: string, cursor: Cursor): MergeFormat {
  if (/^\[\d+\.\d{6}\]/.test(line)) return "text";
  if (line.startsWith('{"time":"')) return "ndjson";
  if (line.startsWith("time,")) return "csv";
  if (line.startsWith("[") || line.startsWith("{"))
    throw new MergeError(`${where(cursor)}: a JSON array is not line by line; write the events as ndjson`);
  throw new MergeError(
    `${where(cursor)}: not an event line with a time (text events need their [sec.usec] stamp)`,
  );
}

/**
 * A key that sorts as the times do: text stamps padded to fixed width, ISO 8601 times (fixed width in
 * our output) as they are.
 */
function keyOf(line: string, format: MergeFormat, cursor: Cursor): string {
  if (format === "text") {
    const stamp = /^\[(\d+)\.(\d{6})\]/.exec(line);
    if (stamp === null) throw new MergeError(`${where(cursor)}: no [sec.usec] stamp`);
    return `${stamp[1].padStart(12, "0")}.${stamp[2]}`;
  }
  if (format === "ndjson") {
    const time = /^\{"time":"([^"]+)"/.exec(line);
    if (time === null) throw new MergeError(`${where(cursor)}: no "time" first in the record`);
    return time[1];
  }
  const comma = line.indexOf(",");
  if (comma <= 0) throw new MergeError(`${where(cursor)}: no time column`);
  return line.slice(0, comma);
}

/** Connection ids renumbered across inputs, in order of first appearance. */
class ConnectionIds {
  private readonly global = new Map<string, number>();
  private next = 1;
  private readonly idColumn: number;
  private readonly masterColumn: number;

  constructor(
    private readonly format: MergeFormat | null,
    header: string | null,
  ) {
    const columns = header === null ? [] : header.split(",");
    this.idColumn = columns.indexOf("connection_id");
    this.masterColumn = columns.indexOf("master_connection_id");
  }

  renumber(line: string, cursor: Cursor): string {
    if (this.format === "ndjson") {
      return line.replace(
        /,"id":(\d+),"masterId":(null|\d+),"cause":/,
        (_all, id: string, master: string) =>
          `,"id":${this.idOf(cursor, id)},"masterId":${master === "null" ? "null" : this.idOf(cursor, master)},"cause":`,
      );
    }
    if (this.format !== "csv" || this.idColumn < 0) return line;
    const cells = splitCsvRow(line);
    if (cells[this.idColumn] !== "") cells[this.idColumn] = `${this.idOf(cursor, cells[this.idColumn])}`;
    if (this.masterColumn >= 0 && cells[this.masterColumn] !== "")
      cells[this.masterColumn] = `${this.idOf(cursor, cells[this.masterColumn])}`;
    return cells.join(",");
  }

  private idOf(cursor: Cursor, local: string): number {
    const key = `${cursor.index}:${local}`;
    let id = this.global.get(key);
    if (id === undefined) {
      id = this.next++;
      this.global.set(key, id);
    }
    return id;
  }
}

/** A CSV row's cells as written (quotes kept), split at the commas outside quotes. */
export function splitCsvRow(line: string): string[] {
  const cells: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') quoted = !quoted;
    else if (c === "," && !quoted) {
      cells.push(line.slice(start, i));
      start = i + 1;
    }
  }
  cells.push(line.slice(start));
  return cells;
}

function where(cursor: Cursor): string {
  return `${cursor.name}: line ${cursor.lineNumber}`;
}

function write(out: Writable, text: string): Promise<void> | void {
  if (out.write(text)) return;
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      out.off("drain", done);
      out.off("error", done);
      if (error) reject(error);
      else resolve();
    };
    out.once("drain", done);
    out.once("error", done);
  });
}
