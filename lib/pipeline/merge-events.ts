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
import type { Readable, Writable } from "node:stream";
import { LineReader, csvCell, replaceCsvCells } from "./text-lines.js";

export type MergeFormat = "text" | "csv" | "ndjson";

export interface MergeInput {
  name: string;
  stream: Readable;
}

export class MergeError extends Error {}

interface Cursor {
  index: number;
  lines: LineReader;
  line: string | null;
  key: string;
}

/**
 * Writes the merged stream to `out`; returns the format, the number of lines (rows) merged and the
 * most connection ids held at once (memory follows the live connections, not the stream's length).
 */
export async function mergeEventStreams(
  inputs: readonly MergeInput[],
  out: Writable,
): Promise<{ format: MergeFormat | null; lines: number; mostIdsHeld: number }> {
  let format: MergeFormat | null = null;
  let header: string | null = null;
  const cursors: Cursor[] = [];
  for (const input of inputs) {
    const cursor: Cursor = {
      index: cursors.length,
      // `events` ends every line: a last one without is an input cut short, not an event.
      lines: new LineReader(input.name, {
        stream: input.stream,
        errorClass: MergeError,
        requireLineEnd: true,
      }),
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
  const ids = new ConnectionIds(format, header, inputs.length);
  let merged = 0;
  let mostIdsHeld = 0;
  while (cursors.length > 0) {
    let earliest = 0;
    for (let i = 1; i < cursors.length; i++) if (cursors[i].key < cursors[earliest].key) earliest = i;
    const cursor = cursors[earliest];
    // A wait only when there is one: most writes go into the stream's buffer and most lines are read.
    const written = write(out, `${ids.renumber(cursor.line!, cursor)}\n`);
    if (written !== undefined) await written;
    merged++;
    if (ids.held > mostIdsHeld) mostIdsHeld = ids.held;
    const next = nextLine(cursor);
    if ((next === null || typeof next === "string" ? next : await next) === null) cursors.splice(earliest, 1);
    else cursor.key = keyOf(cursor.line!, format!, cursor);
  }
  return { format, lines: merged, mostIdsHeld };
}

function nextLine(cursor: Cursor): string | null | Promise<string | null> {
  const next = cursor.lines.next();
  if (next === null || typeof next === "string") return (cursor.line = next);
  return next.then((line) => (cursor.line = line));
}

function formatOf(line: string, cursor: Cursor): MergeFormat {
  if (/^\[\d+\.\d{6}\]/.test(line)) return "text";
  if (line.startsWith('{"time":"')) return "ndjson";
  if (line.startsWith("time,")) return "csv";
  if (line.startsWith("[") || line.startsWith("{"))
    throw cursor.lines.error("a JSON array is not line by line; write the events as ndjson");
  throw cursor.lines.error("not an event line with a time (text events need their [sec.usec] stamp)");
}

/**
 * A key that sorts as the times do: text stamps padded to fixed width, ISO 8601 times (fixed width in
 * our output) as they are.
 */
function keyOf(line: string, format: MergeFormat, cursor: Cursor): string {
  if (format === "text") {
    const stamp = /^\[(\d+)\.(\d{6})\]/.exec(line);
    if (stamp === null) throw cursor.lines.error("no [sec.usec] stamp");
    return `${stamp[1].padStart(12, "0")}.${stamp[2]}`;
  }
  if (format === "ndjson") {
    const time = /^\{"time":"([^"]+)"/.exec(line);
    if (time === null) throw cursor.lines.error('no "time" first in the record');
    return time[1];
  }
  const comma = line.indexOf(",");
  if (comma <= 0) throw cursor.lines.error("no time column");
  return line.slice(0, comma);
}

/**
 * Connection ids renumbered across inputs, in order of first appearance. A connection's id is
 * forgotten at its DESTROY (its last event), so memory follows the live connections: a master's id is
 * kept past its DESTROY while connections related to it live (their events name it), and no connection
 * becomes related to a master after its DESTROY (its expectations go with it).
 */
class ConnectionIds {
  /** Merged ids of the connections not yet destroyed, and of destroyed masters with live related ones. */
  private readonly ids = new Map<number, number>();
  /** A related connection's master, and the live related connections per master (by key). */
  private readonly masterOf = new Map<number, number>();
  private readonly related = new Map<number, number>();
  private readonly destroyedMasters = new Set<number>();
  private next = 1;
  private readonly idColumns: number[];
  private readonly masterColumn: number;
  private readonly typeColumn: number;

  constructor(
    private readonly format: MergeFormat | null,
    header: string | null,
    private readonly inputCount: number,
  ) {
    const columns = header === null ? [] : header.split(",");
    this.masterColumn = columns.indexOf("master_connection_id");
    this.typeColumn = columns.indexOf("type");
    this.idColumns = [columns.indexOf("connection_id"), this.masterColumn]
      .filter((column) => column >= 0)
      .sort((a, b) => a - b);
  }

  renumber(line: string, cursor: Cursor): string {
    if (this.format === "ndjson") {
      const match = NDJSON_IDS.exec(line);
      if (match === null) return line;
      const [all, id, master] = match;
      // The master first: the connection's DESTROY may forget a destroyed master with it.
      const masterId = master === "null" ? "null" : String(this.mergedOf(cursor, master));
      const type = NDJSON_TYPE.exec(line)?.[1] ?? "";
      const ids = `,"id":${this.idOf(cursor, id, master === "null" ? "" : master, type)},"masterId":${masterId},"cause":`;
      return `${line.slice(0, match.index)}${ids}${line.slice(match.index + all.length)}`;
    }
    if (this.format !== "csv" || this.idColumns.length === 0) return line;
    const master = this.masterColumn >= 0 ? csvCell(line, this.masterColumn) : "";
    const masterId = master === "" ? "" : String(this.mergedOf(cursor, master));
    const type = this.typeColumn >= 0 ? csvCell(line, this.typeColumn) : "";
    return replaceCsvCells(line, this.idColumns, (cell, column) =>
      column === this.masterColumn ? masterId : String(this.idOf(cursor, cell, master, type)),
    );
  }

  private keyOf(cursor: Cursor, local: string): number {
    const number = Number(local);
    if (!Number.isSafeInteger(number) || number < 0 || number > MAX_LOCAL_ID)
      throw cursor.lines.error(`connection id "${local}" is not an id`);
    return number * this.inputCount + cursor.index;
  }

  /** The merged id of a connection named as a master. */
  private mergedOf(cursor: Cursor, local: string): number {
    const key = this.keyOf(cursor, local);
    let id = this.ids.get(key);
    if (id === undefined) this.ids.set(key, (id = this.next++));
    return id;
  }

  /** The merged id of the connection the event is about; forgotten after its DESTROY. */
  private idOf(cursor: Cursor, local: string, master: string, type: string): number {
    const key = this.keyOf(cursor, local);
    let id = this.ids.get(key);
    if (id === undefined) {
      this.ids.set(key, (id = this.next++));
      if (master !== "") {
        const masterKey = this.keyOf(cursor, master);
        this.masterOf.set(key, masterKey);
        this.related.set(masterKey, (this.related.get(masterKey) ?? 0) + 1);
      }
    }
    if (type === "DESTROY") this.forget(key);
    return id;
  }

  private forget(key: number): void {
    if (this.related.has(key)) this.destroyedMasters.add(key);
    else this.ids.delete(key);
    const master = this.masterOf.get(key);
    if (master === undefined) return;
    this.masterOf.delete(key);
    const left = this.related.get(master)! - 1;
    if (left > 0) {
      this.related.set(master, left);
      return;
    }
    this.related.delete(master);
    if (this.destroyedMasters.delete(master)) this.ids.delete(master);
  }

  /** Ids held now: connections not yet destroyed and destroyed masters of live ones. */
  get held(): number {
    return this.ids.size;
  }
}

/** An event record's ids, as `events --format ndjson` writes them, and its type. */
const NDJSON_IDS = /,"id":(\d+),"masterId":(null|\d+),"cause":/;
const NDJSON_TYPE = /^\{"time":"[^"]*","epoch":[^,]*,"type":"([A-Z]+)"/;
/** Larger ids would make keys past 2^53 with a few inputs; no capture creates so many connections. */
const MAX_LOCAL_ID = 2 ** 40;

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
