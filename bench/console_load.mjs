// The console's first page load (issue 17's target: under 200 ms from the
// local server, under 500 KiB of assets). Starts a real `cairn serve`
// (CAIRN_BIN, default target/release/cairn), writes FACTS facts in
// batches of 1,000 so that the pages have a real log to read, then opens
// each main page ROUNDS times in a fresh browser context (an empty cache,
// as a first visit) in Debian's Chromium and reads the browser's own
// Navigation and Resource Timing: time to the load event, time until the
// page shows its data (a selector of the page), and the bytes
// transferred. Prints one line per page with the median and the worst.
//
//   node bench/console_load.mjs [--facts 100000] [--rounds 15]
import { fact, launchBrowser, startServer } from "../console/tests/harness.mjs";

const argument = (name, fallback) => {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? Number(process.argv[index + 1]) : fallback;
};
const FACTS = argument("facts", 100_000);
const ROUNDS = argument("rounds", 15);
process.env.CAIRN_BIN ??= new URL("../target/release/cairn", import.meta.url).pathname;

const server = await startServer();
const browser = await launchBrowser();
try {
  let last = null;
  for (let written = 0; written < FACTS; written += 1000) {
    const batch = Array.from({ length: Math.min(1000, FACTS - written) }, (_, index) =>
      fact(`Bench.Type${(written + index) % 20}`, { n: written + index, body: "x".repeat(200) }));
    const answer = await server.api("POST", "/v1/facts", { facts: batch });
    last = answer.results.at(-1).hash;
  }
  await server.api("PUT", "/v1/subscriptions/bench", { type: "Bench.Type1" });
  const pages = [
    ["/ui/facts", "#tail tbody tr"],
    [`/ui/facts/${last}`, "#fact-graph .column"],
    ["/ui/subscriptions", "main table"],
    ["/ui/server", "#health"],
  ];
  console.log(`console first load, ${FACTS} facts in the store, ${ROUNDS} rounds, fresh cache each`);
  console.log("page                          load event p50/max ms   data shown p50/max ms   bytes transferred");
  for (const [path, ready] of pages) {
    const loads = [];
    const shown = [];
    let bytes = 0;
    for (let round = 0; round < ROUNDS; round += 1) {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(server.base + path, { waitUntil: "load" });
      // Milliseconds since the navigation started, by the page's own clock.
      shown.push(await page.waitForFunction((selector) => document.querySelector(selector) && performance.now(), ready,
        { polling: "raf", timeout: 10_000 }).then((handle) => handle.jsonValue()));
      const timing = await page.evaluate(() => {
        const navigation = performance.getEntriesByType("navigation")[0];
        const resources = performance.getEntriesByType("resource");
        return {
          load: navigation.loadEventEnd - navigation.startTime,
          bytes: navigation.transferSize + resources.filter((entry) => entry.name.includes("/ui/"))
            .reduce((sum, entry) => sum + entry.transferSize, 0),
        };
      });
      loads.push(timing.load);
      bytes = timing.bytes;
      await context.close();
    }
    const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
    const both = (values) => `${median(values).toFixed(0)} / ${Math.max(...values).toFixed(0)}`;
    console.log(`${path.slice(0, 28).padEnd(30)}${both(loads).padEnd(24)}${both(shown).padEnd(24)}${bytes}`);
  }
} finally {
  await browser.close();
  await server.stop();
}
