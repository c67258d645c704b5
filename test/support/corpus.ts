import { readFileSync, existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";

/** The repository root, found from this file (dist/test/support → repo). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** tcpdump's public test captures, shipped beside the repository in ../shared/corpus. */
export const corpusDir = join(repoRoot, "..", "shared", "corpus", "tcpdump-tests");
const corpusTsv = join(repoRoot, "..", "shared", "corpus", "tcpdump-tests.tsv");

export interface CorpusEntry {
  file: string;
  path: string;
  encapsulation: string;
  /** capinfos' packet count, or null where capinfos itself failed. */
  packets: number | null;
  capinfosError: string;
}

export function corpusAvailable(): boolean {
  return existsSync(corpusTsv) && existsSync(corpusDir);
}

export function corpusEntries(): CorpusEntry[] {
  const lines = readFileSync(corpusTsv, "utf8").split("\n").slice(1);
  return lines
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const [file, encapsulation, packets, capinfosError] = line.split("\t");
      return {
        file,
        path: join(corpusDir, file),
        encapsulation: encapsulation ?? "",
        packets: packets ? Number(packets) : null,
        capinfosError: capinfosError ?? "",
      };
    });
}

export function commandAvailable(command: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${command}`]).status === 0;
}
