/**
 * A worker thread that does one job and answers once (`report --jobs`, `table --jobs`): its answer is
 * a "done" message, or an "error" message carrying the failure across the thread boundary.
 */
import { Worker, parentPort } from "node:worker_threads";
import { CaptureError } from "../capture/source.js";
import type { StdinFanOut } from "./stdin-fan-out.js";

export type OneShotMessage<T extends { type: "done" }> = T | WorkerErrorMessage;

/**
 * A worker's failure as it crosses to the main thread: what the command needs to say it as plainly as
 * one thread would (a damaged capture's file, offset and packet; a system error's code and path).
 */
export interface WorkerErrorMessage {
  type: "error";
  message: string;
  stack?: string;
  capture?: { file: string; offset: number; recordNumber: number; detail: string };
  code?: string;
  path?: string;
}

/** The message for `error`, thrown in a worker. */
export function workerErrorMessage(error: unknown): WorkerErrorMessage {
  const failure = error instanceof Error ? error : new Error(String(error));
  const message: WorkerErrorMessage = { type: "error", message: failure.message, stack: failure.stack };
  if (failure instanceof CaptureError) {
    const { file, offset, recordNumber, detail } = failure;
    message.capture = { file, offset, recordNumber, detail };
  }
  const { code, path } = failure as NodeJS.ErrnoException;
  if (typeof code === "string") message.code = code;
  if (typeof path === "string") message.path = path;
  return message;
}

/** The error a worker's message stands for, in this thread (`prefix` before a plain error's message). */
export function errorFromWorker(message: WorkerErrorMessage, prefix = ""): Error {
  const capture = message.capture;
  const error: NodeJS.ErrnoException =
    capture !== undefined
      ? new CaptureError(capture.file, capture.offset, capture.recordNumber, capture.detail)
      : new Error(`${prefix}${message.message}`);
  if (message.stack !== undefined) error.stack = message.stack;
  if (message.code !== undefined) error.code = message.code;
  if (message.path !== undefined) error.path = message.path;
  return error;
}

/**
 * Runs the worker script at `url` on `data`; resolves with its "done" message. `what` names it in errors.
 * With `stdin` (an input named "-"), the worker's `process.stdin` is fed from it (`StdinFanOut.run`).
 */
export function runOneShotWorker<T extends { type: "done" }>(
  url: URL,
  data: unknown,
  what: string,
  stdin: StdinFanOut | null = null,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = startWorker(url, data, stdin !== null);
    const workerStdin = worker.stdin;
    if (stdin !== null && workerStdin !== null) stdin.add(workerStdin);
    let settled = false;
    const settle = (): void => {
      settled = true;
      // A worker that stopped reading early (`--until`) must not hold the others back.
      if (stdin !== null && workerStdin !== null) stdin.remove(workerStdin);
    };
    worker.on("message", (message: OneShotMessage<T>) => {
      settle();
      if (message.type === "done") resolve(message);
      else {
        reject(errorFromWorker(message));
      }
      void worker.terminate();
    });
    worker.on("error", (error) => {
      settle();
      reject(error);
    });
    worker.on("exit", (code) => {
      if (!settled) reject(new Error(`a --jobs ${what} worker stopped (exit code ${code})`));
    });
  });
}

/**
 * A worker thread whose output (a warning it prints, say) is copied to this process's, chunk by chunk.
 * Node pipes a worker's stdout and stderr into the parent's otherwise, a pipe and its listeners on the
 * parent's streams per worker: with more than ten workers (`--jobs auto` on a big machine) Node warned of
 * a listener leak.
 */
export function startWorker(url: URL, workerData: unknown, stdin = false): Worker {
  const worker = new Worker(url, { workerData, stdin, stdout: true, stderr: true });
  worker.stdout.on("data", (chunk: Buffer) => process.stdout.write(chunk));
  worker.stderr.on("data", (chunk: Buffer) => process.stderr.write(chunk));
  return worker;
}

/** In the worker: sends the job's "done" message, or its failure. */
export function answerParent<T extends { type: "done" }>(job: Promise<T>): void {
  job.then(
    (message) => parentPort!.postMessage(message),
    (error: unknown) => parentPort!.postMessage(workerErrorMessage(error)),
  );
}
