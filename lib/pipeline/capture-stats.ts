import { forEachRecord, type CaptureSource, type CaptureWarning } from "../capture/source.js";
import { linkTypeName } from "../capture/linktypes.js";
import { PacketDecoder } from "../decode/decoder.js";
import type { PacketClassName } from "../decode/packet.js";
import { PacketAccounting } from "./accounting.js";
import { openInputs, type InputOptions } from "./inputs.js";

export interface InterfaceReport {
  section: number;
  id: number;
  linkType: number;
  linkTypeName: string;
  snaplen: number;
  name?: string;
  description?: string;
  statistics?: Record<string, number>;
}

export interface InputReport {
  file: string;
  format: string;
  compressed: boolean;
  records: number;
  classes: Record<PacketClassName, number>;
  outOfOrder: number;
  firstPacket: string | null;
  lastPacket: string | null;
  interfaces: InterfaceReport[];
  warnings: CaptureWarning[];
}

export interface CaptureStatistics {
  records: number;
  classes: Record<PacketClassName, number>;
  reasons: Record<string, number>;
  linkTypes: Record<string, number>;
  decoder: Record<string, unknown>;
  inputs: InputReport[];
  warnings: CaptureWarning[];
}

/** Reads the inputs through the decoder and accounts for every record: the `stats` command's work. */
export async function collectCaptureStatistics(
  files: readonly string[],
  options: InputOptions = {},
): Promise<CaptureStatistics> {
  const { inputs, source } = await openInputs(files, options);
  const accounting = new PacketAccounting(inputs.length);
  const decoder = new PacketDecoder();
  const linkTypeCounts = new Map<number, number>();
  const firstTs = inputs.map(() => [Infinity, 0]);
  const lastTs = inputs.map(() => [-Infinity, 0]);
  try {
    await forEachRecord(source, (record) => {
      const packetClass = decoder.decode(record);
      accounting.count(record.inputIndex, packetClass, decoder.packet.reason);
      linkTypeCounts.set(record.linkType, (linkTypeCounts.get(record.linkType) ?? 0) + 1);
      const first = firstTs[record.inputIndex];
      if (record.tsSec < first[0] || (record.tsSec === first[0] && record.tsNsec < first[1])) {
        first[0] = record.tsSec;
        first[1] = record.tsNsec;
      }
      const last = lastTs[record.inputIndex];
      if (record.tsSec > last[0] || (record.tsSec === last[0] && record.tsNsec > last[1])) {
        last[0] = record.tsSec;
        last[1] = record.tsNsec;
      }
    });
    decoder.finish();
  } finally {
    await source.close();
    await Promise.all(inputs.map((input) => input.close()));
  }
  const inputReports = inputs.map((input, index) =>
    describeInput(input, accounting, index, firstTs[index], lastTs[index]),
  );
  return {
    records: accounting.records,
    classes: accounting.classes,
    reasons: accounting.reasons,
    linkTypes: Object.fromEntries(
      [...linkTypeCounts]
        .sort((a, b) => a[0] - b[0])
        .map(([type, n]) => [`${linkTypeName(type)} (${type})`, n]),
    ),
    decoder: decoderDetails(decoder),
    inputs: inputReports,
    warnings: inputReports.flatMap((input) => input.warnings),
  };
}

/** The decoder's counters beyond the classes, which the accounting already gives per input. */
function decoderDetails(decoder: PacketDecoder): Record<string, unknown> {
  const { records: _records, classes: _classes, reasons: _reasons, ...details } = decoder.stats.toJSON();
  return details;
}

function describeInput(
  input: CaptureSource,
  accounting: PacketAccounting,
  index: number,
  first: number[],
  last: number[],
): InputReport {
  return {
    file: input.name,
    format: String(input.format),
    compressed: Boolean(input.compressed),
    records: accounting.recordsOf(index),
    classes: accounting.classesOf(index),
    outOfOrder: input.outOfOrder,
    firstPacket: Number.isFinite(first[0]) ? isoTime(first[0], first[1]) : null,
    lastPacket: Number.isFinite(last[0]) ? isoTime(last[0], last[1]) : null,
    interfaces: input.interfaces.map((iface) => ({
      section: iface.sectionIndex,
      id: iface.localId,
      linkType: iface.linkType,
      linkTypeName: linkTypeName(iface.linkType),
      snaplen: iface.snaplen,
      ...(iface.name !== undefined && { name: iface.name }),
      ...(iface.description !== undefined && { description: iface.description }),
      ...(iface.statistics && { statistics: withoutUndefined(iface.statistics) }),
    })),
    warnings: [...input.warnings],
  };
}

function withoutUndefined(statistics: object): Record<string, number> {
  return Object.fromEntries(Object.entries(statistics).filter(([, value]) => value !== undefined));
}

/** ISO 8601 UTC with nanoseconds, as the capture recorded them. */
export function isoTime(tsSec: number, tsNsec: number): string {
  const base = new Date(tsSec * 1000).toISOString().slice(0, 19);
  return `${base}.${String(tsNsec).padStart(9, "0")}Z`;
}
