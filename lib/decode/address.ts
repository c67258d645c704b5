/**
 * Address helpers. The decoder keeps addresses as bytes (and IPv4 also as an unsigned 32-bit number);
 * the formatting functions here allocate strings and are meant for reports and messages, not the
 * per-packet path.
 */

/** Reads 4 bytes at `offset` as an unsigned big-endian 32-bit number. */
export function readUint32(buf: Uint8Array, offset: number): number {
  return ((buf[offset] << 24) | (buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3]) >>> 0;
}

/** Copies `length` bytes from buf[offset] into the start of `target`. */
export function copyAddress(buf: Uint8Array, offset: number, target: Uint8Array, length: number): void {
  for (let i = 0; i < length; i++) target[i] = buf[offset + i];
}

/** True when the first `length` bytes of the two arrays are equal. */
export function addressesEqual(a: Uint8Array, b: Uint8Array, length: number): boolean {
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Dotted-quad form of an IPv4 address held as an unsigned 32-bit number. */
export function formatIpv4(address: number): string {
  return `${address >>> 24}.${(address >>> 16) & 0xff}.${(address >>> 8) & 0xff}.${address & 0xff}`;
}

/** RFC 5952 text form of the IPv6 address in bytes[0..16): lowercase, longest zero run (2+ groups) as "::". */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  // IPv4-mapped addresses keep their familiar dotted tail, as inet_ntop prints them.
  if (bestStart === 0 && bestLength === 5 && groups[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  const hex = (from: number, to: number) =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/** Text form of an address of the given IP version (4: first 4 bytes, 6: all 16). */
export function formatAddress(ipVersion: number, bytes: Uint8Array): string {
  if (ipVersion === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  return formatIpv6(bytes);
}
