// Benchmark, not a test (bench/console-paint.sh runs it): how long the console's pages take
// to show a cloud of many workers in headless Chromium. Prints medians of several loads:
// first contentful paint and the moment the page's table is complete.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { launchBrowser, startCloud, stopCloud } from "./cloud.mjs";

const workers = Number(process.argv[2] || 32);
const loads = Number(process.argv[3] || 5);
const work = fs.mkdtempSync(path.join(os.tmpdir(), "eddy-paint-"));
const median = xs => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

let cloud, browser;
try {
  cloud = await startCloud(work, ["--nodes", String(workers), "--memory", "256m", "--timeout", "300s"], 300);
  const { status, token } = cloud;
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.addCookies([{ name: "eddy_token", value: token, url: status.rest_url }]);
  const page = await context.newPage();
  for (const [name, hash, ready] of [
    ["cloud", "#/cloud", `#nodes tbody tr:nth-child(${workers})`],
    ["logs", "#/logs", `pre.log >> nth=${workers - 1}`],
  ]) {
    const paints = [], complete = [];
    for (let i = 0; i < loads; i++) {
      await page.goto("about:blank");
      const t0 = Date.now();
      await page.goto(status.rest_url + "/" + hash);
      await page.locator(ready).waitFor({ timeout: 30_000 });
      complete.push(Date.now() - t0);
      paints.push(await page.evaluate(() => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? NaN));
    }
    console.log(`${name}: ${workers} workers, median of ${loads} loads: first contentful paint ${median(paints).toFixed(0)} ms, table complete ${median(complete)} ms (all: ${complete.join(", ")} ms)`);
  }
} finally {
  if (browser) await browser.close();
  if (cloud) await stopCloud(cloud);
  fs.rmSync(work, { recursive: true, force: true });
}
