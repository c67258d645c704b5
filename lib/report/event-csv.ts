/**
 * CSV event rows as bytes straight into the output chunks: the bytes `eventCsvRow(eventRecord(event))`
 * writes, without the record or a string per cell (events.csv has a row per event, millions in a big
 * capture). Rows that need quoting (a helper name with a comma or quote) and times the fast path does
 * not cover take the string path, so every row is that function's.
 */
import { TCP_STATE_NAMES, Tuple } from "../conntrack/connection.js";
import type { ConntrackEvent } from "../conntrack/engine.js";
import {
  IPPROTO_GRE,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
} from "../decode/packet.js";
import { writeAscii, writeDecimal, writeNumber, writePadded, writeText } from "./ascii-bytes.js";
import { writeTupleAddress } from "./conntrack-text.js";
import { eventCsvRow, eventRecord, protocolName, writeIsoTime } from "./event-formats.js";

const COMMA = 0x2c;
/** A character that makes csv-stringify quote a cell. */
const NEEDS_QUOTES = /[",\r\n]/;
/** Epoch seconds below this print their six decimals exactly through a double (as `epochOf` does). */
const EXACT_EPOCH_SECONDS = 2 ** 32;

/** Whether an event's time is one the byte encoders write themselves (else the string path does). */
export function fastEventTime(tsSec: number, tsNsec: number): boolean {
  return (
    tsSec >= 0 &&
    tsSec < EXACT_EPOCH_SECONDS &&
    Number.isInteger(tsSec) &&
    tsNsec >= 0 &&
    tsNsec < 1e9 &&
    Number.isInteger(tsNsec)
  );
}

/** The most bytes an event's CSV row or NDJSON line takes. */
export function eventRowMaxBytes(event: ConntrackEvent): number {
  const helper = event.connection.helper;
  return 2048 + (helper === null ? 0 : helper.length * 6);
}

const FLAG_TEXTS = ["UNREPLIED", "", "UNREPLIED ASSURED", "ASSURED"];

export class EventCsvEncoder {
  /** Where a connection's tuple is read into (the getters `original` and `reply` make a new one). */
  private readonly tuple = new Tuple();

  /** The most bytes `encode` writes for `event`. */
  maxBytes(event: ConntrackEvent): number {
    return eventRowMaxBytes(event);
  }

  encode(event: ConntrackEvent, out: Uint8Array, at: number): number {
    const connection = event.connection;
    const helper = connection.helper;
    const tsSec = event.tsSec;
    const tsNsec = event.tsNsec;
    if ((helper !== null && NEEDS_QUOTES.test(helper)) || !fastEventTime(tsSec, tsNsec))
      return writeText(out, at, eventCsvRow(eventRecord(event)));
    at = writeIsoTime(out, at, tsSec, tsNsec);
    out[at++] = COMMA;
    at = writeDecimal(out, at, tsSec);
    out[at++] = 0x2e; // .
    at = writePadded(out, at, Math.floor(tsNsec / 1000), 6);
    out[at++] = COMMA;
    at = writeAscii(out, at, event.type);
    out[at++] = COMMA;
    const protocol = connection.protocol;
    at = writeAscii(out, at, protocolName(protocol));
    out[at++] = COMMA;
    at = writeDecimal(out, at, protocol);
    out[at++] = COMMA;
    if (event.timeout >= 0) at = writeNumber(out, at, event.timeout);
    out[at++] = COMMA;
    if (event.state >= 0) at = writeAscii(out, at, `${TCP_STATE_NAMES[event.state]}`);
    out[at++] = COMMA;
    at = writeTupleCells(out, at, connection.tupleInto(0, this.tuple));
    at = writeTupleCells(out, at, connection.tupleInto(1, this.tuple));
    at = writeAscii(out, at, FLAG_TEXTS[(event.seenReply ? 1 : 0) | (event.assured ? 2 : 0)]);
    out[at++] = COMMA;
    if (event.hasCounters) {
      at = writeNumber(out, at, event.originalPackets);
      out[at++] = COMMA;
      at = writeNumber(out, at, event.originalBytes);
      out[at++] = COMMA;
      at = writeNumber(out, at, event.replyPackets);
      out[at++] = COMMA;
      at = writeNumber(out, at, event.replyBytes);
      out[at++] = COMMA;
    } else {
      at = writeAscii(out, at, ",,,,");
    }
    if (event.deltaTime >= 0) at = writeNumber(out, at, event.deltaTime);
    out[at++] = COMMA;
    if (helper !== null) at = writeText(out, at, helper);
    out[at++] = COMMA;
    at = writeNumber(out, at, connection.id);
    out[at++] = COMMA;
    const masterId = connection.masterId;
    if (masterId > 0) at = writeNumber(out, at, masterId);
    out[at++] = COMMA;
    if (event.type === "DESTROY" && event.destroyCause !== "") at = writeAscii(out, at, event.destroyCause);
    out[at++] = 0x0a;
    return at;
  }
}

/** A tuple's nine cells as `tupleRecord` fills them (src, dst, sport, dport, type, code, id, srckey, dstkey), then a comma. */
function writeTupleCells(out: Uint8Array, at: number, tuple: Tuple): number {
  at = writeTupleAddress(out, at, tuple, true);
  out[at++] = COMMA;
  at = writeTupleAddress(out, at, tuple, false);
  out[at++] = COMMA;
  switch (tuple.protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_SCTP:
      at = writeDecimal(out, at, tuple.srcPort);
      out[at++] = COMMA;
      at = writeDecimal(out, at, tuple.dstPort);
      return writeAscii(out, at, ",,,,,,");
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      at = writeAscii(out, at, ",,");
      at = writeDecimal(out, at, tuple.icmpType);
      out[at++] = COMMA;
      at = writeDecimal(out, at, tuple.icmpCode);
      out[at++] = COMMA;
      at = writeDecimal(out, at, tuple.icmpId);
      return writeAscii(out, at, ",,,");
    case IPPROTO_GRE:
      at = writeAscii(out, at, ",,,,,0x");
      at = writeAscii(out, at, tuple.srcPort.toString(16));
      at = writeAscii(out, at, ",0x");
      at = writeAscii(out, at, tuple.dstPort.toString(16));
      out[at++] = COMMA;
      return at;
    default:
      return writeAscii(out, at, ",,,,,,,");
  }
}
