/**
 * Writing ASCII text and decimal numbers straight into byte buffers: the line encoders (conntrack text
 * events, flows.csv rows) build no strings per line.
 */

const DIGIT_0 = 0x30;

/** ASCII text as bytes; returns the offset after it. */
export function writeAscii(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[at++] = text.charCodeAt(i);
  return at;
}

/** A non-negative integer (up to 2^53) in decimal. */
export function writeDecimal(out: Uint8Array, at: number, value: number): number {
  if (value < 10) {
    out[at] = DIGIT_0 + value;
    return at + 1;
  }
  if (value < 0x80000000) {
    // Small integer arithmetic: the common case (ports, octets, counters, timeouts).
    let digits = 2;
    for (let limit = 100; value >= limit && digits < 10; limit *= 10) digits++;
    let rest = value | 0;
    for (let i = at + digits - 1; i >= at; i--) {
      const next = (rest / 10) | 0;
      out[i] = DIGIT_0 + rest - next * 10;
      rest = next;
    }
    return at + digits;
  }
  let digits = 1;
  for (let limit = 10; value >= limit && digits < 16; limit *= 10) digits++;
  let rest = value;
  for (let i = at + digits - 1; i >= at; i--) {
    const next = Math.floor(rest / 10);
    out[i] = DIGIT_0 + (rest - next * 10);
    rest = next;
  }
  return at + digits;
}

/** A number as `${value}` prints it; whole non-negative ones digit by digit. */
export function writeNumber(out: Uint8Array, at: number, value: number): number {
  if (!(value >= 0 && value <= Number.MAX_SAFE_INTEGER && Number.isInteger(value)))
    return writeAscii(out, at, `${value}`);
  return writeDecimal(out, at, value);
}

/** A non-negative integer in decimal, zero-padded to at least `width` digits (as padStart). */
export function writePadded(out: Uint8Array, at: number, value: number, width: number): number {
  let digits = 1;
  for (let limit = 10; value >= limit && digits < 16; limit *= 10) digits++;
  for (let i = digits; i < width; i++) out[at++] = DIGIT_0;
  return writeDecimal(out, at, value);
}

const utf8 = new TextEncoder();

/** Any text, as UTF-8 (as a stream would encode it); the buffer must have 3 bytes per UTF-16 unit. */
export function writeText(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) return at - i + utf8.encodeInto(text, out.subarray(at - i)).written;
    out[at++] = code;
  }
  return at;
}
