/** Address text as the conntrack tools print it: the decoder's formatting, in the engine's word form. */
export { formatIpv4, formatIpv6Words as formatIpv6, formatIpv6Full } from "../decode/address.js";

/** Reads 16 address bytes as four big-endian 32-bit words into `out`. */
export function ipv6Words(bytes: Uint8Array, out: Uint32Array | number[]): void {
  for (let i = 0; i < 4; i++) {
    out[i] =
      ((bytes[4 * i] << 24) | (bytes[4 * i + 1] << 16) | (bytes[4 * i + 2] << 8) | bytes[4 * i + 3]) >>> 0;
  }
}
