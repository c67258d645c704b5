import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { openCapture } from "../capture/open.js";
import { mergeSources } from "../capture/merge.js";
import { reorderSource } from "../capture/reorder.js";
import type { CaptureSource } from "../capture/source.js";

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
}

export interface OpenedInputs {
  /** Each input as opened, for per-input details (format, interfaces, warnings). */
  inputs: CaptureSource[];
  /** The single stream downstream reads: inputs merged by timestamp, each reordered if asked. */
  source: CaptureSource;
}

export async function openInputs(
  files: readonly string[],
  options: InputOptions = {},
): Promise<OpenedInputs> {
  const inputs: CaptureSource[] = [];
  try {
    for (const file of files) inputs.push(await openCapture(file));
  } catch (error) {
    await Promise.all(inputs.map((input) => input.close()));
    throw error;
  }
  options.onOpened?.(inputs);
  const windowNs = options.reorderWindowNs ?? 0;
  const ordered = windowNs > 0 ? inputs.map((input) => reorderSource(input, { windowNs })) : inputs;
  const source = ordered.length === 1 ? ordered[0] : mergeSources(ordered);
  return { inputs, source };
}
