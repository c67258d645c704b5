/** The merge's line reader and its CSV cell rewriting (rows it does not split into cells). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ByteLineReader,
  LineReader,
  csvCell,
  digitsValue,
  replaceCsvCells,
  splitCsvRow,
  findCsvCells,
} from "../../lib/pipeline/text-lines.js";
import { csvRow } from "../../lib/report/event-formats.js";

test("lines are read whole across read chunks: CRLF, empty lines, multibyte text, no final line end", async () => {
  const directory = mkdtempSync(join(tmpdir(), "merge-lines-"));
  try {
    const lines: string[] = [];
    for (let i = 0; i < 5000; i++)
      lines.push(`{"id":${i},"text":"${"naïve ☃ ".repeat(i % 7)}${"x".repeat(i % 300)}"}`);
    const path = join(directory, "lines.ndjson");
    // Every seventh line ends in CRLF, every eleventh is followed by an empty line; the last has no end.
    writeFileSync(
      path,
      lines.map((line, i) => `${line}${i % 7 === 0 ? "\r\n" : "\n"}${i % 11 === 0 ? "\n" : ""}`).join("") +
        "tail",
    );
    for (const chunkBytes of [7, 4096, 1 << 16]) {
      const reader = new LineReader(path, { chunkBytes });
      for (let i = 0; i < lines.length; i++) assert.equal(await reader.next(), lines[i], `line ${i}`);
      assert.equal(await reader.next(), "tail");
      assert.equal(await reader.next(), null);
      assert.equal(await reader.next(), null);
      // The same lines as bytes, with the same line numbers; a quote is seen in the lines that hold one.
      const bytes = new ByteLineReader(path, { chunkBytes });
      for (let i = 0; i < lines.length; i++) {
        assert.equal(await bytes.next(), true, `line ${i}`);
        assert.equal(bytes.text(), lines[i], `line ${i}`);
      }
      assert.equal(await bytes.next(), true);
      assert.equal(bytes.text(), "tail");
      assert.equal(await bytes.next(), false);
      assert.equal(await bytes.next(), false);
      assert.equal(bytes.lineNumber, reader.lineNumber);
    }
    // A shard file's last line must end (a file cut short): both readers refuse it.
    const strict = { requireLineEnd: true, errorClass: RangeError };
    await assert.rejects(
      (async () => {
        const reader = new ByteLineReader(path, strict);
        while (await reader.next());
      })(),
      (error: Error) =>
        error instanceof RangeError && /line 5\d\d\d: the last line has no line end/.test(error.message),
    );
    await assert.rejects(async () => {
      const reader = new LineReader(path, strict);
      while ((await reader.next()) !== null);
    }, /the last line has no line end/);
    writeFileSync(path, "");
    assert.equal(await new LineReader(path).next(), null);
    assert.equal(await new ByteLineReader(path).next(), false);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

/** The plain reading of a row, character by character: a quote toggles, a comma outside quotes splits. */
function referenceSplit(line: string): string[] {
  const cells: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '"') quoted = !quoted;
    else if (line[i] === "," && !quoted) {
      cells.push(line.slice(start, i));
      start = i + 1;
    }
  }
  cells.push(line.slice(start));
  return cells;
}

test("CSV cells are split, read and replaced as the plain reading has them: quoted, doubled and lone quotes", () => {
  const cells = ["", "7", "plain", "a,b", 'say "hi"', '"', ",", "12,", "x y"];
  const lines: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const row = Array.from({ length: 3 + (i % 6) }, (_, c) => cells[(i * (c + 3) + c) % cells.length]);
    lines.push(csvRow(row).slice(0, -1));
  }
  // Rows no writer makes (a lone quote, quotes inside an unquoted cell) read as the plain reading has them.
  let state = 5;
  const random = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  for (let i = 0; i < 3000; i++)
    lines.push(Array.from({ length: random(14) }, () => 'ab,,"'[random(5)]).join(""));
  for (const line of lines) {
    const split = referenceSplit(line);
    assert.deepEqual(splitCsvRow(line), split, line);
    // The byte walker finds the same cells, in a row among other bytes (a quote after it too).
    const bytes = Buffer.from(`x\n${line}\n"`);
    const every = Array.from({ length: 16 }, (_, c) => c);
    const bounds = new Int32Array(2 * every.length);
    const count = findCsvCells(bytes, 2, 2 + Buffer.byteLength(line), every, bounds);
    const found = Array.from({ length: count }, (_, c) =>
      bytes.toString("utf8", bounds[2 * c], bounds[2 * c + 1]),
    );
    assert.deepEqual(found, split, `bytes: ${line}`);
    const some = [1, 3].filter((c) => c < split.length);
    assert.equal(findCsvCells(bytes, 2, 2 + Buffer.byteLength(line), [1, 3], bounds), some.length);
    some.forEach((column, i) =>
      assert.equal(
        bytes.toString("utf8", bounds[2 * i], bounds[2 * i + 1]),
        split[column],
        `${line} cell ${column}`,
      ),
    );
    for (let c = 0; c <= split.length; c++)
      assert.equal(csvCell(line, c), split[c] ?? "", `${line} cell ${c}`);
    const columns = [1, 2, 4].filter((c) => c < split.length);
    const expected = split
      .map((cell, c) => (columns.includes(c) && cell !== "" ? `<${cell}>` : cell))
      .join(",");
    assert.equal(
      replaceCsvCells(line, columns, (cell) => `<${cell}>`),
      expected,
      line,
    );
  }
  assert.equal(
    replaceCsvCells("a,b", [5], () => "z"),
    "a,b",
  );
  assert.equal(
    replaceCsvCells("a,,c", [1, 2], (cell) => cell.toUpperCase()),
    "a,,C",
  );
});

test("digit cells read as numbers; anything else is -1", () => {
  const bytes = Buffer.from("12,,007,1a,9007199254740991,12345678901234567");
  const bounds = new Int32Array(12);
  assert.equal(findCsvCells(bytes, 0, bytes.length, [0, 1, 2, 3, 4, 5], bounds), 6);
  const values = Array.from({ length: 6 }, (_, i) => digitsValue(bytes, bounds[2 * i], bounds[2 * i + 1]));
  assert.deepEqual(values, [12, -1, 7, -1, 9007199254740991, -1]);
});
