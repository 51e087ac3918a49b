// The business process as a timeline: from one fact, its predecessors and
// successors across types in log order, each with how the subscriptions
// that carried it delivered it — here one acked and one dead letter.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fact, launchBrowser, openPage, startServer, writeFacts } from "./harness.mjs";

let server;
let browser;
before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test("a timeline shows the facts around one and their deliveries", async () => {
  await server.api("PUT", "/v1/subscriptions/billing", { type: "Cafe.Order", max_attempts: 1 });
  const [order] = await writeFacts(server, [fact("Cafe.Order", { drink: "flat white" })]);
  const [payment] = await writeFacts(server, [fact("Cafe.Payment", { cents: 380 }, { order })]);
  const [served] = await writeFacts(server, [fact("Cafe.Served", {}, { order, payment })]);
  const pulled = await server.api("POST", "/v1/subscriptions/billing/pull", { max: 1 });
  await server.api("POST", "/v1/subscriptions/billing/nack", { tokens: [pulled.messages[0].token], error: "card <b>declined</b>" });
  const page = await openPage(browser);
  await page.goto(`${server.base}/ui/facts/${payment}/timeline`);
  await page.waitForSelector("#timeline li.bad");
  const items = await page.locator("#timeline li").allTextContents();
  assert.equal(items.length, 3);
  assert.match(items[0], /Cafe\.Order.*ancestor/s);
  assert.match(items[0], /billing\s*dead after 1 attempt/);
  assert.match(items[0], /card <b>declined<\/b>/, "the error text is shown as text");
  assert.match(items[1], /Cafe\.Payment.*self/s);
  assert.match(items[2], /Cafe\.Served.*descendant/s);
  await page.click(`#timeline a[href="/ui/facts/${served}"]`);
  await page.waitForURL(`${server.base}/ui/facts/${served}`);
  assert.deepEqual(page.problems, []);
});
