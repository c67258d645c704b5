/** A synthetic capture (test/bench/synth.ts) written to a file for a test. */
import { createWriteStream } from "node:fs";
import { writeSyntheticCapture, type SynthOptions } from "../bench/synth.js";

/** Writes the capture to `path`; returns the path once the file is complete. */
export async function syntheticCaptureFile(path: string, options: SynthOptions): Promise<string> {
  await writeSyntheticCapture(createWriteStream(path), options);
  return path;
}
