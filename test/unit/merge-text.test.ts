/** The merge's line reader and its CSV cell rewriting (rows it does not split into cells). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LineReader, csvCell, replaceCsvCells, splitCsvRow } from "../../lib/pipeline/text-lines.js";
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
    }
    writeFileSync(path, "");
    assert.equal(await new LineReader(path).next(), null);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("CSV cells are read and replaced as splitCsvRow splits them, quoted commas and quotes included", () => {
  const cells = ["", "7", "plain", "a,b", 'say "hi"', '"', ",", "12,", "x y"];
  for (let i = 0; i < 2000; i++) {
    const row = Array.from({ length: 3 + (i % 6) }, (_, c) => cells[(i * (c + 3) + c) % cells.length]);
    const line = csvRow(row).slice(0, -1);
    const split = splitCsvRow(line);
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
