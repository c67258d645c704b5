// Keeps a picture of a sample report beside the reports (npm run screenshot, after npm start): headless
// Debian Chromium driven by playwright-core. Not part of npm start, which must run without a browser.
import { chromium } from "playwright-core";
import { fileURLToPath, pathToFileURL } from "node:url";
import { join } from "node:path";

const root = fileURLToPath(new URL("..", import.meta.url));
const scenario = process.argv[2] ?? "ftp-passive";
const page = join(root, "reports", scenario, "index.html");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
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
  const tab = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  await tab.goto(pathToFileURL(page).href);
  await tab.screenshot({ path: join(root, "reports", scenario, "index.png"), fullPage: true });
  console.log(`reports/${scenario}/index.png`);
} finally {
  await browser.close();
}
