import { rename, writeFile, unlink } from "node:fs/promises";

/**
 * Writes a whole report to `path` ("-" or undefined: standard output). A file is written under a
 * temporary name and renamed when complete, so an interrupted run never leaves a half report.
 */
export async function writeOutput(path: string | undefined, text: string): Promise<void> {
  if (path === undefined || path === "-") {
    await new Promise<void>((resolve, reject) =>
      process.stdout.write(text, (error) => (error ? reject(error) : resolve())),
    );
    return;
  }
  const temporary = `${path}.partial-${process.pid}`;
  try {
    await writeFile(temporary, text);
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}
