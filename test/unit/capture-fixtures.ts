/** Hand-built capture bytes for the capture reader tests (no writer involved, on purpose). */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { forEachRecord, type CaptureSource } from "../../lib/capture/source.js";

export interface PcapRecordSpec {
  sec: number;
  /** Microseconds or nanoseconds, as the magic says. */
  fraction: number;
  data: Buffer;
  origlen?: number;
  /** Overrides the caplen field (to make damaged files). */
  caplen?: number;
}

export interface PcapSpec {
  littleEndian?: boolean;
  magic?: number;
  snaplen?: number;
  linkField?: number;
  records: PcapRecordSpec[];
}

function u32(value: number, littleEndian: boolean): Buffer {
  const bytes = Buffer.alloc(4);
  if (littleEndian) bytes.writeUInt32LE(value >>> 0);
  else bytes.writeUInt32BE(value >>> 0);
  return bytes;
}

function u16(value: number, littleEndian: boolean): Buffer {
  const bytes = Buffer.alloc(2);
  if (littleEndian) bytes.writeUInt16LE(value);
  else bytes.writeUInt16BE(value);
  return bytes;
}

export function pcapBytes(spec: PcapSpec): Buffer {
  const littleEndian = spec.littleEndian ?? true;
  const magic = spec.magic ?? 0xa1b2c3d4;
  const modified = magic === 0xa1b2cd34;
  const parts: Buffer[] = [
    u32(magic, littleEndian),
    u16(2, littleEndian),
    u16(4, littleEndian),
    u32(0, littleEndian),
    u32(0, littleEndian),
    u32(spec.snaplen ?? 65535, littleEndian),
    u32(spec.linkField ?? 1, littleEndian),
  ];
  for (const record of spec.records) {
    parts.push(
      u32(record.sec, littleEndian),
      u32(record.fraction, littleEndian),
      u32(record.caplen ?? record.data.length, littleEndian),
      u32(record.origlen ?? record.data.length, littleEndian),
    );
    if (modified) parts.push(Buffer.from([0, 0, 0, 7, 0, 0x08, 0, 0]));
    parts.push(record.data);
  }
  return Buffer.concat(parts);
}

/** A frame whose bytes tell which record it is. */
export function frame(tag: number, length = 60): Buffer {
  const bytes = Buffer.alloc(length);
  for (let index = 0; index < length; index++) bytes[index] = (tag * 31 + index) & 0xff;
  return bytes;
}

// ---- pcapng ----

function pad4(bytes: Buffer): Buffer {
  const padding = (4 - (bytes.length % 4)) % 4;
  return padding === 0 ? bytes : Buffer.concat([bytes, Buffer.alloc(padding)]);
}

export function block(type: number, body: Buffer, littleEndian = true): Buffer {
  const padded = pad4(body);
  const length = padded.length + 12;
  return Buffer.concat([
    u32(type, littleEndian),
    u32(length, littleEndian),
    padded,
    u32(length, littleEndian),
  ]);
}

export function option(code: number, value: Buffer, littleEndian = true): Buffer {
  return Buffer.concat([u16(code, littleEndian), u16(value.length, littleEndian), pad4(value)]);
}

function options(list: Buffer[], littleEndian: boolean): Buffer {
  return list.length === 0 ? Buffer.alloc(0) : Buffer.concat([...list, u32(0, littleEndian)]);
}

export function sectionHeader(littleEndian = true, optionList: Buffer[] = []): Buffer {
  return block(
    0x0a0d0d0a,
    Buffer.concat([
      u32(0x1a2b3c4d, littleEndian),
      u16(1, littleEndian),
      u16(0, littleEndian),
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
      options(optionList, littleEndian),
    ]),
    littleEndian,
  );
}

export function interfaceDescription(
  linkType: number,
  snaplen: number,
  littleEndian = true,
  optionList: Buffer[] = [],
): Buffer {
  return block(
    1,
    Buffer.concat([
      u16(linkType, littleEndian),
      u16(0, littleEndian),
      u32(snaplen, littleEndian),
      options(optionList, littleEndian),
    ]),
    littleEndian,
  );
}

/** 64-bit unit count as (high, low). */
export function splitUnits(units: bigint): [number, number] {
  return [Number(units >> 32n), Number(units & 0xffffffffn)];
}

export function enhancedPacket(
  interfaceId: number,
  units: bigint,
  data: Buffer,
  littleEndian = true,
  origlen = data.length,
): Buffer {
  const [high, low] = splitUnits(units);
  return block(
    6,
    Buffer.concat([
      u32(interfaceId, littleEndian),
      u32(high, littleEndian),
      u32(low, littleEndian),
      u32(data.length, littleEndian),
      u32(origlen, littleEndian),
      data,
    ]),
    littleEndian,
  );
}

export function obsoletePacket(
  interfaceId: number,
  drops: number,
  units: bigint,
  data: Buffer,
  littleEndian = true,
): Buffer {
  const [high, low] = splitUnits(units);
  return block(
    2,
    Buffer.concat([
      u16(interfaceId, littleEndian),
      u16(drops, littleEndian),
      u32(high, littleEndian),
      u32(low, littleEndian),
      u32(data.length, littleEndian),
      u32(data.length, littleEndian),
      data,
    ]),
    littleEndian,
  );
}

export function simplePacket(origlen: number, data: Buffer, littleEndian = true): Buffer {
  return block(3, Buffer.concat([u32(origlen, littleEndian), data]), littleEndian);
}

export function interfaceStatistics(
  interfaceId: number,
  units: bigint,
  optionList: Buffer[],
  littleEndian = true,
): Buffer {
  const [high, low] = splitUnits(units);
  return block(
    5,
    Buffer.concat([
      u32(interfaceId, littleEndian),
      u32(high, littleEndian),
      u32(low, littleEndian),
      options(optionList, littleEndian),
    ]),
    littleEndian,
  );
}

export function u64Option(code: number, value: number, littleEndian = true): Buffer {
  const bytes = Buffer.alloc(8);
  if (littleEndian) bytes.writeBigUInt64LE(BigInt(value));
  else bytes.writeBigUInt64BE(BigInt(value));
  return option(code, bytes, littleEndian);
}

export function i64Option(code: number, value: number, littleEndian = true): Buffer {
  const bytes = Buffer.alloc(8);
  if (littleEndian) bytes.writeBigInt64LE(BigInt(value));
  else bytes.writeBigInt64BE(BigInt(value));
  return option(code, bytes, littleEndian);
}

// ---- files and reading ----

let scratchDir: string | null = null;

export function writeScratch(name: string, bytes: Buffer): string {
  if (scratchDir === null) {
    const dir = mkdtempSync(join(tmpdir(), "capture-test-"));
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
    scratchDir = dir;
  }
  const path = join(scratchDir, name);
  writeFileSync(path, bytes);
  return path;
}

export interface ReadRecord {
  number: number;
  sec: number;
  nsec: number;
  caplen: number;
  origlen: number;
  linkType: number;
  interfaceId: number;
  inputIndex: number;
  fileOffset: number;
  hex: string;
}

/** Reads a source to the end, copying what each record held at the moment it was delivered. */
export async function readAll(source: CaptureSource): Promise<ReadRecord[]> {
  const records: ReadRecord[] = [];
  try {
    await forEachRecord(source, (record) =>
      records.push({
        number: record.recordNumber,
        sec: record.tsSec,
        nsec: record.tsNsec,
        caplen: record.caplen,
        origlen: record.origlen,
        linkType: record.linkType,
        interfaceId: record.interfaceId,
        inputIndex: record.inputIndex,
        fileOffset: record.fileOffset,
        hex: record.data.toString("hex", record.offset, record.offset + record.caplen),
      }),
    );
  } finally {
    await source.close();
  }
  return records;
}
