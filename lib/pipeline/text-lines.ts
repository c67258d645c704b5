/**
 * Line-by-line reading and CSV cell work for the merges (lib/pipeline/merge-reports.ts, merge-events.ts):
 * files of millions of lines, read a chunk at a time, each line taken without a wait of its own.
 */
import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";

/**
 * Bytes read at a time: the stream's default. Larger chunks were slower (each chunk's text is a fresh
 * large string, its pages faulted in), smaller ones mean more waits.
 */
const READ_CHUNK_BYTES = 64 << 10;
const CARRIAGE_RETURN = 0x0d;

export interface TextReaderOptions {
  /** Read this stream instead of the file named (standard input, say); the name is then for errors. */
  stream?: Readable;
  /** Bytes read at a time from a file (tests make it small). */
  chunkBytes?: number;
  /** What errors are made as (default Error). */
  errorClass?: new (message: string) => Error;
  /** A last line with no line end is damage (a file cut short), not a line. */
  requireLineEnd?: boolean;
}

/**
 * A text read a chunk at a time. The readers' `next` returns a line at once while the text read holds
 * it whole, and a promise only when it must read on: one wait per chunk, not per line.
 */
abstract class ChunkedTextReader {
  private readonly chunks: AsyncIterator<string | Buffer>;
  protected readonly errorClass: new (message: string) => Error;
  protected text = "";
  /** Where the unread text starts. */
  protected at = 0;
  protected ended = false;

  constructor(
    /** The file's path, or the stream's name. */
    readonly path: string,
    options: TextReaderOptions = {},
  ) {
    const stream =
      options.stream?.setEncoding("utf8") ??
      createReadStream(path, { encoding: "utf8", highWaterMark: options.chunkBytes ?? READ_CHUNK_BYTES });
    this.chunks = stream[Symbol.asyncIterator]();
    this.errorClass = options.errorClass ?? Error;
    this.requireLineEnd = options.requireLineEnd === true;
  }

  protected readonly requireLineEnd: boolean;
  /** What an item is called in messages. */
  protected abstract readonly unit: string;

  /** The next line or row: at once while the text read holds it whole, else once it is read. */
  next(): string | null | Promise<string | null> {
    const item = this.itemRead();
    return item !== undefined ? item : this.nextAfterReading();
  }

  /** The next item if the text read holds it whole (null at the end), undefined when it does not. */
  protected abstract itemRead(): string | null | undefined;

  abstract where(): string;

  error(what: string): Error {
    return new this.errorClass(`${this.where()}: ${what}`);
  }

  /** The text changed (offsets into it are stale). */
  protected textReplaced(): void {}

  private async nextAfterReading(): Promise<string | null> {
    for (;;) {
      // At the end, only an item begun and not ended is left unread.
      if (this.ended) throw this.error(`the last ${this.unit} has no line end`);
      await this.readMore();
      const item = this.itemRead();
      if (item !== undefined) return item;
    }
  }

  /** Keeps the unread text and appends the next chunk, or marks the end. */
  private async readMore(): Promise<void> {
    const chunk = await this.chunks.next();
    this.text = this.text.slice(this.at);
    this.at = 0;
    if (chunk.done === true) this.ended = true;
    else this.text += chunk.value as string;
    this.textReplaced();
  }
}

/** Reads a text line by line (empty lines skipped, a CR before the LF dropped), naming it and the line in errors. */
export class LineReader extends ChunkedTextReader {
  lineNumber = 0;
  protected readonly unit = "line";

  protected itemRead(): string | null | undefined {
    const text = this.text;
    for (;;) {
      const newline = text.indexOf("\n", this.at);
      let end: number;
      if (newline >= 0) end = newline;
      else if (this.ended && this.at < text.length) {
        if (this.requireLineEnd) return undefined; // `next` says so
        end = text.length;
      } else return this.ended ? null : undefined;
      const lineEnd = end > this.at && text.charCodeAt(end - 1) === CARRIAGE_RETURN ? end - 1 : end;
      const line = text.slice(this.at, lineEnd);
      this.at = newline >= 0 ? newline + 1 : end;
      this.lineNumber++;
      if (line !== "") return line;
    }
  }

  where(): string {
    return `${this.path}: line ${this.lineNumber}`;
  }
}

/**
 * A CSV file's rows one at a time, read as the project writes them: rows end with a newline, and a
 * cell holding a newline, quote, comma or carriage return is quoted (so a row goes on while its quotes
 * are odd).
 */
export class CsvRowReader extends ChunkedTextReader {
  private rowNumber = 0;
  protected readonly unit = "row";
  /** Where the next quote at or after the last scan is (the text's length when there is none). */
  private quoteAt = -1;

  protected itemRead(): string | null | undefined {
    const text = this.text;
    let quoted = false;
    let scan = this.at;
    for (;;) {
      const newline = text.indexOf("\n", scan);
      if (newline < 0) break;
      // Quotes are rare: the next one is looked for again only once the scan has passed it.
      for (;;) {
        if (this.quoteAt < scan) this.quoteAt = text.indexOf('"', scan);
        if (this.quoteAt < 0) this.quoteAt = text.length;
        if (this.quoteAt >= newline) break;
        quoted = !quoted;
        scan = this.quoteAt + 1;
      }
      scan = newline + 1;
      if (!quoted) {
        const row = text.slice(this.at, newline);
        this.at = scan;
        this.rowNumber++;
        return row;
      }
    }
    // At the end, a row begun and not ended is damage (`next` says so).
    return this.ended && this.at === text.length ? null : undefined;
  }

  protected override textReplaced(): void {
    this.quoteAt = -1;
  }

  where(): string {
    return `${this.path}: row ${this.rowNumber}`;
  }
}

/** Lines or CSV rows, one at a time. */
export type TextRows = LineReader | CsvRowReader;

/**
 * The cells of a CSV row in turn: `visit` gets each one's start, end and column until it returns false.
 * A comma between a quote and the next one separates nothing (quoted cells, doubled quotes); after a
 * quote with no partner the rest of the row is one cell.
 */
function visitCsvCells(line: string, visit: (start: number, end: number, column: number) => boolean): void {
  let quote = line.indexOf('"');
  let start = 0;
  let at = 0;
  for (let column = 0; ; column++) {
    // From comma to comma; quotes before the next comma are skipped in pairs (rare: a few searches).
    let end = line.indexOf(",", at);
    while (quote >= 0 && (end < 0 || quote < end)) {
      const partner = line.indexOf('"', quote + 1);
      if (partner < 0) {
        end = -1;
        break;
      }
      at = partner + 1;
      quote = line.indexOf('"', at);
      if (end >= 0 && end < at) end = line.indexOf(",", at);
    }
    if (end < 0) end = line.length;
    if (!visit(start, end, column) || end === line.length) return;
    start = at = end + 1;
  }
}

/** A CSV row's cells as written (quotes kept), split at the commas outside quotes. */
export function splitCsvRow(line: string): string[] {
  const cells: string[] = [];
  visitCsvCells(line, (start, end) => cells.push(line.slice(start, end)) > 0);
  return cells;
}

/**
 * A CSV row with the non-empty cells at `columns` (ascending) replaced by `replace`'s text, the rest
 * copied as it is.
 */
export function replaceCsvCells(
  line: string,
  columns: readonly number[],
  replace: (cell: string, column: number) => string,
): string {
  if (columns.length === 0) return line;
  let replaced = "";
  let copied = 0;
  let wanted = 0;
  visitCsvCells(line, (start, end, column) => {
    if (column !== columns[wanted]) return true;
    if (end > start) {
      replaced += `${line.slice(copied, start)}${replace(line.slice(start, end), column)}`;
      copied = end;
    }
    return ++wanted < columns.length;
  });
  return copied === 0 ? line : replaced + line.slice(copied);
}

/** A CSV row's cell `column` as written (quotes kept), "" past the last cell. */
export function csvCell(line: string, column: number): string {
  let cell = "";
  visitCsvCells(line, (start, end, at) => {
    if (at < column) return true;
    cell = line.slice(start, end);
    return false;
  });
  return cell;
}

const NEWLINE = 0x0a;
const QUOTE = 0x22;
const COMMA = 0x2c;
const NO_BYTES = Buffer.alloc(0);

/**
 * A file read line by line as bytes, as `LineReader` reads it as text (empty lines skipped, a CR before
 * the LF dropped, a chunk at a time), for merges that copy lines through with a few cells changed: no
 * string per line. The current line is `bytes[start, end)`, valid until `next` is called again.
 */
export class ByteLineReader {
  lineNumber = 0;
  bytes: Buffer = NO_BYTES;
  start = 0;
  end = 0;
  private readonly chunks: AsyncIterator<Buffer>;
  private readonly errorClass: new (message: string) => Error;
  private readonly requireLineEnd: boolean;
  private buffer: Buffer = NO_BYTES;
  private at = 0;
  private ended = false;

  constructor(
    readonly path: string,
    options: Omit<TextReaderOptions, "stream"> = {},
  ) {
    const stream = createReadStream(path, { highWaterMark: options.chunkBytes ?? READ_CHUNK_BYTES });
    this.chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.errorClass = options.errorClass ?? Error;
    this.requireLineEnd = options.requireLineEnd === true;
  }

  /** Moves to the next line: true, or false at the end; a promise only when it must read on first. */
  next(): boolean | Promise<boolean> {
    const found = this.lineRead();
    return found !== undefined ? found : this.nextAfterReading();
  }

  /** The current line as text. */
  text(): string {
    return this.bytes.toString("utf8", this.start, this.end);
  }

  where(): string {
    return `${this.path}: line ${this.lineNumber}`;
  }

  error(what: string): Error {
    return new this.errorClass(`${this.where()}: ${what}`);
  }

  private lineRead(): boolean | undefined {
    const buffer = this.buffer;
    for (;;) {
      const newline = buffer.indexOf(NEWLINE, this.at);
      let end: number;
      if (newline >= 0) end = newline;
      else if (this.ended && this.at < buffer.length) {
        if (this.requireLineEnd) return undefined; // `next` says so
        end = buffer.length;
      } else return this.ended ? false : undefined;
      const start = this.at;
      const lineEnd = end > start && buffer[end - 1] === CARRIAGE_RETURN ? end - 1 : end;
      this.at = newline >= 0 ? newline + 1 : end;
      this.lineNumber++;
      if (lineEnd > start) {
        this.bytes = buffer;
        this.start = start;
        this.end = lineEnd;
        return true;
      }
    }
  }

  private async nextAfterReading(): Promise<boolean> {
    for (;;) {
      if (this.ended) throw this.error("the last line has no line end");
      const chunk = await this.chunks.next();
      const tail = this.buffer.subarray(this.at);
      this.at = 0;
      if (chunk.done === true) {
        this.ended = true;
        this.buffer = tail;
      } else this.buffer = tail.length === 0 ? chunk.value : Buffer.concat([tail, chunk.value]);
      const found = this.lineRead();
      if (found !== undefined) return found;
    }
  }
}

/**
 * The cells `columns` (ascending) of the row `bytes[start, end)`, read as `visitCsvCells` reads them, in
 * one pass: a comma ends a cell, a quote skips to its partner (commas between are the cell's), and
 * after a quote with no partner the rest of the row is one cell. Cell i's bounds go to `bounds[2i]`
 * and `bounds[2i + 1]`; returns how many of the columns the row has.
 */
export function findCsvCells(
  bytes: Uint8Array,
  start: number,
  end: number,
  columns: readonly number[],
  bounds: Int32Array,
): number {
  let found = 0;
  let cellStart = start;
  let at = start;
  for (let column = 0; found < columns.length; column++) {
    while (at < end) {
      const byte = bytes[at];
      if (byte === COMMA) break;
      if (byte === QUOTE) {
        at++;
        while (at < end && bytes[at] !== QUOTE) at++;
        if (at === end) break;
      }
      at++;
    }
    if (column === columns[found]) {
      bounds[2 * found] = cellStart;
      bounds[2 * found + 1] = at;
      found++;
    }
    if (at >= end) break;
    cellStart = ++at;
  }
  return found;
}

/** The number a cell of ASCII digits `bytes[start, end)` writes, -1 for an empty cell or any other byte. */
export function digitsValue(bytes: Uint8Array, start: number, end: number): number {
  if (end === start || end - start > 16) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = bytes[i] - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}
