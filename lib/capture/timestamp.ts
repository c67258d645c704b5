/**
 * Exact conversion of 64-bit timestamp unit counts (pcapng) into seconds and nanoseconds.
 *
 * A nanosecond count of today's date is about 2^60, beyond the 2^53 a double holds exactly, so the
 * count is divided limb by limb: every intermediate stays below 2^53 and the result is exact without
 * BigInt or any allocation. BigInt is used only for resolutions finer than about 57 femtoseconds.
 */

const NANOS_PER_SECOND = 1_000_000_000;
const TWO_POW_32 = 4294967296;
/** Divisors below this are divided in 16-bit limbs (remainder * 2^16 + limb < 2^46). */
const LIMB16_DIVISOR_LIMIT = 2 ** 30;
/** Divisors below this are divided in 8-bit limbs (remainder * 2^8 + limb < 2^52). */
const LIMB8_DIVISOR_LIMIT = 2 ** 44;
/** Below this, remainder * 1e9 stays under 2^53. */
const DIRECT_FRACTION_LIMIT = 2 ** 23;

const enum DivisionMode {
  Limb16,
  Limb8,
  Big,
}

/** Units per second for a pcapng if_tsresol byte: 10^-n, or 2^-n when the high bit is set. */
export function unitsPerSecondFromTsresol(tsresol: number): { unitsPerSecond: number; exact: bigint } {
  const binary = (tsresol & 0x80) !== 0;
  const exponent = tsresol & 0x7f;
  const exact = (binary ? 2n : 10n) ** BigInt(exponent);
  return { unitsPerSecond: Number(exact), exact };
}

/**
 * Converts (high, low) 32-bit halves of a unit count into `sec` / `nsec`, adding a whole-second
 * offset (pcapng if_tsoffset). One converter per interface; results land in its fields.
 */
export class TimestampConverter {
  sec = 0;
  nsec = 0;
  private readonly mode: DivisionMode;
  /** Nanoseconds per unit when the unit divides a second evenly into whole nanoseconds, else 0. */
  private readonly nanosPerUnit: number;
  private readonly exactUnits: bigint;

  constructor(
    readonly unitsPerSecond: number,
    readonly offsetSec = 0,
    exactUnitsPerSecond?: bigint,
  ) {
    if (!(unitsPerSecond >= 1)) throw new RangeError(`invalid timestamp resolution ${unitsPerSecond}`);
    this.exactUnits = exactUnitsPerSecond ?? BigInt(unitsPerSecond);
    this.mode =
      unitsPerSecond < LIMB16_DIVISOR_LIMIT
        ? DivisionMode.Limb16
        : unitsPerSecond < LIMB8_DIVISOR_LIMIT
          ? DivisionMode.Limb8
          : DivisionMode.Big;
    this.nanosPerUnit =
      unitsPerSecond <= NANOS_PER_SECOND && NANOS_PER_SECOND % unitsPerSecond === 0
        ? NANOS_PER_SECOND / unitsPerSecond
        : 0;
  }

  convert(high: number, low: number): void {
    const units = this.unitsPerSecond;
    let remainder: number;
    if (this.mode === DivisionMode.Big) {
      this.convertBig(high, low);
      return;
    }
    if (high < 0x100000) {
      // Below 2^52 the count is an exact double; a floating quotient is off by at most one.
      const count = high * TWO_POW_32 + low;
      let quotient = Math.floor(count / units);
      remainder = count - quotient * units;
      if (remainder < 0) {
        quotient -= 1;
        remainder += units;
      } else if (remainder >= units) {
        quotient += 1;
        remainder -= units;
      }
      this.sec = quotient + this.offsetSec;
    } else if (this.mode === DivisionMode.Limb16) {
      let part = high >>> 16;
      let q3 = Math.floor(part / units);
      remainder = part - q3 * units;
      part = remainder * 65536 + (high & 0xffff);
      const q2 = Math.floor(part / units);
      remainder = part - q2 * units;
      part = remainder * 65536 + (low >>> 16);
      const q1 = Math.floor(part / units);
      remainder = part - q1 * units;
      part = remainder * 65536 + (low & 0xffff);
      const q0 = Math.floor(part / units);
      remainder = part - q0 * units;
      q3 = ((q3 * 65536 + q2) * 65536 + q1) * 65536 + q0;
      this.sec = q3 + this.offsetSec;
    } else {
      let quotient = 0;
      remainder = 0;
      for (let byteIndex = 0; byteIndex < 8; byteIndex++) {
        const word = byteIndex < 4 ? high : low;
        let part = remainder * 256 + ((word >>> (24 - 8 * (byteIndex & 3))) & 0xff);
        let digit = Math.floor(part / units);
        part -= digit * units;
        if (part < 0) {
          digit -= 1;
          part += units;
        } else if (part >= units) {
          digit += 1;
          part -= units;
        }
        remainder = part;
        quotient = quotient * 256 + digit;
      }
      this.sec = quotient + this.offsetSec;
    }
    this.nsec = this.fractionToNanos(remainder);
  }

  /** floor(remainder * 1e9 / units) for 0 <= remainder < units, exactly. */
  private fractionToNanos(remainder: number): number {
    const units = this.unitsPerSecond;
    if (this.nanosPerUnit !== 0) return remainder * this.nanosPerUnit;
    if (units < DIRECT_FRACTION_LIMIT) {
      const scaled = remainder * NANOS_PER_SECOND;
      let nanos = Math.floor(scaled / units);
      const left = scaled - nanos * units;
      if (left < 0) nanos -= 1;
      else if (left >= units) nanos += 1;
      return nanos;
    }
    // Decimal long division, one digit at a time: remainder * 10 < 2^48.
    let nanos = 0;
    for (let digitIndex = 0; digitIndex < 9; digitIndex++) {
      const scaled = remainder * 10;
      const digit = Math.floor(scaled / units);
      remainder = scaled - digit * units;
      nanos = nanos * 10 + digit;
    }
    return nanos;
  }

  private convertBig(high: number, low: number): void {
    const count = (BigInt(high) << 32n) | BigInt(low);
    this.sec = Number(count / this.exactUnits) + this.offsetSec;
    this.nsec = Number(((count % this.exactUnits) * 1_000_000_000n) / this.exactUnits);
  }
}
