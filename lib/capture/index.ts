export * from "./source.js";
export { openCapture, type OpenOptions } from "./open.js";
export { mergeSources, MergedSource } from "./merge.js";
export { reorderSource, ReorderedSource, type ReorderOptions } from "./reorder.js";
export { PcapReader, pcapMagic } from "./pcap.js";
export { PcapngReader } from "./pcapng.js";
export { TimestampConverter, unitsPerSecondFromTsresol } from "./timestamp.js";
export {
  ByteInput,
  FileByteInput,
  StreamByteInput,
  BufferedCaptureReader,
  DEFAULT_WORKING_BUFFER_BYTES,
  MAX_RECORD_BYTES,
  MAX_WARNINGS_KEPT,
} from "./bytes.js";
export * from "./writer.js";
