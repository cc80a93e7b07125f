// Benchmark, not a test (bench/console-paint.sh runs it): how long the console's pages take
// to show a cloud of many workers in headless Chromium. Prints medians of several loads:
// first contentful paint and the moment the page's table is complete.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const workers = Number(process.argv[2] || 32);
const loads = Number(process.argv[3] || 5);
const BIN_DIR = process.env.EDDY_BIN_DIR;
const work = fs.mkdtempSync(path.join(os.tmpdir(), "eddy-paint-"));
const sleep = ms => new Promise(r => setTimeout(r, ms));
const median = xs => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const out = fs.openSync(path.join(work, "driver.log"), "w");
const driver = spawn(path.join(BIN_DIR, "eddy-driver"), [
  "local", "--nodes", String(workers), "--port", "0", "--memory", "256m", "--timeout", "300s",
  "--status-file", path.join(work, "status.json"), "--notify", path.join(work, "notify"), "--log-dir", path.join(work, "logs"),
], { stdio: ["ignore", out, out], env: { ...process.env, EDDY_MAPPER_BIN: path.join(BIN_DIR, "eddy-mapper") } });
let browser;
try {
  let status;
  for (let i = 0; i < 600 && !status; i++) {
    try {
      const s = JSON.parse(fs.readFileSync(path.join(work, "status.json"), "utf8"));
      if (s.phase === "watching") status = s;
    } catch (_) { /* not written yet */ }
    if (!status) await sleep(500);
  }
  if (!status) throw new Error("the cloud did not form:\n" + fs.readFileSync(path.join(work, "driver.log"), "utf8"));
  const token = /token=([0-9a-f]+)/.exec(fs.readFileSync(path.join(work, "notify"), "utf8"))[1];
  browser = await chromium.launch({
    executablePath: process.env.EDDY_CHROMIUM,
    args: ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.addCookies([{ name: "eddy_token", value: token, url: status.rest_url }]);
  const page = await context.newPage();
  const results = {};
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
    results[name] = { fcp_ms: median(paints), complete_ms: median(complete), loads };
    console.log(`${name}: ${workers} workers, median of ${loads} loads: first contentful paint ${median(paints).toFixed(0)} ms, table complete ${median(complete)} ms (all: ${complete.join(", ")} ms)`);
  }
  await fetch(status.rest_url + "/3/Shutdown", { method: "POST", headers: { authorization: "Bearer " + token } });
} finally {
  if (browser) await browser.close();
  const exited = new Promise(r => driver.once("exit", r));
  if (!(await Promise.race([exited.then(() => true), sleep(60_000).then(() => false)]))) driver.kill("SIGKILL");
  fs.rmSync(work, { recursive: true, force: true });
}
