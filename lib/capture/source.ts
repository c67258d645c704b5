/**
 * The contract between capture readers and everything downstream.
 *
 * A source hands out one record at a time through a single reused `record` object, so reading
 * allocates nothing per packet. The bytes a record points at stay valid only until the next call
 * to `next()` or `fill()`: a consumer that keeps bytes longer must copy them.
 */

/** One captured record. Every field is overwritten by the next record. */
export interface CaptureRecord {
  /** Buffer holding the captured bytes; owned by the reader. */
  data: Buffer;
  /** Index in `data` of the first captured byte (the link-layer header). */
  offset: number;
  /** Bytes captured. */
  caplen: number;
  /** Bytes the packet had on the wire. */
  origlen: number;
  /** Whole seconds since the Unix epoch (UTC). */
  tsSec: number;
  /** Nanoseconds within the second, 0 to 999 999 999. */
  tsNsec: number;
  /** Link-layer type (LINKTYPE_* from the tcpdump.org registry) of the record's interface. */
  linkType: number;
  /** Index into the source's `interfaces` (pcapng: unique across sections; classic pcap: always 0). */
  interfaceId: number;
  /** Which input of a merge this record came from (0 for a single input). */
  inputIndex: number;
  /** 1-based number of the record within its input, counting packet records only (as Wireshark numbers frames). */
  recordNumber: number;
  /** Byte offset of the record's header within its (decompressed) input. */
  fileOffset: number;
}

/** A zeroed record for a source to reuse. */
export function emptyCaptureRecord(): CaptureRecord {
  return {
    data: Buffer.alloc(0),
    offset: 0,
    caplen: 0,
    origlen: 0,
    tsSec: 0,
    tsNsec: 0,
    linkType: 0,
    interfaceId: 0,
    inputIndex: 0,
    recordNumber: 0,
    fileOffset: 0,
  };
}

/** Copies every field of `from` into `to` (the bytes are shared, not copied). */
export function copyCaptureRecord(to: CaptureRecord, from: CaptureRecord): void {
  to.data = from.data;
  to.offset = from.offset;
  to.caplen = from.caplen;
  to.origlen = from.origlen;
  to.tsSec = from.tsSec;
  to.tsNsec = from.tsNsec;
  to.linkType = from.linkType;
  to.interfaceId = from.interfaceId;
  to.inputIndex = from.inputIndex;
  to.recordNumber = from.recordNumber;
  to.fileOffset = from.fileOffset;
}

/** pcapng interface statistics (ISB); absent fields were not in the block. */
export interface InterfaceStatistics {
  tsSec: number;
  tsNsec: number;
  /** isb_ifrecv: packets received by the interface. */
  received?: number;
  /** isb_ifdrop: packets dropped by the interface for lack of resources. */
  interfaceDropped?: number;
  /** isb_filteraccept: packets accepted by the capture filter. */
  filterAccepted?: number;
  /** isb_osdrop: packets dropped by the operating system. */
  osDropped?: number;
  /** isb_usrdeliv: packets delivered to the user. */
  delivered?: number;
}

export interface CaptureInterface {
  /** Index of the pcapng section (0 for classic pcap). */
  sectionIndex: number;
  /** Index of the interface within its section (its pcapng interface id). */
  localId: number;
  linkType: number;
  snaplen: number;
  /** if_name / if_description when the file gave them. */
  name?: string;
  description?: string;
  /** Timestamp units per second (if_tsresol): 1e6 by default. */
  unitsPerSecond: number;
  /** if_tsoffset, seconds added to every timestamp. */
  tsOffsetSec: number;
  /** Last interface statistics block seen for this interface. */
  statistics?: InterfaceStatistics;
}

/** A problem that did not stop reading, or the damage that ended it. */
export interface CaptureWarning {
  file: string;
  /** Byte offset in the (decompressed) input where the problem starts. */
  offset: number;
  /** 1-based number of the packet record concerned, or of the record that would have come next. */
  recordNumber: number;
  message: string;
}

/** Capture format errors that stop reading before any packet: bad magic, unreadable header. */
export class CaptureError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly recordNumber: number,
    readonly detail: string,
  ) {
    super(`${file}: ${detail} (byte offset ${offset}${recordNumber > 0 ? `, packet ${recordNumber}` : ""})`);
    this.name = "CaptureError";
  }
}

export type CaptureFormat = "pcap" | "pcap-nsec" | "pcap-modified" | "pcapng";

export interface CaptureSource {
  /** Name used in messages: the path, or "-" / "<stdin>". */
  readonly name: string;
  /** The current record (valid after `next()` returned true). */
  readonly record: CaptureRecord;
  /** Interfaces described so far (pcapng grows this as IDBs appear). */
  readonly interfaces: CaptureInterface[];
  /** Non-fatal problems met so far, including the damage that ended a truncated input. */
  readonly warnings: CaptureWarning[];
  /** Detected file format(s); for a merge, of each input. */
  readonly format: CaptureFormat | CaptureFormat[];
  /** Whether the input was gzip-compressed. */
  readonly compressed: boolean | boolean[];
  /** Records out of timestamp order within an input (see ReorderOptions). */
  readonly outOfOrder: number;
  /** Bytes of the stored file (compressed, for gzip) consumed so far; the file readers give it. */
  readonly bytesConsumed?: number;
  /** Packet records read so far; the file readers give it. */
  readonly packetsRead?: number;
  /**
   * Advances to the next record whose bytes are in memory. Returns false when the buffered input is
   * used up: call `fill()` and try again. Never allocates.
   */
  next(): boolean;
  /** Reads more input. Resolves false at the end of the input; `next()` then returns false for good. */
  fill(): Promise<boolean>;
  /** Releases the file or stream. Safe to call twice. */
  close(): Promise<void>;
}

/** Calls `onRecord` for every record of `source`, in order, with backpressure from the consumer. */
export async function forEachRecord(
  source: CaptureSource,
  onRecord: (record: CaptureRecord) => void,
): Promise<void> {
  for (;;) {
    while (source.next()) onRecord(source.record);
    if (!(await source.fill())) {
      while (source.next()) onRecord(source.record);
      return;
    }
  }
}
