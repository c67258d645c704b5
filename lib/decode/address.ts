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

/** Text form of the IPv6 address in bytes[0..16), as glibc's inet_ntop writes it (see formatIpv6Words). */
export function formatIpv6(bytes: Uint8Array): string {
  return formatIpv6Words(
    readUint32(bytes, 0),
    readUint32(bytes, 4),
    readUint32(bytes, 8),
    readUint32(bytes, 12),
  );
}

/**
 * Compressed IPv6 as glibc's inet_ntop writes it (what the conntrack tools print): the first longest
 * run of two or more zero groups becomes "::", hex without leading zeros, and the IPv4-compatible
 * (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d) forms end in a dotted quad.
 */
export function formatIpv6Words(w0: number, w1: number, w2: number, w3: number): string {
  const groups = [
    w0 >>> 16,
    w0 & 0xffff,
    w1 >>> 16,
    w1 & 0xffff,
    w2 >>> 16,
    w2 & 0xffff,
    w3 >>> 16,
    w3 & 0xffff,
  ];
  let bestStart = -1;
  let bestLength = 0;
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
  if (bestLength < 2) bestStart = -1;
  let text = "";
  for (let i = 0; i < 8; i++) {
    if (bestStart >= 0 && i >= bestStart && i < bestStart + bestLength) {
      if (i === bestStart) text += ":";
      continue;
    }
    if (i !== 0) text += ":";
    if (i === 6 && bestStart === 0 && (bestLength === 6 || (bestLength === 5 && groups[5] === 0xffff))) {
      text += formatIpv4(w3);
      break;
    }
    text += groups[i].toString(16);
  }
  if (bestStart >= 0 && bestStart + bestLength === 8) text += ":";
  return text;
}

/** The kernel's %pI6: eight groups of four hex digits (what /proc/net/nf_conntrack shows). */
export function formatIpv6Full(w0: number, w1: number, w2: number, w3: number): string {
  const hex = (word: number) =>
    `${(word >>> 16).toString(16).padStart(4, "0")}:${(word & 0xffff).toString(16).padStart(4, "0")}`;
  return `${hex(w0)}:${hex(w1)}:${hex(w2)}:${hex(w3)}`;
}

/** Text form of an address of the given IP version (4: first 4 bytes, 6: all 16). */
export function formatAddress(ipVersion: number, bytes: Uint8Array): string {
  if (ipVersion === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  return formatIpv6(bytes);
}
