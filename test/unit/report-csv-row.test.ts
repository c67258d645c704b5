/**
 * csvRow joins plain rows itself and leaves the others to csv-stringify: both ways must give exactly
 * the line csv-stringify gives.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify } from "csv-stringify/sync";
import { csvRow } from "../../lib/report/event-formats.js";

type Cell = string | number | null | undefined;

function reference(cells: readonly Cell[]): string {
  return stringify([cells.map((cell) => (cell === null || cell === undefined ? "" : cell))]);
}

test("csvRow writes what csv-stringify writes, for chosen awkward cells", () => {
  const awkward: Cell[] = [
    1,
    "a",
    null,
    undefined,
    "x y",
    "",
    0,
    -5,
    1.5,
    1e21,
    "a,b",
    'q"q',
    "l\nm",
    "c\rr",
  ];
  awkward.push(" lead", "trail ", "'=1+1", "é", Number.NaN, -0, 2 ** 53, "2001:db8::1", "a;b", "\t");
  for (let i = 0; i < awkward.length; i++) {
    const row = awkward.slice(0, i + 1);
    assert.equal(csvRow(row), reference(row), JSON.stringify(row));
    assert.equal(csvRow([awkward[i]]), reference([awkward[i]]), JSON.stringify(awkward[i]));
  }
});

test("csvRow writes what csv-stringify writes, for random rows", () => {
  const cell: fc.Arbitrary<Cell> = fc.oneof(
    fc.string(),
    fc.constantFrom(",", '"', "\n", "\r", "\r\n", " ", ""),
    fc.integer(),
    fc.double(),
    fc.constant(null),
    fc.constant(undefined),
  );
  fc.assert(
    fc.property(fc.array(cell, { minLength: 1, maxLength: 12 }), (row) => {
      assert.equal(csvRow(row), reference(row));
    }),
    { numRuns: 2000, seed: 20261125 },
  );
});
