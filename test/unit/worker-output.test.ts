/** `--jobs` workers' own output reaches this process's, with no listener per worker on its streams. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { repoRoot } from "../support/corpus.js";

test("twenty workers' stdout and stderr are copied whole, and Node warns of no listener leak", () => {
  const directory = mkdtempSync(join(tmpdir(), "worker-output-"));
  try {
    const worker = join(directory, "worker.mjs");
    writeFileSync(
      worker,
      `import { parentPort, workerData } from "node:worker_threads";\n` +
        `process.stdout.write(\`out \${workerData}\\n\`);\n` +
        `process.stderr.write(\`err \${workerData}\\n\`);\n` +
        `parentPort.postMessage("written");\n` +
        `setTimeout(() => {}, 1000);\n`,
    );
    const main = join(directory, "main.mjs");
    const library = pathToFileURL(join(repoRoot, "dist/lib/pipeline/one-shot-worker.js")).href;
    writeFileSync(
      main,
      `import { startWorker } from ${JSON.stringify(library)};\n` +
        `const url = new URL(${JSON.stringify(pathToFileURL(worker).href)});\n` +
        `const workers = Array.from({ length: 20 }, (_, index) => startWorker(url, index));\n` +
        `await Promise.all(workers.map((worker) => new Promise((resolve) => worker.once("message", resolve))));\n` +
        // While every worker lives and has written: what their output added to this process's streams.
        `await new Promise((resolve) => setTimeout(resolve, 200));\n` +
        `const listeners = process.stdout.listenerCount("error") + process.stderr.listenerCount("error");\n` +
        `await Promise.all(workers.map((worker) => new Promise((resolve) => worker.on("exit", resolve))));\n` +
        `process.stderr.write(\`listeners \${listeners}\\n\`);\n`,
    );
    const result = spawnSync(process.execPath, [main], { encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
    const lines = (text: string, prefix: string) =>
      text
        .split("\n")
        .filter((line) => line.startsWith(prefix))
        .sort();
    const expected = (prefix: string) =>
      Array.from({ length: 20 }, (_, index) => `${prefix} ${index}`).sort();
    assert.deepEqual(lines(result.stdout, "out "), expected("out"));
    assert.deepEqual(lines(result.stderr, "err "), expected("err"));
    assert.doesNotMatch(result.stderr, /MaxListenersExceededWarning/);
    assert.match(result.stderr, /^listeners [0-2]$/m);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
