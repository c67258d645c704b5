import { test } from "node:test";
import assert from "node:assert/strict";
import { TimestampConverter, unitsPerSecondFromTsresol } from "../../lib/capture/timestamp.js";

function convert(units: bigint, unitsPerSecond: number, offsetSec = 0, exact?: bigint): [number, number] {
  const converter = new TimestampConverter(unitsPerSecond, offsetSec, exact);
  converter.convert(Number(units >> 32n), Number(units & 0xffffffffn));
  return [converter.sec, converter.nsec];
}

function expected(units: bigint, exact: bigint, offsetSec = 0): [number, number] {
  return [Number(units / exact) + offsetSec, Number(((units % exact) * 1_000_000_000n) / exact)];
}

test("microsecond counts", () => {
  assert.deepEqual(convert(1_700_000_000_123_456n, 1e6), [1_700_000_000, 123_456_000]);
  assert.deepEqual(convert(0n, 1e6), [0, 0]);
  assert.deepEqual(convert(999_999n, 1e6), [0, 999_999_000]);
});

test("nanosecond counts beyond 2^53 stay exact", () => {
  assert.deepEqual(convert(1_700_000_000_123_456_789n, 1e9), [1_700_000_000, 123_456_789]);
  assert.deepEqual(convert(1_700_000_000_999_999_999n, 1e9), [1_700_000_000, 999_999_999]);
});

test("binary resolution 2^-20", () => {
  assert.deepEqual(convert(5n * 1048576n + 524288n, 1048576), [5, 500_000_000]);
  // 1/2^20 s = 953.674… ns, floored.
  assert.deepEqual(convert(1n, 1048576), [0, 953]);
  assert.deepEqual(convert(1048575n, 1048576), [0, 999_999_046]);
});

test("if_tsoffset is added to the seconds, negative too", () => {
  assert.deepEqual(convert(1_500_000n, 1e6, 100), [101, 500_000_000]);
  assert.deepEqual(convert(1_500_000n, 1e6, -3), [-2, 500_000_000]);
});

test("values near 2^64", () => {
  const max = (1n << 64n) - 1n;
  assert.deepEqual(convert(max, 1e9), [18_446_744_073, 709_551_615]);
  assert.deepEqual(convert(max, 1e6), [18_446_744_073_709, 551_615_000]);
  assert.deepEqual(convert(max - 5n, 2 ** 32), [4_294_967_295, 999_999_998]);
});

test("every division path agrees with BigInt arithmetic", () => {
  const resolutions: bigint[] = [
    1n,
    3n,
    1000n,
    1_000_000n,
    10_000_000n,
    1_000_000_000n,
    1n << 20n,
    (1n << 30n) - 1n,
    1n << 30n,
    1n << 32n,
    10n ** 12n,
    (1n << 44n) - 1n,
    10n ** 15n,
    1n << 63n,
  ];
  let seed = 12345;
  const random32 = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return BigInt(seed);
  };
  for (const exact of resolutions) {
    const samples = [
      0n,
      1n,
      exact - 1n,
      exact,
      exact + 1n,
      (1n << 64n) - 1n,
      (1n << 53n) + 1n,
      (1n << 52n) - 1n,
    ];
    for (let index = 0; index < 200; index++) samples.push((random32() << 32n) | random32());
    for (let index = 0; index < 50; index++) samples.push(random32() << 20n);
    for (const units of samples) {
      assert.deepEqual(
        convert(units, Number(exact), 7, exact),
        expected(units, exact, 7),
        `${units} / ${exact}`,
      );
    }
  }
});

test("if_tsresol decoding", () => {
  assert.equal(unitsPerSecondFromTsresol(6).unitsPerSecond, 1e6);
  assert.equal(unitsPerSecondFromTsresol(9).unitsPerSecond, 1e9);
  assert.equal(unitsPerSecondFromTsresol(0x80 | 20).unitsPerSecond, 1048576);
  assert.equal(unitsPerSecondFromTsresol(0).unitsPerSecond, 1);
  assert.equal(unitsPerSecondFromTsresol(30).exact, 10n ** 30n);
});
