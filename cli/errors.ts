import { CaptureError } from "../lib/capture/source.js";

/** Output files opened, for the message of a failed write, which names no file. */
const outputPaths: string[] = [];

export function noteOutputPath(path: string): void {
  outputPaths.push(path);
}

/** Bad input and environment failures end in one line and exit code 2; anything else is a bug. */
export function reportFailure(error: unknown): never {
  const code = (error as NodeJS.ErrnoException)?.code;
  const path =
    (error as NodeJS.ErrnoException)?.path ?? (outputPaths.length > 0 ? outputPaths.join(" or ") : undefined);
  let message: string;
  if (error instanceof CaptureError) message = error.message;
  else if (code === "ENOENT") message = `${path ?? "input"}: no such file or directory`;
  else if (code === "EACCES" || code === "EPERM") message = `${path ?? "output"}: permission denied`;
  else if (code === "EISDIR") message = `${path ?? "input"}: is a directory`;
  else if (code === "ENOSPC") message = `${path ?? "output"}: no space left on device`;
  else if (code === "ENOTDIR") message = `${path ?? "output"}: a part of the path is not a directory`;
  else if (code === "EROFS") message = `${path ?? "output"}: read-only file system`;
  else if (error instanceof UsageError) message = error.message;
  else {
    process.stderr.write(
      `pcap-conntrack: internal error, please report it:\n${(error as Error)?.stack ?? error}\n`,
    );
    process.exit(70);
  }
  process.stderr.write(`pcap-conntrack: ${message}\n`);
  process.exit(2);
}

export class UsageError extends Error {}
