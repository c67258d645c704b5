/** parseIpv4 reads dotted quads as the rule files and policies write them, and nothing else. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAddress, parseIpv4 } from "../../lib/conntrack/nat/rules.js";

/** The plain reading: four parts of one to three digits, each at most 255. */
function reference(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    value = value * 256 + n;
  }
  return value;
}

test("parseIpv4 agrees with the plain reading on addresses, near misses and noise", () => {
  const fixed = [
    "0.0.0.0",
    "255.255.255.255",
    "10.1.2.3",
    "010.001.2.3",
    "256.1.1.1",
    "1.2.3",
    "1.2.3.4.5",
    "1..3.4",
    ".1.2.3",
    "1.2.3.",
    "1.2.3.4 ",
    "1.2.3.0004",
    "",
    "a.b.c.d",
    "2001:db8::1",
    "1.2.3.-4",
    "１.2.3.4",
  ];
  let state = 11;
  const random = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % n;
  };
  const alphabet = "0123456789.....255x: ";
  const texts = [...fixed];
  for (let i = 0; i < 20_000; i++) {
    const length = 1 + random(17);
    let text = "";
    for (let c = 0; c < length; c++) text += alphabet[random(alphabet.length)];
    texts.push(text);
  }
  for (let i = 0; i < 5000; i++) texts.push([0, 0, 0, 0].map(() => String(random(300))).join("."));
  for (const text of texts) assert.equal(parseIpv4(text), reference(text), JSON.stringify(text));
  assert.deepEqual(parseAddress("192.0.2.9"), { family: 4, w0: 0xc0000209, w1: 0, w2: 0, w3: 0 });
});
