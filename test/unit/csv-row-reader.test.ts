/** The merge's CSV row reader: rows whose quoted cells hold newlines, quotes and carriage returns. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CsvRowReader } from "../../lib/pipeline/text-lines.js";
import { csvRow } from "../../lib/report/event-formats.js";

test("CSV rows are read whole across quoted line ends and read-chunk boundaries", async () => {
  const directory = mkdtempSync(join(tmpdir(), "csv-rows-"));
  try {
    const cells = [
      "plain",
      'a "quoted" word',
      "two\nlines",
      "carriage\rreturn",
      "crlf\r\nend",
      "a,b",
      "naïve ☃",
    ];
    const rows: string[] = [];
    // Read 4 KiB at a time, so that many rows cross a chunk boundary.
    for (let i = 0; i < 6000; i++)
      rows.push(csvRow([i, cells[i % cells.length], cells[(i * 3) % cells.length], i]));
    const path = join(directory, "rows.csv");
    writeFileSync(path, rows.join(""));
    const reader = new CsvRowReader(path, { chunkBytes: 4096 });
    for (let i = 0; i < rows.length; i++) assert.equal(await reader.next(), rows[i].slice(0, -1), `row ${i}`);
    assert.equal(await reader.next(), null);

    writeFileSync(path, 'a,"open\nquote');
    const broken = new CsvRowReader(path);
    await assert.rejects(async () => broken.next(), /rows\.csv: row 0: the last row has no line end/);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
