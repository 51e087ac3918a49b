// What every browser test needs: a real `cairn serve` (the binary built by
// cargo, on a fresh data directory — and, with CAIRN_TEST_BACKEND=postgres,
// on a fresh PostgreSQL database), API calls with its admin token, and
// Debian's Chromium driven by playwright-core. Everything is on loopback,
// and every process a test starts is stopped by its PID.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const ROOT = new URL("../../", import.meta.url).pathname;
export const CAIRN = process.env.CAIRN_BIN ?? join(ROOT, "target/debug/cairn");
const CHROMIUM = process.env.CAIRN_CHROMIUM ?? "/usr/bin/chromium";
const POSTGRES = process.env.CAIRN_TEST_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/test";

/**
 * Starts a server. With `auth`, an admin identity is made first, offline,
 * and `adminToken` is its token. Answers `{base, adminToken, api, stop}`.
 */
export async function startServer({ auth = false, args = [] } = {}) {
  const data = mkdtempSync(join(tmpdir(), "cairn-console-test-"));
  const storeArgs = [];
  let database = null;
  if (process.env.CAIRN_TEST_BACKEND === "postgres") {
    database = `cairn_console_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
    psql(`CREATE DATABASE ${database}`);
    const url = new URL(POSTGRES);
    url.pathname = `/${database}`;
    storeArgs.push("--store", url.toString());
  }
  let adminToken = null;
  if (auth) {
    // Offline, on the store the server will open (`--store` or `--data`).
    const where = storeArgs.length ? storeArgs : ["--data", data];
    const made = spawnSync(CAIRN, ["tokens", "create", ...where, "--name", "admin", "--admin"], { encoding: "utf8" });
    if (made.status !== 0) throw new Error(`cairn tokens create failed: ${made.stderr}`);
    adminToken = made.stdout.trim().split("\n").at(-1).trim();
  }
  // The test chooses the store: never one from the environment.
  const env = { ...process.env, RUST_LOG: "info" };
  delete env.CAIRN_STORE;
  const child = spawn(CAIRN, ["serve", "--data", data, "--listen", "127.0.0.1:0", ...storeArgs, ...(auth ? ["--auth"] : []), ...args],
    { stdio: ["ignore", "ignore", "pipe"], env });
  const base = await new Promise((resolve, reject) => {
    let log = "";
    const timer = setTimeout(() => reject(new Error(`the server did not start:\n${log}`)), 30_000);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on("exit", (code) => reject(new Error(`the server exited (${code}):\n${log}`)));
  });
  const api = async (method, path, body, { token = adminToken, raw = false } = {}) => {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (raw) return response;
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      process.kill(child.pid, "SIGTERM");
      await exited;
    }
    rmSync(data, { recursive: true, force: true });
    if (database) psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  };
  return { base, adminToken, api, stop };
}

function psql(command) {
  const done = spawnSync("psql", [POSTGRES, "-qtAc", command], { encoding: "utf8" });
  if (done.status !== 0) throw new Error(`psql failed: ${done.stderr}`);
}

/** Debian's Chromium, headless, with nothing reaching past loopback. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
}

/**
 * A new page that fails the test on any script error or any violation of
 * the Content-Security-Policy (reported on the console).
 */
export async function openPage(browser, { viewport = { width: 1280, height: 860 }, colorScheme = "light" } = {}) {
  const context = await browser.newContext({ viewport, colorScheme });
  const page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (error) => page.problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !/status of 4\d\d/.test(message.text())) {
      page.problems.push(`console error: ${message.text()}`);
    }
  });
  return page;
}

/** Signs in on the console's sign-in page with `token`. */
export async function signIn(page, base, token, next = "/ui/facts") {
  await page.goto(`${base}/ui/login?next=${encodeURIComponent(next)}`);
  await page.fill("input[name=token]", token);
  await page.click("button[type=submit]");
  await page.waitForURL(`${base}${next}`);
}

/** A fact for tests, as the API takes it. */
export const fact = (type, fields = {}, predecessors = {}) => ({ type, fields, predecessors });

/** Writes facts; answers their hashes. */
export async function writeFacts(server, facts, options) {
  const answer = await server.api("POST", "/v1/facts", { facts }, options);
  return answer.results.map((result) => result.hash);
}
