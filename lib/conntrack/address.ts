/** Address text as the conntrack tools print it (inet_ntoa / glibc inet_ntop, and the kernel's %pI6). */

export function formatIpv4(word: number): string {
  return `${word >>> 24}.${(word >>> 16) & 0xff}.${(word >>> 8) & 0xff}.${word & 0xff}`;
}

/**
 * Compressed IPv6 as glibc's inet_ntop writes it: the first longest run of two or more zero groups
 * becomes "::", hex without leading zeros, and the IPv4-compatible (::a.b.c.d) and IPv4-mapped
 * (::ffff:a.b.c.d) forms end in dotted quad.
 */
export function formatIpv6(w0: number, w1: number, w2: number, w3: number): string {
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

/** Reads 16 address bytes as four big-endian 32-bit words into `out`. */
export function ipv6Words(bytes: Uint8Array, out: Uint32Array | number[]): void {
  for (let i = 0; i < 4; i++) {
    out[i] =
      ((bytes[4 * i] << 24) | (bytes[4 * i + 1] << 16) | (bytes[4 * i + 2] << 8) | bytes[4 * i + 3]) >>> 0;
  }
}
