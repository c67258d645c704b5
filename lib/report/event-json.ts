/**
 * Events as NDJSON lines written as bytes straight into the output chunks: the bytes of
 * `JSON.stringify(eventRecord(event))` and a newline, without the record (an events run writes
 * millions of lines). Times the fast path does not cover take the string path.
 */
import { TCP_STATE_NAMES, Tuple } from "../conntrack/connection.js";
import type { ConntrackEvent } from "../conntrack/engine.js";
import { writeAscii, writeText } from "./ascii-bytes.js";
import { eventRowMaxBytes, fastEventTime } from "./event-csv.js";
import { eventRecord, protocolName } from "./event-formats.js";
import { writeJsonNumber, writeJsonString, writeJsonTime, writeJsonTuple } from "./json-bytes.js";

/** `flags` of the record by (seenReply, assured), as JSON. */
const FLAG_ARRAYS = ['["UNREPLIED"]', "[]", '["UNREPLIED","ASSURED"]', '["ASSURED"]'];

export class EventNdjsonEncoder {
  /** Where a connection's tuple is read into (the getters `original` and `reply` make a new one). */
  private readonly tuple = new Tuple();

  /** The most bytes `encode` writes for `event`. */
  maxBytes(event: ConntrackEvent): number {
    return eventRowMaxBytes(event);
  }

  encode(event: ConntrackEvent, out: Uint8Array, at: number): number {
    const tsSec = event.tsSec;
    const tsNsec = event.tsNsec;
    if (!fastEventTime(tsSec, tsNsec)) {
      at = writeText(out, at, JSON.stringify(eventRecord(event)));
      out[at++] = 0x0a;
      return at;
    }
    const connection = event.connection;
    at = writeAscii(out, at, '{"time":');
    at = writeJsonTime(out, at, tsSec, tsNsec);
    at = writeAscii(out, at, ',"epoch":');
    // The record's epoch is a number of six decimals at most: JSON prints it without trailing zeros.
    at = writeAscii(out, at, `${Number(`${tsSec}.${String(Math.floor(tsNsec / 1000)).padStart(6, "0")}`)}`);
    at = writeAscii(out, at, ',"type":"');
    at = writeAscii(out, at, event.type);
    at = writeAscii(out, at, '","protocol":');
    at = writeJsonString(out, at, protocolName(connection.protocol));
    at = writeAscii(out, at, ',"protocolNumber":');
    at = writeJsonNumber(out, at, connection.protocol);
    at = writeAscii(out, at, ',"timeout":');
    at = event.timeout >= 0 ? writeJsonNumber(out, at, event.timeout) : writeAscii(out, at, "null");
    at = writeAscii(out, at, ',"state":');
    at =
      event.state >= 0 ? writeJsonString(out, at, TCP_STATE_NAMES[event.state]) : writeAscii(out, at, "null");
    at = writeAscii(out, at, ',"original":');
    at = writeJsonTuple(out, at, connection.tupleInto(0, this.tuple));
    at = writeAscii(out, at, ',"reply":');
    at = writeJsonTuple(out, at, connection.tupleInto(1, this.tuple));
    at = writeAscii(out, at, ',"flags":');
    at = writeAscii(out, at, FLAG_ARRAYS[(event.seenReply ? 1 : 0) | (event.assured ? 2 : 0)]);
    if (event.hasCounters) {
      at = writeAscii(out, at, ',"originalPackets":');
      at = writeJsonNumber(out, at, event.originalPackets);
      at = writeAscii(out, at, ',"originalBytes":');
      at = writeJsonNumber(out, at, event.originalBytes);
      at = writeAscii(out, at, ',"replyPackets":');
      at = writeJsonNumber(out, at, event.replyPackets);
      at = writeAscii(out, at, ',"replyBytes":');
      at = writeJsonNumber(out, at, event.replyBytes);
    } else {
      at = writeAscii(
        out,
        at,
        ',"originalPackets":null,"originalBytes":null,"replyPackets":null,"replyBytes":null',
      );
    }
    at = writeAscii(out, at, ',"deltaTime":');
    at = event.deltaTime >= 0 ? writeJsonNumber(out, at, event.deltaTime) : writeAscii(out, at, "null");
    at = writeAscii(out, at, ',"helper":');
    const helper = connection.helper;
    at = helper === null ? writeAscii(out, at, "null") : writeJsonString(out, at, helper);
    at = writeAscii(out, at, ',"id":');
    at = writeJsonNumber(out, at, connection.id);
    at = writeAscii(out, at, ',"masterId":');
    const masterId = connection.masterId;
    at = masterId > 0 ? writeJsonNumber(out, at, masterId) : writeAscii(out, at, "null");
    at = writeAscii(out, at, ',"cause":');
    if (event.type === "DESTROY" && event.destroyCause !== "") {
      out[at++] = 0x22;
      at = writeAscii(out, at, event.destroyCause);
      out[at++] = 0x22;
    } else {
      at = writeAscii(out, at, "null");
    }
    out[at++] = 0x7d; // }
    out[at++] = 0x0a;
    return at;
  }
}
