/** `--jobs`: the main thread's rewrite of provisional connection ids into final ones, in csv and ndjson lines. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { LinePatcher } from "../../lib/pipeline/jobs.js";
import { PROVISIONAL_ID_BASE } from "../../lib/pipeline/jobs-protocol.js";

const finals = new Map([
  [PROVISIONAL_ID_BASE + 7, 3],
  [PROVISIONAL_ID_BASE + 9, 12],
]);
const finalId = (id: number): number => finals.get(id) ?? id;

function patched(patcher: LinePatcher, line: string): string {
  const bytes = Buffer.from(line);
  const out = Buffer.alloc(bytes.length + 8, 0x3f);
  const written = patcher.patch(bytes, out, 4, finalId);
  assert.equal(out.subarray(0, 4).toString(), "????", "nothing written before the offset");
  return out.subarray(4, 4 + written).toString();
}

test("csv: the id cells get final ids; quoted cells (commas, doubled quotes) and other cells stay as written", () => {
  const patcher = new LinePatcher("csv", [
    "note",
    "connection_id",
    "detail",
    "master_connection_id",
    "bytes",
  ]);
  const p7 = PROVISIONAL_ID_BASE + 7;
  const p9 = PROVISIONAL_ID_BASE + 9;
  assert.equal(patched(patcher, `"a,""b"",c",${p7},"x,y",${p9},${p7}\n`), `"a,""b"",c",3,"x,y",12,${p7}\n`);
  // A final id, an empty master and a counter as large as an id are left alone; so is a line without its end.
  assert.equal(patched(patcher, `n,5,d,,${p9}\n`), `n,5,d,,${p9}\n`);
  assert.equal(patched(patcher, `n,${p9},d,${p7}`), `n,12,d,3`);
  // A cell that is not all digits is not an id.
  assert.equal(patched(patcher, `n,'${p7},d,x${p9},1\n`), `n,'${p7},d,x${p9},1\n`);
  // Fewer cells than the id columns.
  assert.equal(patched(patcher, `"only, one"\n`), `"only, one"\n`);
});

test("ndjson: id and masterId get final ids, other numbers stay", () => {
  const patcher = new LinePatcher("ndjson", []);
  const p7 = PROVISIONAL_ID_BASE + 7;
  const line = `{"id":${p7},"original":{"id":5},"masterId":${PROVISIONAL_ID_BASE + 9},"bytes":${p7}}\n`;
  assert.equal(patched(patcher, line), `{"id":3,"original":{"id":5},"masterId":12,"bytes":${p7}}\n`);
});
