// Whether the demo's services lose throughput to the console being open
// (issue 17). Runs `cairn demo` twice with the same seed and duration —
// the same customers and the same faults — first alone, then with four
// console pages open and updating live in Debian's Chromium (signed in
// with the demo's admin token: the log tail, subscriptions, failures and
// server pages), and compares orders served by each progress line and
// at the end, and how long the last orders took to settle.
//
//   node bench/console_demo.mjs [--duration 60s] [--seed 7]
import { spawn } from "node:child_process";
import { launchBrowser } from "../console/tests/harness.mjs";

const argument = (name, fallback) => {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? process.argv[index + 1] : fallback;
};
const DURATION = argument("duration", "60s");
const SEED = argument("seed", "7");
const CAIRN = process.env.CAIRN_BIN ?? new URL("../target/release/cairn", import.meta.url).pathname;
const LISTEN = "127.0.0.1:7797";

async function runDemo(withConsole) {
  const child = spawn(CAIRN, ["demo", "--duration", DURATION, "--seed", SEED, "--listen", LISTEN], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let browser = null;
  let opening = false;
  const pages = [];
  child.stdout.setEncoding("utf8");
    child.stdout.on("data", async (chunk) => {
      output += chunk;
      const match = /watch it: (\S+)\s+\(admin token: (\S+)\)/.exec(output);
      if (withConsole && match && !opening) {
        opening = true;
        browser = await launchBrowser();
        const base = match[1].replace(/\/ui\/$/, "");
        for (const path of ["/ui/facts", "/ui/subscriptions", "/ui/failures", "/ui/server"]) {
          const context = await browser.newContext();
          const page = await context.newPage();
          await page.goto(`${base}/ui/login?next=${encodeURIComponent(path)}`);
          await page.fill("input[name=token]", match[2]);
          await page.click("button[type=submit]");
          pages.push(page);
        }
      }
    });
  child.stderr.resume();
  const code = await new Promise((resolve) => child.on("exit", resolve));
  await browser?.close();
  const progress = [...output.matchAll(/\[\s*([\d.]+) s\] ordered (\d+) placed (\d+) served (\d+) refunded (\d+) declined (\d+)/g)]
    .map((m) => ({ at: Number(m[1]), ordered: Number(m[2]), served: Number(m[4]), refunded: Number(m[5]), declined: Number(m[6]) }));
  const stop = /\[\s*([\d.]+) s\] customers stop ordering/.exec(output);
  const last = output.trim().split("\n").at(-1);
  return { code, progress, stopAt: stop ? Number(stop[1]) : null, last, pagesOpen: pages.length };
}

for (const withConsole of [false, true]) {
  const started = Date.now();
  const run = await runDemo(withConsole);
  const seconds = (Date.now() - started) / 1000;
  const done = (entry) => entry.served + entry.refunded + entry.declined;
  console.log(`${withConsole ? `with ${run.pagesOpen} console pages open` : "console closed"}: exit ${run.code}, ${seconds.toFixed(1)} s in all; ${run.last}`);
  console.log("  t (s)   ordered   finished (served+refunded+declined)   behind");
  for (const entry of run.progress) {
    console.log(`  ${entry.at.toFixed(1).padStart(5)}   ${String(entry.ordered).padStart(7)}   ${String(done(entry)).padStart(8)}   ${String(entry.ordered - done(entry)).padStart(29)}`);
  }
}
