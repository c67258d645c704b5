import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { openCapture } from "../capture/open.js";
import { mergeSources } from "../capture/merge.js";
import { ReorderedSource } from "../capture/reorder.js";
import type { CaptureSource } from "../capture/source.js";
import type { ByteBufferPool } from "../capture/bytes.js";

const CAPTURE_FILE = /\.(pcap|pcapng|cap|dmp)(\.gz)?$/i;

/**
 * Expands the command line's inputs: a directory stands for the capture files below it (by name,
 * sorted, so runs are repeatable); "-" is standard input; any other path is read whatever its name.
 */
export async function expandInputs(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    if (path !== "-" && (await stat(path)).isDirectory()) files.push(...(await captureFilesBelow(path)));
    else files.push(path);
  }
  return files;
}

async function captureFilesBelow(directory: string): Promise<string[]> {
  const found: string[] = [];
  const entries = await readdir(directory, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) found.push(...(await captureFilesBelow(path)));
    else if (entry.isFile() && CAPTURE_FILE.test(entry.name)) found.push(path);
  }
  return found;
}

export interface InputOptions {
  /** Hold records this long to put late ones back in timestamp order (0: keep file order). */
  reorderWindowNs?: number;
  /** Called once every input is open, with the readers (for a progress display's byte counts). */
  onOpened?: (inputs: readonly CaptureSource[]) => void;
  /** Each input's working buffer (default: the readers' own, 1 MiB). */
  bufferBytes?: number;
  /** Buffers whose records outlive the reader's use of them (lib/capture/bytes.ts). */
  pool?: ByteBufferPool | null;
}

export interface OpenedInputs {
  /** Each input as opened, for per-input details (format, interfaces, warnings). */
  inputs: CaptureSource[];
  /** The single stream downstream reads: inputs merged by timestamp, each reordered if asked. */
  source: CaptureSource;
  /** Time order as read: records older than one before them, and what the reorder window did. */
  order(): InputOrderStats;
}

export interface InputOrderStats {
  /** Records older than a record before them in the same input, as the files hold them. */
  outOfOrder: number;
  /** The reorder window (`reorderWindowNs`), 0 when off. */
  reorderWindowNs: number;
  /** Records the window put back in order. */
  reordered: number;
  /** Records later than the window allows: passed on out of order. */
  lateBeyondWindow: number;
  /** Records released before their window ran out because the window's memory was full. */
  releasedEarly: number;
}

export async function openInputs(
  files: readonly string[],
  options: InputOptions = {},
): Promise<OpenedInputs> {
  const inputs: CaptureSource[] = [];
  try {
    for (const file of files)
      inputs.push(await openCapture(file, { bufferBytes: options.bufferBytes, pool: options.pool }));
  } catch (error) {
    await Promise.all(inputs.map((input) => input.close()));
    throw error;
  }
  options.onOpened?.(inputs);
  const windowNs = options.reorderWindowNs ?? 0;
  const reordering = windowNs > 0 ? inputs.map((input) => new ReorderedSource(input, { windowNs })) : [];
  const ordered = windowNs > 0 ? reordering : inputs;
  const source = ordered.length === 1 ? ordered[0] : mergeSources(ordered);
  const order = (): InputOrderStats => {
    const sum = (count: (source: ReorderedSource) => number) =>
      reordering.reduce((total, source) => total + count(source), 0);
    return {
      outOfOrder: inputs.reduce((total, input) => total + input.outOfOrder, 0),
      reorderWindowNs: windowNs,
      reordered: sum((source) => source.reordered),
      lateBeyondWindow: sum((source) => source.lateBeyondWindow),
      releasedEarly: sum((source) => source.releasedEarly),
    };
  };
  return { inputs, source, order };
}
