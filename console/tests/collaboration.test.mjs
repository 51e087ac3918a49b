// The Collaboration pages in a real browser: timers with next due and last
// fired (and a timer firing while the page is open), saga definitions and
// instances read from journals written as docs/api-v1.md defines them, a
// saga's timeline with Retry and Abort writing their request facts (and
// hidden from an identity that may not write them), claims and leases
// with whether they hold, hostile strings as text, and a phone in dark.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fact, launchBrowser, openPage, signIn, startServer, writeFacts } from "./harness.mjs";

const SAGA_REGISTRY_HASH = "9026691e885bb96de8e4e095696faead2bdc8a6c2fb184267149d8fb0f0468ab";
const HOSTILE = "<img src=x onerror=\"window.hacked=1\"><script>window.hacked=2</script>\u202Egnp.exe";
const WAIT = { timeout: 15_000 };

let server;
let browser;
let saga;
before(async () => {
  server = await startServer({ auth: true });
  browser = await launchBrowser();
  saga = await writeSagas(server);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A definition, a failed saga (with a superseded transition) and a running one, fact by fact. */
async function writeSagas(target) {
  const [registry] = await writeFacts(target, [fact("Saga.Registry")]);
  assert.equal(registry, SAGA_REGISTRY_HASH, "the console's constant is the registry's hash");
  const steps = [
    { name: "reserve", attempts_max: 3, compensable: true, compensation_attempts_max: 2 },
    { name: "charge", attempts_max: 1, timeout_ms: 30_000, compensable: false, compensation_attempts_max: 1 },
  ];
  const [definition] = await writeFacts(target, [fact("Saga.Definition", { name: "checkout", version: 1, steps }, { registry })]);
  const [failed, running] = await writeFacts(target, [
    fact("Saga.Started", { id: `order-${HOSTILE}`, input: { order: 42 } }, { definition }),
    fact("Saga.Started", { id: "order-43", input: { order: 43 } }, { definition }),
  ]);
  const now = Date.now();
  const journal = [
    { kind: "step_attempted", step: 0, step_name: "reserve", attempt: 1, at_ms: now },
    { kind: "step_succeeded", step: 0, step_name: "reserve", attempt: 1, output: { reserved: true } },
    { kind: "step_attempted", step: 1, step_name: "charge", attempt: 1, at_ms: now + 1, deadline_ms: now + 30_001 },
    { kind: "step_failed", step: 1, step_name: "charge", attempt: 1, error: `card declined ${HOSTILE}`, retryable: false },
    { kind: "compensation_attempted", step: 0, step_name: "reserve", attempt: 1, at_ms: now + 2 },
    { kind: "compensation_failed", step: 0, step_name: "reserve", attempt: 1, error: "warehouse down" },
    { kind: "failed", error: "the compensation of reserve failed for good" },
  ];
  let previous = failed;
  const chain = [];
  for (const fields of journal) {
    [previous] = await writeFacts(target, [fact("Saga.Transition", fields, { saga: failed, previous })]);
    chain.push(previous);
  }
  // A second runner's transition after the first one: superseded, ignored.
  await writeFacts(target, [fact("Saga.Transition", { kind: "step_attempted", step: 0, step_name: "reserve", attempt: 1, at_ms: now + 99 }, { saga: failed, previous: failed })]);
  await writeFacts(target, [fact("Saga.Transition", { kind: "step_attempted", step: 0, step_name: "reserve", attempt: 1, at_ms: now }, { saga: running, previous: running })]);
  return { definition, failed, running, last: chain.at(-1) };
}

async function token(name, permissions) {
  return (await server.api("POST", "/v1/tokens", { name, permissions })).token;
}

test("timers show schedule, next due, last fired and failures, and update live", async () => {
  const soon = new Date(Date.now() + 2500).toISOString();
  await server.api("PUT", "/v1/timers/nightly-report", { cron: "30 2 * * *", timezone: "Europe/Berlin", fact: fact("Shop.NightlyReport") });
  await server.api("PUT", "/v1/timers/reminder", { at: soon, fact: fact("Shop.Reminder", { note: HOSTILE }) });
  await server.api("PUT", "/v1/timers/orphan", { at: "2020-01-01T00:00:00Z", fact: fact("Shop.Orphan", {}, { order: "ab".repeat(32) }) });
  const page = await openPage(browser);
  await signIn(page, server.base, server.adminToken, "/ui/collaboration");
  await page.waitForSelector("#timers tr:has-text('nightly-report')", WAIT);
  const nightly = await page.textContent("#timers tr:has-text('nightly-report')");
  assert.match(nightly, /30 2 \* \* \*/);
  assert.match(nightly, /Europe\/Berlin/);
  assert.match(nightly, /scheduled/);
  // The orphan's predecessor is missing: it fails, and says why.
  await page.waitForSelector("#timers tr:has-text('orphan') .badge.bad", WAIT);
  assert.match(await page.textContent("#timers tr:has-text('orphan')"), /abababab/);
  // The reminder fires while the page is open: it shows done, with its last firing.
  await page.waitForSelector("#timers tr:has-text('reminder') :text('done')", WAIT);
  assert.notEqual(await page.getAttribute("#timers tr:has-text('reminder') time", "datetime"), null);
  assert.deepEqual(page.problems, []);
});

test("saga definitions and instances with their state, read from the journal", async () => {
  const page = await openPage(browser);
  await signIn(page, server.base, server.adminToken, "/ui/collaboration");
  await page.waitForSelector(`#saga-definitions a[href="/ui/sagas/${saga.definition}"]`, WAIT);
  assert.match(await page.textContent("#saga-definitions"), /reserve → charge/);
  await page.waitForSelector(`#saga-instances a[href="/ui/sagas/${saga.failed}"]`, WAIT);
  assert.equal(await page.textContent(`#saga-instances tr:has(a[href="/ui/sagas/${saga.failed}"]) [data-state]`), "failed");
  assert.equal(await page.textContent(`#saga-instances tr:has(a[href="/ui/sagas/${saga.running}"]) [data-state]`), "running");
  await page.click(`#saga-definitions a[href="/ui/sagas/${saga.definition}"]`);
  await page.waitForSelector(`#definition-instances a[href="/ui/sagas/${saga.running}"]`, WAIT);
  assert.equal(await page.evaluate(() => window.hacked), undefined);
  assert.deepEqual(page.problems, []);
});

test("a failed saga's timeline, and Retry writes Saga.RetryRequested after its last transition", async () => {
  const page = await openPage(browser);
  await signIn(page, server.base, server.adminToken, `/ui/sagas/${saga.failed}`);
  await page.waitForSelector("#saga-state [data-state=failed]", WAIT);
  const kinds = await page.$$eval("#saga-timeline li", (items) => items.map((item) => item.dataset.kind));
  assert.deepEqual(kinds, ["step_attempted", "step_succeeded", "step_attempted", "step_failed", "compensation_attempted", "compensation_failed", "failed"]);
  assert.match(await page.textContent("#saga-about"), /1 superseded/);
  // The hostile error and id are text.
  assert.ok((await page.textContent("#saga-timeline")).includes("card declined <img src=x onerror="));
  assert.ok((await page.textContent("#saga-id")).includes("<script>"));
  assert.equal(await page.locator("main img").count(), 0);
  // A failed saga may be retried, not aborted.
  assert.equal(await page.locator("#saga-abort").count(), 0);
  await page.fill("#saga-actions input[name=reason]", `warehouse is back ${HOSTILE}`);
  await page.click("#saga-retry");
  await page.waitForSelector("#saga-asked", WAIT);
  const asked = await server.api("GET", `/v1/facts/${saga.failed}/successors?type=Saga.RetryRequested&role=saga`);
  assert.equal(asked.facts.length, 1);
  const request = asked.facts[0].fact;
  assert.deepEqual(request.predecessors, { saga: saga.failed, definition: saga.definition, after: saga.last });
  assert.equal(request.fields.reason, `warehouse is back ${HOSTILE}`);
  assert.match(request.fields.id, /^[0-9a-f]{32}$/);
  assert.ok(Math.abs(request.fields.requested_at_ms - Date.now()) < 60_000);
  await page.waitForSelector("#saga-requests tr:has-text('retry')", WAIT);
  assert.equal(await page.evaluate(() => window.hacked), undefined);
  assert.deepEqual(page.problems, []);
});

test("Abort on a running saga writes Saga.AbortRequested; a reader sees neither button", async () => {
  const page = await openPage(browser);
  await signIn(page, server.base, server.adminToken, `/ui/sagas/${saga.running}`);
  await page.waitForSelector("#saga-state [data-state=running]", WAIT);
  assert.equal(await page.locator("#saga-retry").count(), 0);
  page.once("dialog", (dialog) => dialog.accept());
  await page.click("#saga-abort");
  await page.waitForSelector("#saga-asked", WAIT);
  const asked = await server.api("GET", `/v1/facts/${saga.running}/successors?type=Saga.AbortRequested&role=saga`);
  assert.equal(asked.facts.length, 1);
  assert.deepEqual(asked.facts[0].fact.predecessors, { saga: saga.running, definition: saga.definition });
  // An abort is pending: no second button.
  await page.waitForSelector("#saga-actions :text('An abort was asked for')", WAIT);

  const reader = await openPage(browser);
  await signIn(reader, server.base, await token("saga-reader", { read: ["Saga.*"] }), `/ui/sagas/${saga.failed}`);
  await reader.waitForSelector("#saga-state [data-state=failed]", WAIT);
  await reader.waitForSelector("#saga-timeline li", WAIT);
  assert.equal(await reader.locator("#saga-retry, #saga-abort").count(), 0);
  // Browsing wrote nothing: still exactly one request of each kind.
  assert.equal((await server.api("GET", `/v1/facts/${saga.failed}/successors?type=Saga.RetryRequested&role=saga`)).facts.length, 1);
  assert.deepEqual(page.problems, []);
  assert.deepEqual(reader.problems, []);
});

test("claims and leases: newest first, with holder, fence, and whether they still hold", async () => {
  const [winner, other] = await writeFacts(server, [fact("Job.Run", { n: 1 }), fact("Job.Run", { n: 2 })]);
  const key = `job-${HOSTILE}`;
  await server.api("POST", "/v1/claims", { key, fact: winner });
  await server.api("POST", "/v1/claims", { key: "released-key", fact: other });
  await server.api("POST", "/v1/claims/release", { key: "released-key", fact: other });
  await server.api("POST", "/v1/leases/printer/acquire", { holder: `worker ${HOSTILE}`, ttl_ms: 600_000 });
  const page = await openPage(browser);
  await signIn(page, server.base, server.adminToken, "/ui/collaboration");
  await page.waitForSelector("#claims tr:has-text('released-key') :text('released')", WAIT);
  const held = page.locator("#claims tr", { hasText: "job-<img" });
  await held.locator(":text('held')").waitFor(WAIT);
  assert.ok((await held.textContent()).includes(key));
  await page.waitForSelector("#leases tr:has-text('printer') :text('held')", WAIT);
  assert.ok((await page.textContent("#leases tr:has-text('printer')")).includes(`worker ${HOSTILE}`));
  // A claim made while the page is open appears without a reload.
  const [late] = await writeFacts(server, [fact("Job.Run", { n: 3 })]);
  await server.api("POST", "/v1/claims", { key: "late-key", fact: late });
  await page.waitForSelector("#claims tr:has-text('late-key') :text('held')", WAIT);
  assert.equal(await page.locator("main img").count(), 0);
  assert.equal(await page.evaluate(() => window.hacked), undefined);
  assert.deepEqual(page.problems, []);
});

test("on a phone in dark theme the pages fit the screen", async () => {
  const page = await openPage(browser, { viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  await signIn(page, server.base, server.adminToken, "/ui/collaboration");
  await page.waitForSelector(`#saga-instances a[href="/ui/sagas/${saga.failed}"]`, WAIT);
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(background, "rgb(18, 22, 27)", "dark theme");
  const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(await fits(), "no sideways scrolling on the collaboration page");
  await page.click(`#saga-instances a[href="/ui/sagas/${saga.failed}"]`);
  await page.waitForSelector("#saga-timeline li[data-kind=failed]", WAIT);
  assert.ok(await fits(), "no sideways scrolling on a saga's page");
  assert.deepEqual(page.problems, []);
});
