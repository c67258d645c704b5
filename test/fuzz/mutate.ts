/**
 * The byte mutator: bit flips, byte sets, truncations, insertions, edits of length fields at known
 * offsets and splices of two inputs. Everything is drawn from a seeded generator, so an input is a
 * pure function of (seed, iteration) and a finding can be made again from its numbers alone.
 */

/** mulberry32: small, fast and good enough to pick mutations; not for anything secret. */
export class Prng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  nextU32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** 0 ≤ n < bound. */
  below(bound: number): number {
    return bound <= 1 ? 0 : this.nextU32() % bound;
  }
  chance(p: number): boolean {
    return this.nextU32() / 4294967296 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }
}

/** A seed for iteration `i` of a run seeded `seed` (splitmix-style so neighbours differ everywhere). */
export function iterationSeed(seed: number, i: number): number {
  let z = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** Where a length (or count) field of `width` bytes sits in an input, and its byte order. */
export interface LengthField {
  offset: number;
  width: 1 | 2 | 4;
  littleEndian: boolean;
}

/** Values that break length arithmetic: zero, one, all ones, sign bits, powers of two around limits. */
const INTERESTING_U32 = [
  0,
  1,
  2,
  3,
  4,
  7,
  8,
  12,
  16,
  20,
  28,
  32,
  40,
  60,
  64,
  127,
  128,
  255,
  256,
  1500,
  4095,
  4096,
  65535,
  65536,
  0x7fff,
  0x8000,
  262144,
  262145,
  16 << 20,
  (16 << 20) + 1,
  0x7fffffff,
  0x80000000,
  0xfffffffc,
  0xffffffff,
];

/** Most bytes a mutated input may have: keeps one execution's work small. */
export const MAX_MUTATED_BYTES = 256 * 1024;

function writeField(out: Buffer, field: LengthField, value: number): void {
  const { offset, width, littleEndian } = field;
  if (offset + width > out.length) return;
  if (width === 1) out[offset] = value & 0xff;
  else if (width === 2) {
    if (littleEndian) out.writeUInt16LE(value & 0xffff, offset);
    else out.writeUInt16BE(value & 0xffff, offset);
  } else if (littleEndian) out.writeUInt32LE(value >>> 0, offset);
  else out.writeUInt32BE(value >>> 0, offset);
}

function readField(input: Buffer, field: LengthField): number {
  const { offset, width, littleEndian } = field;
  if (offset + width > input.length) return 0;
  if (width === 1) return input[offset];
  if (width === 2) return littleEndian ? input.readUInt16LE(offset) : input.readUInt16BE(offset);
  return littleEndian ? input.readUInt32LE(offset) : input.readUInt32BE(offset);
}

/**
 * One mutation of `input` (never modified in place). `fields` lists known length fields of the input;
 * `other` is a second input to splice with.
 */
export function mutateOnce(input: Buffer, rng: Prng, fields: readonly LengthField[], other: Buffer): Buffer {
  const length = input.length;
  const choice = rng.below(fields.length > 0 ? 10 : 8);
  const out = Buffer.from(input);
  switch (choice) {
    case 0: {
      // Flip a few bits.
      if (length === 0) return Buffer.from([rng.below(256)]);
      const flips = 1 + rng.below(4);
      for (let k = 0; k < flips; k++) out[rng.below(length)] ^= 1 << rng.below(8);
      return out;
    }
    case 1: {
      // Set a byte to a boundary value.
      if (length === 0) return out;
      out[rng.below(length)] = rng.pick([0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x0d, 0x2c, 0x20]);
      return out;
    }
    case 2:
      // Truncate anywhere.
      return out.subarray(0, rng.below(length + 1));
    case 3: {
      // Drop a range.
      if (length === 0) return out;
      const from = rng.below(length);
      const to = Math.min(length, from + 1 + rng.below(64));
      return Buffer.concat([out.subarray(0, from), out.subarray(to)]);
    }
    case 4: {
      // Duplicate a range in place (repeats headers, options, records).
      if (length === 0) return out;
      const from = rng.below(length);
      const to = Math.min(length, from + 1 + rng.below(256));
      const times = 1 + rng.below(rng.chance(0.1) ? 64 : 3);
      const copies = Array.from({ length: times }, () => out.subarray(from, to));
      return Buffer.concat([out.subarray(0, to), ...copies, out.subarray(to)]).subarray(0, MAX_MUTATED_BYTES);
    }
    case 5: {
      // Write an interesting 16- or 32-bit value at any offset, either byte order.
      const width = rng.chance(0.5) ? 2 : 4;
      if (length < width) return out;
      writeField(
        out,
        { offset: rng.below(length - width + 1), width, littleEndian: rng.chance(0.5) },
        rng.pick(INTERESTING_U32),
      );
      return out;
    }
    case 6: {
      // Splice: a prefix of this input and a suffix of the other.
      const cut = rng.below(length + 1);
      const from = rng.below(other.length + 1);
      return Buffer.concat([out.subarray(0, cut), other.subarray(from)]).subarray(0, MAX_MUTATED_BYTES);
    }
    case 7: {
      // Insert random bytes.
      const at = rng.below(length + 1);
      const extra = Buffer.alloc(1 + rng.below(16));
      for (let k = 0; k < extra.length; k++) extra[k] = rng.below(256);
      return Buffer.concat([out.subarray(0, at), extra, out.subarray(at)]);
    }
    default: {
      // A known length field: nudge it by a little, or set it to an interesting value.
      const field = rng.pick(fields);
      const current = readField(out, field);
      const value = rng.chance(0.5)
        ? current + rng.pick([-8, -4, -2, -1, 1, 2, 4, 8])
        : rng.pick(INTERESTING_U32);
      writeField(out, field, value);
      return out;
    }
  }
}

/** One to `max` stacked mutations. */
export function mutate(
  input: Buffer,
  rng: Prng,
  fieldsOf: (input: Buffer) => readonly LengthField[],
  other: Buffer,
  max = 4,
): Buffer {
  let out = input;
  const rounds = 1 + rng.below(max);
  for (let k = 0; k < rounds; k++) out = mutateOnce(out, rng, fieldsOf(out), other);
  return out;
}
