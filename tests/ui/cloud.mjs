// What the console's browser test and its benchmark share: a real local cloud of the
// binaries in EDDY_BIN_DIR, started and stopped with bounded waits, and headless Chromium
// (EDDY_CHROMIUM) with the flags this machine's closed network needs.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

export function sleep(ms) {
  return new Promise(resolve => setTimeout(resolve, ms));
}

// Polls `probe` until it returns a truthy value, at most `seconds`; `context()` adds to the error.
export async function until(what, seconds, probe, context) {
  const deadline = Date.now() + seconds * 1000;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(250);
  }
  throw new Error(`${what}: not within ${seconds} s${last ? ` (last error: ${last.message})` : ""}${context ? "\n" + context() : ""}`);
}

// `eddy-driver local --port 0 ARGS` with its status file, notify file and logs in `work`;
// returns once the cloud formed, with the driver, its status and the access token.
export async function startCloud(work, args, formSeconds = 120) {
  const binDir = process.env.EDDY_BIN_DIR;
  const out = fs.openSync(path.join(work, "driver.log"), "w");
  const driver = spawn(path.join(binDir, "eddy-driver"), [
    "local", "--port", "0", ...args,
    "--status-file", path.join(work, "status.json"),
    "--notify", path.join(work, "notify"),
    "--log-dir", path.join(work, "logs"),
  ], { stdio: ["ignore", out, out], env: { ...process.env, EDDY_MAPPER_BIN: path.join(binDir, "eddy-mapper") } });
  const driverLog = () => fs.readFileSync(path.join(work, "driver.log"), "utf8").split("\n").slice(-30).join("\n");
  const context = () => "driver log:\n" + driverLog();
  const status = await until("the cloud forms", formSeconds, () => {
    const s = JSON.parse(fs.readFileSync(path.join(work, "status.json"), "utf8"));
    return s.phase === "watching" && s.rest_url ? s : null;
  }, context);
  const token = await until("the notify file names the token", 30, () => {
    const m = /token=([0-9a-f]+)/.exec(fs.readFileSync(path.join(work, "notify"), "utf8"));
    return m && m[1];
  }, context);
  return { driver, driverLog, status, token };
}

// Asks the cloud to stop, waits at most 30 s for the driver, then kills what is left.
export async function stopCloud(cloud) {
  const { driver, status, token } = cloud;
  if (status && token) {
    await fetch(status.rest_url + "/3/Shutdown", { method: "POST", headers: { authorization: "Bearer " + token } }).catch(() => {});
  }
  if (driver && driver.exitCode === null) {
    const exited = new Promise(resolve => driver.once("exit", resolve));
    const gone = await Promise.race([exited.then(() => true), sleep(30_000).then(() => false)]);
    if (!gone) driver.kill("SIGKILL");
  }
  if (status) for (const w of status.workers) try { process.kill(w.pid, "SIGKILL"); } catch (_) { /* already gone */ }
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.EDDY_CHROMIUM,
    args: ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
