// The Facts pages in a real browser: find a fact by hash, walk to a
// predecessor, watch a fact written by another client appear in the live
// tail, and hostile field values shown as text.
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

test("find a fact by hash and walk to its predecessor", async () => {
  const [order] = await writeFacts(server, [fact("Shop.Order", { id: "o-1", total: 450 })]);
  const [payment] = await writeFacts(server, [fact("Shop.Payment", { amount: 450 }, { order })]);
  const page = await openPage(browser);
  await page.goto(`${server.base}/ui/facts`);
  await page.fill("input[name=q]", payment);
  await page.press("input[name=q]", "Enter");
  await page.waitForURL(`${server.base}/ui/facts/${payment}`);
  assert.equal(await page.textContent("#fact-hash"), payment);
  assert.match(await page.textContent("#fact-fields"), /"amount": 450/);
  await page.click(`#fact-graph a[href="/ui/facts/${order}"]`);
  await page.waitForURL(`${server.base}/ui/facts/${order}`);
  assert.match(await page.textContent("#fact-fields"), /"o-1"/);
  // The payment is the order's successor, found without naming its type.
  await page.waitForSelector(`#fact-graph a[href="/ui/facts/${payment}"]`);
  assert.deepEqual(page.problems, []);
});

test("a fact written by another client appears in the live tail within a second", async () => {
  const page = await openPage(browser);
  await page.goto(`${server.base}/ui/facts`);
  await page.waitForSelector("text=live");
  // Let the tail's first long-poll reach the server.
  await page.waitForTimeout(300);
  const [hash] = await writeFacts(server, [fact("Tail.Seen", { n: Date.now() })]);
  const written = Date.now();
  await page.waitForSelector(`#tail a[href="/ui/facts/${hash}"]`, { timeout: 5000 });
  const elapsed = Date.now() - written;
  assert.ok(elapsed < 1000, `the fact appeared after ${elapsed} ms`);
  assert.deepEqual(page.problems, []);
});

test("hostile strings in fields and types render as text", async () => {
  const hostile = "<img src=x onerror=\"window.hacked=1\"><script>window.hacked=2</script>\u202Egnp.exe";
  const long = "x".repeat(20_000);
  const [hash] = await writeFacts(server, [fact("Evil.Type_Name", { html: hostile, long })]);
  const page = await openPage(browser);
  await page.goto(`${server.base}/ui/facts/${hash}`);
  const text = await page.textContent("#fact-fields");
  assert.ok(text.includes("<img src=x onerror="), "the markup is shown as text");
  assert.equal(await page.evaluate(() => window.hacked), undefined);
  assert.equal(await page.locator("#fact-fields img").count(), 0);
  await page.goto(`${server.base}/ui/facts?type=Evil.*`);
  await page.waitForSelector(`a[href="/ui/facts/${hash}"]`);
  assert.equal(await page.evaluate(() => window.hacked), undefined);
  assert.deepEqual(page.problems, []);
});

test("every console answer sends a strict Content-Security-Policy", async () => {
  for (const path of ["/ui/", "/ui/facts/" + "ab".repeat(32), "/ui/assets/app.js", "/ui/assets/app.css", "/ui/assets/nope.js"]) {
    const response = await fetch(server.base + path);
    const policy = response.headers.get("content-security-policy");
    assert.match(policy, /default-src 'none'/, path);
    assert.match(policy, /script-src 'self'(;|$)/, path);
    assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval|\*/, path);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  }
});
