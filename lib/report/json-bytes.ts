/**
 * JSON values written as bytes, the bytes `JSON.stringify` gives for them: what the NDJSON encoders
 * (flows.ndjson, events as NDJSON) write their lines with instead of building a record and a string.
 */
import type { Tuple } from "../conntrack/connection.js";
import {
  IPPROTO_GRE,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
} from "../decode/packet.js";
import { writeAscii, writeDecimal, writeText } from "./ascii-bytes.js";
import { writeTupleAddress } from "./conntrack-text.js";
import { writeIsoTime } from "./event-formats.js";

const QUOTE = 0x22;

/** `JSON.stringify(text)`: printable ASCII directly, anything else through JSON.stringify. */
export function writeJsonString(out: Uint8Array, at: number, text: string): number {
  const start = at;
  out[at++] = QUOTE;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code > 0x7e || code === QUOTE || code === 0x5c)
      return writeText(out, start, JSON.stringify(text));
    out[at++] = code;
  }
  out[at++] = QUOTE;
  return at;
}

/** `JSON.stringify(value)` of a number. */
export function writeJsonNumber(out: Uint8Array, at: number, value: number): number {
  if (value >= 0 && value <= Number.MAX_SAFE_INTEGER && Number.isInteger(value))
    return writeDecimal(out, at, value);
  return writeAscii(out, at, JSON.stringify(value));
}

/** An ISO 8601 time (`isoTimeNs`) as a JSON string. */
export function writeJsonTime(out: Uint8Array, at: number, sec: number, nsec: number): number {
  out[at++] = QUOTE;
  at = writeIsoTime(out, at, sec, nsec);
  out[at++] = QUOTE;
  return at;
}

/** `JSON.stringify(tupleRecord(tuple))`. */
export function writeJsonTuple(out: Uint8Array, at: number, tuple: Tuple): number {
  at = writeAscii(out, at, '{"src":"');
  at = writeTupleAddress(out, at, tuple, true);
  at = writeAscii(out, at, '","dst":"');
  at = writeTupleAddress(out, at, tuple, false);
  out[at++] = QUOTE;
  switch (tuple.protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_SCTP:
      at = writeAscii(out, at, ',"sport":');
      at = writeDecimal(out, at, tuple.srcPort);
      at = writeAscii(out, at, ',"dport":');
      at = writeDecimal(out, at, tuple.dstPort);
      break;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      at = writeAscii(out, at, ',"type":');
      at = writeDecimal(out, at, tuple.icmpType);
      at = writeAscii(out, at, ',"code":');
      at = writeDecimal(out, at, tuple.icmpCode);
      at = writeAscii(out, at, ',"id":');
      at = writeDecimal(out, at, tuple.icmpId);
      break;
    case IPPROTO_GRE:
      at = writeAscii(out, at, ',"srckey":"0x');
      at = writeAscii(out, at, tuple.srcPort.toString(16));
      at = writeAscii(out, at, '","dstkey":"0x');
      at = writeAscii(out, at, tuple.dstPort.toString(16));
      out[at++] = QUOTE;
      break;
  }
  out[at++] = 0x7d; // }
  return at;
}
