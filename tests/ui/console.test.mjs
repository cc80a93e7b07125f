// The web console end to end: a real local cloud of three workers (eddy-driver local),
// headless Chromium driven by Playwright, the pages a user opens. Every wait is bounded;
// nothing here times how fast anything is.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PNG } from "pngjs";
import { launchBrowser, sleep, startCloud, stopCloud, until as untilBounded } from "./cloud.mjs";

const BIN_DIR = process.env.EDDY_BIN_DIR;
const CHROMIUM = process.env.EDDY_CHROMIUM;
const SHOTS = path.resolve(process.env.EDDY_SCREENSHOTS || "target/ui-screenshots");
const HEARTBEAT_TIMEOUT_S = 5;
const ROWS = 200_000;

let work, cloud, driver, driverLog, status, token, browser, page;

// A bounded wait whose error ends with the driver's log.
function until(what, seconds, probe) {
  return untilBounded(what, seconds, probe, () => "driver log:\n" + driverLog());
}

// A screenshot that must show something: many colours, not one blank fill.
async function screenshot(name, target) {
  const file = path.join(SHOTS, name);
  await (target || page).screenshot({ path: file, fullPage: !target });
  const png = PNG.sync.read(fs.readFileSync(file));
  const colours = new Set();
  for (let i = 0; i < png.data.length && colours.size < 64; i += 4 * 7) {
    colours.add((png.data[i] << 16) | (png.data[i + 1] << 8) | png.data[i + 2]);
  }
  assert.ok(png.width > 100 && png.height > 50, `${name} is ${png.width}x${png.height}`);
  assert.ok(colours.size >= 16, `${name} looks blank: ${colours.size} colours`);
  return file;
}

before(async () => {
  assert.ok(BIN_DIR && CHROMIUM, "run through scripts/ui-test.sh (EDDY_BIN_DIR, EDDY_CHROMIUM)");
  fs.mkdirSync(SHOTS, { recursive: true });
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eddy-ui-"));
  // Numbers, a category and a time: a histogram per numeric column, bars for the category.
  const lines = ["id,x,city,day"];
  const cities = ["Lisbon", "Oslo", "Quito", "Perth", "Tunis"];
  for (let i = 0; i < ROWS; i++) {
    const x = Math.sin(i) * 50 + Math.cos(i / 7) * 30 + ((i * 7919) % 100) / 4;
    const day = new Date(Date.UTC(2026, 0, 1 + (i % 300))).toISOString().slice(0, 10);
    lines.push(`${i},${x.toFixed(4)},${cities[(i * i) % 5]},${day}`);
  }
  fs.writeFileSync(path.join(work, "trips.csv"), lines.join("\n") + "\n");
  cloud = await startCloud(work, ["--nodes", "3", "--heartbeat-timeout", `${HEARTBEAT_TIMEOUT_S}s`]);
  ({ driver, driverLog, status, token } = cloud);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(30_000);
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (cloud) await stopCloud(cloud);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test("a browser without the token is asked for it, and the printed URL lets it in", async () => {
  const asked = await page.goto(status.rest_url + "/");
  assert.equal(asked.status(), 401);
  assert.match(await page.textContent("h1"), /access token/);
  // The form sends ?token=, which becomes a cookie and leaves the address bar.
  await page.fill("input[name=token]", token);
  await page.click("button[type=submit]");
  await page.waitForSelector("nav .brand");
  assert.ok(!page.url().includes(token), "the token left the address bar: " + page.url());
});

test("the cloud page shows every worker, healthy, with its memory", async () => {
  await page.goto(status.rest_url + "/#/cloud");
  for (const w of status.workers) {
    await page.waitForSelector(`#nodes tr[data-key="${w.node}"]`);
  }
  assert.equal(await page.locator("#nodes tbody tr").count(), 3);
  assert.equal(await page.locator("#nodes tbody tr.bad").count(), 0);
  assert.equal(await page.locator("#nodes .badge.ok").count(), 3);
  assert.equal(await page.locator("#nodes [role=progressbar]").count(), 3);
  await page.waitForSelector("#cloud-badge.ok");
  // The driver's observer client is listed apart.
  await page.waitForSelector("#clients tbody tr[data-key]");
  await screenshot("cloud.png");
});

test("an import shows its parse setup, its progress, then the frame with histograms", async () => {
  await page.click("nav a[data-page=import]");
  await page.fill("#import-path", path.join(work, "trips.csv"));
  await page.fill("#import-dest", "trips.hex");
  await page.click("#guess-setup");
  await page.waitForSelector("#setup-columns");
  const types = await page.$$eval("#setup-columns select", s => s.map(x => x.value));
  assert.deepEqual(types, ["int", "real", "enum", "time"]);
  await screenshot("import.png");
  await page.click("#start-import");
  // The jobs page, live: the job's row with a progress bar, until it is done.
  await page.waitForURL(/#\/jobs$/);
  const row = page.locator("#jobs tbody tr", { hasText: "trips.csv" });
  await row.locator("[role=progressbar]").waitFor();
  const seen = new Set();
  await until("the import finishes", 120, async () => {
    const s = (await row.locator(".badge").textContent()).trim();
    seen.add(s);
    return s === "done";
  });
  assert.equal(await row.locator("[role=progressbar]").getAttribute("aria-valuenow"), "100");
  assert.match(await row.textContent(), /200,000/);
  console.log(`job states the page showed: ${[...seen].join(", ")}`);
  await screenshot("jobs.png");
  // On to the frame: the summary, a histogram per numeric column, bars for the category.
  await row.locator("a", { hasText: "trips.hex" }).click();
  await page.waitForSelector("#summary");
  for (const column of ["id", "x", "city", "day"]) {
    await page.waitForSelector(`.chart[data-column="${column}"] canvas`);
  }
  assert.equal(await page.locator("#summary tbody tr").count(), 4);
  assert.equal(await page.locator("#rows tbody tr").count(), 20);
  await screenshot("frame.png");
  await screenshot("histogram-x.png", page.locator('.chart[data-column="x"]'));
  // The chart shows what the REST API says: every value in one of its bins.
  const summary = await page.evaluate(async () => (await fetch("/3/Frames/trips.hex/summary")).json());
  const x = summary.columns.find(c => c.label === "x");
  assert.equal(x.histogram.counts.reduce((a, b) => a + b, 0), 200_000);
});

test("the logs page shows every node's last lines", async () => {
  await page.click("nav a[data-page=logs]");
  await page.waitForSelector("pre.log");
  const nodes = await page.$$eval("pre.log", ps => ps.map(p => p.dataset.node));
  for (const w of status.workers) assert.ok(nodes.includes(w.node), `${w.node} in ${nodes}`);
  for (const w of status.workers) {
    assert.match(await page.locator(`pre.log[data-node="${w.node}"]`).textContent(), /INFO .*(formed|listening)/);
  }
  await screenshot("logs.png");
});

test("exporting a frame writes the file the user names", async () => {
  await page.click("nav a[data-page=frames]");
  const row = page.locator('#frames tr[data-key="trips.hex"]');
  await row.waitFor();
  const target = path.join(work, "exported.csv");
  page.once("dialog", d => d.accept(target));
  await row.locator("button", { hasText: "Export" }).click();
  await page.locator("#banner", { hasText: "Exported trips.hex" }).waitFor();
  const lines = fs.readFileSync(target, "utf8").trim().split("\n");
  assert.equal(lines.length, ROWS + 1);
  assert.equal(lines[0], "id,x,city,day");
});

test("deleting a frame asks first and removes it from the list", async () => {
  await page.click("nav a[data-page=frames]");
  const row = page.locator('#frames tr[data-key="trips.hex"]');
  await row.waitFor();
  await screenshot("frames.png");
  // The first question is declined: nothing happens.
  page.once("dialog", d => d.dismiss());
  await row.locator("button.danger").click();
  await sleep(1500);
  assert.equal(await row.count(), 1);
  page.once("dialog", d => d.accept());
  await row.locator("button.danger").click();
  await row.waitFor({ state: "detached" });
  const frames = await page.evaluate(async () => (await fetch("/3/Frames")).json());
  assert.equal(frames.frames.length, 0);
});

test("the console works under a proxy's path prefix, as behind a web proxy", async () => {
  // A plain forwarding proxy that serves the node under /proxy/application_1/.
  const prefix = "/proxy/application_1";
  const target = new URL(status.rest_url);
  const proxy = http.createServer((req, res) => {
    if (!req.url.startsWith(prefix + "/")) { res.writeHead(404); res.end("outside the prefix"); return; }
    const upstream = http.request({ host: target.hostname, port: target.port, path: req.url.slice(prefix.length), method: req.method, headers: req.headers }, up => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    upstream.on("error", e => { res.writeHead(502); res.end(e.message); });
    req.pipe(upstream);
  });
  await new Promise(resolve => proxy.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${proxy.address().port}${prefix}/`;
  const context = await browser.newContext();
  try {
    const p = await context.newPage();
    await p.goto(base + "?token=" + token);
    // The token became a cookie and the page stayed under the prefix.
    assert.equal(p.url(), base);
    await p.waitForSelector(`#nodes tr[data-key="${status.workers[0].node}"]`);
    await p.click("nav a[data-page=logs]");
    await p.waitForSelector("pre.log");
  } finally {
    await context.close();
    proxy.close();
  }
});

test("a killed worker is listed as lost on the open page, without a reload, and a new one takes its place", async () => {
  await page.click("nav a[data-page=cloud]");
  const victim = status.workers.find(w => w.node !== status.leader);
  await page.waitForSelector(`#nodes tr[data-key="${victim.node}"]`);
  let reloaded = false;
  page.once("load", () => { reloaded = true; });
  process.kill(victim.pid, "SIGKILL");
  // Bounded by the heartbeat timeout plus the page's refresh, with room for a slow machine.
  await page.waitForSelector(`#lost tr.bad[data-key="${victim.node}"]`, { timeout: (HEARTBEAT_TIMEOUT_S + 25) * 1000 });
  assert.match(await page.locator(`#lost tr[data-key="${victim.node}"] .why`).textContent(), /nothing has listened at its address for .* s/);
  // The driver starts a new worker in its place; the cloud is whole and healthy again.
  await page.locator(".card", { hasText: "3 workers" }).waitFor({ timeout: 60_000 });
  await page.waitForSelector("#cloud-badge.ok");
  await page.locator(".card", { hasText: "1 worker lost" }).waitFor();
  // The survivors agree again on the smaller member list, and one of them leads.
  await page.locator(".card", { hasText: "Leader" }).filter({ hasText: /127\.0\.0\.1/ }).waitFor();
  assert.equal(reloaded, false, "the page reloaded");
  await screenshot("cloud-worker-lost.png");
});

test("stopping the cloud from the page asks first, then every node stops", async () => {
  const exited = new Promise(resolve => driver.once("exit", code => resolve(code)));
  page.once("dialog", d => d.accept());
  await page.click("#stop-cloud");
  await page.locator("#banner", { hasText: "The cloud is stopping" }).waitFor();
  const code = await Promise.race([exited, sleep(60_000).then(() => "still running after 60 s")]);
  assert.notEqual(code, "still running after 60 s", driverLog());
  for (const w of status.workers) {
    await until(`worker ${w.pid} exits`, 30, () => { try { process.kill(w.pid, 0); return false; } catch (_) { return true; } });
  }
});
