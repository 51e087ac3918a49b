// The Failures pages in a real browser: dead letters grouped by cause, a
// hostile error text shown as text, a group replayed by a bulk job in
// several small batches, a bulk discard stopped between batches, and a
// selection replayed from the list.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, openPage, startServer } from "./harness.mjs";
import { makeDeadLetters, subscribe } from "./dead-letters.mjs";

const LONG = { timeout: 15_000 };
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

/** The row of the Failures page for one subscription and cause. */
const groupRow = (page, subscription, cause) => page.locator("#failure-groups tbody tr")
  .filter({ has: page.locator(`a[href="/ui/subscriptions/${subscription}"]`) })
  .filter({ has: page.locator(".cause", { hasText: cause }) });

const view = (name) => server.api("GET", `/v1/subscriptions/${name}`);

test("dead letters are grouped by cause, and a hostile error text is only text", async () => {
  const hostile = "<img src=x onerror=\"window.hacked=1\"><script>window.hacked=2</script>";
  await subscribe(server, "billing", "Bill.Invoice");
  await makeDeadLetters(server, "billing", "Bill.Invoice",
    ["timeout after 3000 ms", "timeout after 4500 ms", "timeout after 120 ms", hostile, null]);
  const page = await openPage(browser);
  await page.goto(`${server.base}/ui/failures`);
  const timeouts = groupRow(page, "billing", "timeout after <n> ms");
  await timeouts.waitFor(LONG);
  assert.match(await timeouts.textContent(), /3 exact/);
  assert.match(await timeouts.locator(".error-text").textContent(), /^timeout after \d+ ms$/);
  const evil = page.locator("#failure-groups tbody tr").filter({ hasText: "<script>" });
  assert.equal(await evil.count(), 1);
  assert.match(await evil.locator(".error-text").textContent(), /^<img src=x onerror="window\.hacked=1"><script>/);
  assert.equal(await page.locator("main img").count(), 0);

  // View one group: only its letters, each with attempts and last error.
  await timeouts.locator("a", { hasText: "View" }).click();
  await page.waitForURL(/\/ui\/subscriptions\/billing\/dead\?cause=/);
  await page.waitForSelector("#dead-list tbody tr", LONG);
  assert.equal(await page.locator("#dead-list tbody tr").count(), 3);
  assert.equal(await page.textContent("#cause-filter"), "timeout after <n> ms");

  // Letters without an error text have a cause of their own.
  await page.click("#dead-causes a:text-is('(no error text)')");
  await page.waitForFunction(() => document.querySelectorAll("#dead-list tbody tr").length === 1, null, LONG);
  assert.equal(await page.textContent("#cause-filter"), "(no error text)");

  // The hostile letter, listed and inspected.
  await page.click("text=all causes");
  await page.waitForFunction(() => document.querySelectorAll("#dead-list tbody tr").length === 5, null, LONG);
  await page.locator("#dead-list tbody tr").filter({ hasText: "<script>" }).locator("a").click();
  await page.waitForSelector("#letter-error");
  assert.equal(await page.textContent("#letter-error"), hostile);
  assert.equal(await page.locator("main img, main script").count(), 0);
  assert.equal(await page.evaluate(() => window.hacked), undefined);
  assert.deepEqual(page.problems, []);
});

test("a group is replayed by a bulk job in several batches", async () => {
  await subscribe(server, "jobs", "Job.Run");
  await makeDeadLetters(server, "jobs", "Job.Run", [
    ...Array.from({ length: 7 }, (_, index) => `disk full on volume ${index}`),
    "bad input", "bad input"]);
  const page = await openPage(browser);
  await page.goto(`${server.base}/ui/failures`);
  const row = groupRow(page, "jobs", "disk full on volume <n>");
  await row.waitFor(LONG);
  await row.locator("button[data-job=replay]").click();
  const panel = page.locator(".job[data-action=replay]");
  await panel.locator("input[name=batch]").fill("2");
  await panel.locator("input[name=rate]").fill("1000");
  await panel.locator("button[type=submit]").click();
  await page.waitForSelector(".job[data-state=finished]", LONG);
  assert.equal(await panel.locator(".job-done").textContent(), "7");
  assert.match(await panel.locator(".job-status").textContent(), /7 of 7 replayed, 0 errors, 4 batches/);
  assert.equal(await panel.locator("progress").evaluate((bar) => `${bar.value}/${bar.max}`), "7/7");
  const after = await view("jobs");
  assert.equal(after.dead, 2, "the other cause is left alone");
  assert.equal(after.backlog, 7);
  assert.deepEqual(page.problems, []);
});

test("Stop ends a bulk discard between batches", async () => {
  await subscribe(server, "stopper", "Stop.Me");
  await makeDeadLetters(server, "stopper", "Stop.Me", Array.from({ length: 12 }, (_, index) => `quota exceeded (${index})`));
  const page = await openPage(browser);
  await page.goto(`${server.base}/ui/subscriptions/stopper/dead`);
  await page.click("#dead-causes button[data-job=discard]");
  const panel = page.locator(".job[data-action=discard]");
  await panel.locator("input[name=batch]").fill("1");
  await panel.locator("input[name=rate]").fill("1");
  await panel.locator("button[type=submit]").click();
  // One batch of one, then the job waits a second to honour the rate.
  await page.waitForFunction(() => Number(document.querySelector(".job .job-done")?.textContent) >= 1, null, LONG);
  await panel.locator("button", { hasText: "Stop" }).click();
  await page.waitForSelector(".job[data-state=stopped]", LONG);
  const done = Number(await panel.locator(".job-done").textContent());
  assert.ok(done >= 1 && done < 12, `${done} discarded before Stop`);
  const after = await view("stopper");
  assert.equal(after.dead, 12 - done);
  assert.equal(after.discarded, done);
  assert.deepEqual(page.problems, []);
});

test("a selection of dead letters is replayed from the list", async () => {
  await subscribe(server, "picked", "Pick.One");
  await makeDeadLetters(server, "picked", "Pick.One", ["no route to host 1", "no route to host 2", "no route to host 3"]);
  const page = await openPage(browser);
  await page.goto(`${server.base}/ui/subscriptions/picked/dead`);
  await page.waitForSelector("#dead-list tbody tr", LONG);
  const boxes = page.locator("#dead-list tbody input[type=checkbox]");
  await boxes.nth(0).check();
  await boxes.nth(2).check();
  await page.click("#replay-selected");
  await page.waitForSelector("text=2 replayed.", LONG);
  await page.waitForFunction(() => document.querySelectorAll("#dead-list tbody tr").length === 1, null, LONG);
  const after = await view("picked");
  assert.equal(after.dead, 1);
  assert.equal(after.backlog, 2);

  await page.check("#dead-list .select-page");
  await page.click("#discard-selected");
  await page.waitForSelector("text=1 discarded.", LONG);
  await page.waitForSelector("text=No dead letters here.", LONG);
  assert.equal((await view("picked")).discarded, 1);
  assert.deepEqual(page.problems, []);
});

test("one dead letter is inspected and discarded after a confirm step", async () => {
  await subscribe(server, "single", "One.Off");
  const [hash] = await makeDeadLetters(server, "single", "One.Off", ["schema mismatch in field 'total'"]);
  const page = await openPage(browser);
  await page.goto(`${server.base}/ui/subscriptions/single/dead/${hash}`);
  await page.waitForSelector("#letter-error");
  assert.equal(await page.textContent("#letter-error"), "schema mismatch in field 'total'");
  assert.match(await page.textContent("#letter-fields"), /"index": 0/);
  await page.click("#discard-letter");
  assert.equal((await view("single")).dead, 1, "nothing happens before the confirm");
  await page.click("#confirm-discard");
  await page.waitForURL(`${server.base}/ui/subscriptions/single/dead`);
  await page.waitForSelector("text=No dead letters here.", LONG);
  const after = await view("single");
  assert.equal(after.dead, 0);
  assert.equal(after.discarded, 1);
  assert.deepEqual(page.problems, []);
});
