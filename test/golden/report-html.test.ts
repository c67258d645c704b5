/**
 * index.html in headless Chromium (Debian's `chromium`, driven by `playwright-core`): it renders with
 * no console error, shows summary.json's counts, builds its tables and timeline, and shows hostile
 * text (a capture named like markup) as text. PCAP_CONNTRACK_SCREENSHOT=FILE keeps a screenshot.
 * Skips, saying why, when chromium or playwright-core is missing.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { writeReport } from "../../lib/pipeline/report.js";
import type { ReportSummary } from "../../lib/report/summary.js";
import { pcapBytes } from "../unit/capture-fixtures.js";
import { ethernet, ipv4, tcp } from "../unit/packet-builders.js";

const CHROMIUM = "/usr/bin/chromium";
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const SAMPLES = join(ROOT, "samples");

interface Browser {
  newPage(): Promise<Page>;
  close(): Promise<void>;
}
interface Page {
  on(event: string, listener: (value: never) => void): void;
  goto(url: string): Promise<unknown>;
  textContent(selector: string): Promise<string | null>;
  $$eval<T>(selector: string, fn: (elements: { textContent: string | null }[]) => T): Promise<T>;
  fill(selector: string, value: string): Promise<void>;
  click(selector: string): Promise<void>;
  screenshot(options: { path: string; fullPage: boolean }): Promise<unknown>;
  setViewportSize(size: { width: number; height: number }): Promise<void>;
}

async function loadPlaywright(): Promise<{ chromium: { launch(options: object): Promise<Browser> } } | null> {
  try {
    const name = "playwright-core";
    return (await import(name)) as { chromium: { launch(options: object): Promise<Browser> } };
  } catch {
    return null;
  }
}

const playwright = await loadPlaywright();
const skip = !existsSync(CHROMIUM)
  ? `${CHROMIUM} is missing (apt-get install chromium)`
  : playwright === null
    ? "playwright-core is not installed (npm install --save-dev playwright-core)"
    : false;

/** A SYN-ACK nobody asked for: an orphan for the page to list. */
function orphanCapture(path: string): void {
  const synAck = ethernet(
    0x0800,
    ipv4(
      { src: "203.0.113.47", dst: "10.1.2.3", protocol: 6 },
      tcp({ srcPort: 80, dstPort: 41000, flags: 0x12, seq: 1, ack: 2 }),
    ),
  );
  writeFileSync(path, pcapBytes({ records: [{ sec: 1795619900, fraction: 0, data: synAck }] }));
}

test("index.html renders in headless Chromium with summary.json's counts", { skip }, async () => {
  const work = mkdtempSync(join(tmpdir(), "report-html-"));
  const browser = await playwright!.chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  try {
    const hostile = join(work, "<img src=x onerror=alert(1)>.pcap");
    copyFileSync(join(SAMPLES, "tcp-client-close", "inside.pcap"), hostile);
    const orphans = join(work, "orphan.pcap");
    orphanCapture(orphans);
    const inputs = [
      hostile,
      join(SAMPLES, "ping-unanswered", "inside.pcap"),
      join(SAMPLES, "udp-request-response", "inside.pcap"),
      join(SAMPLES, "ftp-passive", "inside.pcap"),
      orphans,
    ];
    const out = join(work, "report");
    await writeReport(inputs, { outputDir: out, drain: true, title: "report test" });
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8")) as ReportSummary;
    assert.ok(summary.connections.total >= 5);
    assert.equal(summary.orphans?.total, 1);

    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on("console", (message: { type(): string; text(): string }) => {
      if (message.type() === "error" || message.type() === "warning") problems.push(message.text());
    });
    page.on("pageerror", (error: Error) => problems.push(error.message));
    page.on("dialog", (dialog: { message(): string }) => problems.push(`dialog: ${dialog.message()}`));
    page.on("request", (request: { url(): string }) => requests.push(request.url()));
    await page.setViewportSize({ width: 1400, height: 900 });
    await page.goto(pathToFileURL(join(out, "index.html")).href);

    assert.equal(await page.textContent("#count-records"), String(summary.packets.records));
    assert.equal(await page.textContent("#count-decoded"), String(summary.packets.decoded));
    assert.equal(await page.textContent("#count-connections"), String(summary.connections.total));
    assert.equal(await page.textContent("#count-orphans"), String(summary.orphans?.total));
    assert.equal(await page.$$eval("#flows tbody tr", (rows) => rows.length), summary.connections.total);
    assert.equal(await page.$$eval("#orphans tbody tr", (rows) => rows.length), 1);
    assert.equal(await page.$$eval("#timeline .row", (rows) => rows.length), summary.connections.total);
    assert.ok(
      (await page.$$eval("#timeline .seg", (segments) => segments.length)) > summary.connections.total,
    );
    assert.equal(await page.$$eval("img", (images) => images.length), 0, "the file name stayed text");
    assert.match((await page.textContent("#summary")) ?? "", /<img src=x onerror=alert\(1\)>\.pcap/);

    // Filtering and sorting work.
    await page.fill("#flows-filter", "icmp");
    assert.equal(await page.textContent("#flows-count"), `1 of ${summary.connections.total} rows`);
    await page.fill("#flows-filter", "");
    await page.click("#flows thead th:first-child");
    await page.click("#flows thead th:first-child");
    const ids = await page.$$eval("#flows tbody tr td:first-child", (cells) =>
      cells.map((cell) => Number(cell.textContent)),
    );
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => b - a),
    );

    assert.deepEqual(problems, [], "no console error, warning or dialog");
    assert.deepEqual(
      requests.filter((url) => !url.startsWith("file:")),
      [],
      "the page fetches nothing from the network",
    );
    // The committed screenshot beside the sample reports is refreshed on request only, so that a test
    // run leaves the work tree as it was.
    const screenshot = process.env.PCAP_CONNTRACK_SCREENSHOT ?? join(work, "index.png");
    await page.screenshot({ path: screenshot, fullPage: true });
  } finally {
    await browser.close();
    rmSync(work, { recursive: true, force: true });
  }
});
