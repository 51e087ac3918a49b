// Takes the screenshots of docs/console.md: starts a real `cairn serve`
// (CAIRN_BIN, default target/debug/cairn), writes a small shop's facts, a
// subscription with dead letters, a timer and a schema through the API,
// and photographs each main page in Debian's Chromium (1280×800, light;
// one page on a phone in the dark theme) into docs/console/.
//
//   cd console && node screenshots.mjs
import { mkdirSync } from "node:fs";
import { fact, launchBrowser, openPage, startServer, writeFacts } from "./tests/harness.mjs";

const OUT = new URL("../docs/console/", import.meta.url).pathname;
mkdirSync(OUT, { recursive: true });

const server = await startServer();
const browser = await launchBrowser();
try {
  const [catalogue] = await writeFacts(server, [fact("Shop.Catalogue", { name: "coffee" })]);
  const orders = [];
  for (let index = 0; index < 12; index += 1) {
    const [order] = await writeFacts(server, [fact("Shop.OrderPlaced",
      { id: `order-${index}`, customer: index % 4 === 0 ? "broke" : `customer-${index}`, total_cents: 350 + index * 10 },
      { catalogue })]);
    orders.push(order);
  }
  const [payment] = await writeFacts(server, [fact("Shop.PaymentSucceeded", { amount_cents: 360, attempt: 1 }, { order: orders[1] })]);
  await writeFacts(server, [fact("Shop.Served", { barista: "sam" }, { order: orders[1], payment })]);
  await server.api("PUT", "/v1/subscriptions/billing", { type: "Shop.OrderPlaced", max_attempts: 1 });
  await server.api("PUT", "/v1/subscriptions/kitchen", { type: "Shop.PaymentSucceeded" });
  const pulled = await server.api("POST", "/v1/subscriptions/billing/pull", { max: 6 });
  const tokens = pulled.messages.map((message) => message.token);
  await server.api("POST", "/v1/subscriptions/billing/nack", { tokens: tokens.slice(0, 3), error: "card declined for customer broke (code 51)" });
  await server.api("POST", "/v1/subscriptions/billing/nack", { tokens: tokens.slice(3, 5), error: "provider timeout after 2000 ms" });
  await server.api("POST", "/v1/subscriptions/billing/ack", { tokens: tokens.slice(5) });
  await server.api("PUT", "/v1/timers/daily-report", { schedule: { cron: "0 6 * * *", timezone: "Europe/Berlin" }, fact: { type: "Shop.ReportDue", fields: {}, predecessors: {} } }).catch(() => {});
  await server.api("PUT", "/v1/schemas/Shop.OrderPlaced/1", {
    schema: { type: "object", properties: { id: { type: "string" }, total_cents: { type: "integer" } }, required: ["id"] },
    compatibility: "backward",
  }).catch(() => {});

  const shots = [
    ["facts", "/ui/facts", "#tail tbody tr"],
    ["fact", `/ui/facts/${orders[1]}`, "#fact-graph .node"],
    ["timeline", `/ui/facts/${orders[1]}/timeline`, "#timeline li"],
    ["subscriptions", "/ui/subscriptions", "main table"],
    ["subscription", "/ui/subscriptions/billing", "main .chart"],
    ["failures", "/ui/failures", "main table"],
    ["dead-letters", "/ui/subscriptions/billing/dead", "main table"],
    ["collaboration", "/ui/collaboration", "main section"],
    ["schemas", "/ui/schemas", "main section"],
    ["server", "/ui/server", "#health"],
  ];
  for (const [name, path, ready] of shots) {
    const page = await openPage(browser, { viewport: { width: 1280, height: 800 } });
    await page.goto(server.base + path);
    await page.waitForSelector(ready, { timeout: 15_000 }).catch(() => console.error(`${name}: ${ready} did not show`));
    // Let live charts take a few readings.
    await page.waitForTimeout(name === "subscription" || name === "server" ? 7000 : 800);
    await page.screenshot({ path: `${OUT}${name}.png` });
    console.log(`${name}.png ${page.problems.length ? page.problems.join("; ") : ""}`);
    await page.context().close();
  }
  const phone = await openPage(browser, { viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  await phone.goto(`${server.base}/ui/facts/${orders[1]}`);
  await phone.waitForSelector("#fact-graph .node");
  await phone.waitForTimeout(500);
  await phone.screenshot({ path: `${OUT}phone-dark-fact.png` });
  console.log("phone-dark-fact.png");
} finally {
  await browser.close();
  await server.stop();
}
