// The Subscriptions pages in a real browser: create a subscription with
// the form, make dead letters through the API, replay one and see the
// backlog change, pause, resume and delete; a bad value refused with the
// API's own message; the actions hidden from an identity that may not take
// them; and every page at phone size in the dark theme.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fact, launchBrowser, openPage, signIn, startServer, writeFacts } from "./harness.mjs";
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

const text = (page, selector) => page.locator(selector).textContent();
const waitText = (page, selector, expected) => page.waitForFunction(
  ([selector, expected]) => document.querySelector(selector)?.textContent.trim() === expected, [selector, expected], LONG);

test("create with the form, replay a dead letter and see the backlog change, pause, resume, delete", async () => {
  const page = await openPage(browser);
  await page.goto(`${server.base}/ui/subscriptions`);
  await page.click("#new-subscription");
  await page.waitForURL(`${server.base}/ui/subscriptions/new`);
  await page.fill("input[name=name]", "orders");
  await page.fill("input[name=type]", "Shop.Order");
  await page.fill("input[name=max_attempts]", "1");
  await page.fill("input[name=backoff_initial_ms]", "50");
  await page.click("#subscription-form button[type=submit]");
  await page.waitForURL(`${server.base}/ui/subscriptions/orders`);
  await waitText(page, "#counter-backlog", "0");
  const created = await server.api("GET", "/v1/subscriptions/orders");
  assert.equal(created.type, "Shop.Order");
  assert.equal(created.max_attempts, 1);
  assert.deepEqual(created.backoff, { initial_ms: 50, max_ms: 60000 });
  assert.equal(created.lease_ms, 30000, "a blank field takes the server's default");

  await makeDeadLetters(server, "orders", "Shop.Order", ["payment declined for order 17", "payment declined for order 18", "payment declined for order 19"]);
  await waitText(page, "#counter-dead", "3");
  assert.equal(await text(page, "#counter-backlog"), "0");

  await page.click("#counter-dead a");
  await page.waitForURL(`${server.base}/ui/subscriptions/orders/dead`);
  await page.click("#dead-list tbody tr:first-child a");
  await page.waitForURL(/\/ui\/subscriptions\/orders\/dead\/[0-9a-f]{64}$/);
  assert.match(await text(page, "#letter-error"), /^payment declined for order 1\d$/);
  assert.equal(await text(page, "#letter-attempts"), "1");
  await page.click("#replay-letter");
  await page.click("text=Back to the subscription");
  await page.waitForURL(`${server.base}/ui/subscriptions/orders`);
  await waitText(page, "#counter-backlog", "1");
  await waitText(page, "#counter-dead", "2");

  await page.click("#pause");
  await waitText(page, ".subscription-state", "paused");
  assert.equal((await server.api("GET", "/v1/subscriptions/orders")).paused, true);
  await page.click("#resume");
  await waitText(page, ".subscription-state", "running");
  assert.equal((await server.api("GET", "/v1/subscriptions/orders")).paused, false);

  await page.click("#delete");
  await page.click("#confirm-delete");
  await page.waitForURL(`${server.base}/ui/subscriptions`);
  const gone = await server.api("GET", "/v1/subscriptions/orders", undefined, { raw: true });
  assert.equal(gone.status, 404);
  assert.deepEqual(page.problems, []);
});

test("browsing changes nothing: the list and a subscription's page never lease", async () => {
  await subscribe(server, "watched", "Watch.Item");
  await writeFacts(server, [fact("Watch.Item", { n: 1 }), fact("Watch.Item", { n: 2 })]);
  const page = await openPage(browser);
  await page.goto(`${server.base}/ui/subscriptions`);
  await page.waitForSelector(`#subscriptions a[href="/ui/subscriptions/watched"]`, LONG);
  await page.click(`#subscriptions a[href="/ui/subscriptions/watched"]`);
  await waitText(page, "#counter-backlog", "2");
  await page.goto(`${server.base}/ui/subscriptions/watched/dead`);
  await page.waitForSelector("text=No dead letters here.", LONG);
  const view = await server.api("GET", "/v1/subscriptions/watched");
  assert.equal(view.in_flight, 0);
  assert.equal(view.delivered, 0);
  assert.equal(view.backlog, 2);
  assert.deepEqual(page.problems, []);
});

test("a bad value is refused with the API's message, and nothing is created", async () => {
  const refused = await server.api("PUT", "/v1/subscriptions/reference", { type: "Shop.Order", lease_ms: 5 }, { raw: true });
  assert.equal(refused.status, 400);
  const { error } = await refused.json();
  assert.equal(error.code, "invalid_definition");

  const page = await openPage(browser);
  await page.goto(`${server.base}/ui/subscriptions/new`);
  await page.fill("input[name=name]", "bad-lease");
  await page.fill("input[name=type]", "Shop.Order");
  await page.fill("input[name=lease_ms]", "5");
  await page.click("#subscription-form button[type=submit]");
  await page.waitForSelector("#form-result .problem", LONG);
  assert.equal(await text(page, "#form-result .problem code"), "invalid_definition");
  assert.equal(await text(page, "#form-result .problem"), `invalid_definition ${error.message}`);

  // Not a number at all: the API says so too.
  await page.fill("input[name=lease_ms]", "");
  await page.fill("input[name=max_attempts]", "many");
  await page.click("#subscription-form button[type=submit]");
  await page.waitForFunction(() => /"many"/.test(document.querySelector("#form-result .problem")?.textContent ?? ""), null, LONG);
  assert.equal(await text(page, "#form-result .problem code"), "invalid_definition");
  assert.equal(page.url(), `${server.base}/ui/subscriptions/new`);

  // A bad name, and none at all.
  await page.fill("input[name=max_attempts]", "");
  await page.fill("input[name=name]", "-starts-with-a-dash");
  await page.click("#subscription-form button[type=submit]");
  await page.waitForFunction(() => /subscription name/.test(document.querySelector("#form-result .problem")?.textContent ?? ""), null, LONG);
  const badName = await server.api("PUT", "/v1/subscriptions/-starts-with-a-dash", { type: "Shop.Order" }, { raw: true });
  assert.equal(await text(page, "#form-result .problem"), `invalid_definition ${(await badName.json()).error.message}`);
  await page.fill("input[name=name]", "");
  await page.click("#subscription-form button[type=submit]");
  await page.waitForSelector("#form-result .problem", LONG);
  assert.match(await text(page, "#form-result .problem"), /^invalid_definition a subscription name is 1 to 128/);

  for (const name of ["bad-lease", "reference"]) {
    const answer = await server.api("GET", `/v1/subscriptions/${name}`, undefined, { raw: true });
    assert.equal(answer.status, 404, name);
  }
  assert.deepEqual(page.problems, []);
});

test("an identity without admin sees no pause, resume, delete, replay or discard", async () => {
  const secured = await startServer({ auth: true });
  try {
    await subscribe(secured, "guarded", "Guard.Job");
    await makeDeadLetters(secured, "guarded", "Guard.Job", ["refused by <b>upstream</b>", "refused by <b>upstream</b>"]);
    const { token } = await secured.api("POST", "/v1/tokens", { name: "viewer", permissions: { read: ["*"], subscribe: ["*"] } });
    const { token: reader } = await secured.api("POST", "/v1/tokens", { name: "reader", permissions: { read: ["*"] } });

    const page = await openPage(browser);
    await signIn(page, secured.base, token, "/ui/subscriptions");
    await page.waitForSelector(`#subscriptions a[href="/ui/subscriptions/guarded"]`, LONG);
    assert.equal(await page.locator("#new-subscription").count(), 1, "subscribe may create");

    await page.click(`#subscriptions a[href="/ui/subscriptions/guarded"]`);
    await waitText(page, "#counter-dead", "2");
    for (const selector of ["#pause", "#resume", "#delete"]) assert.equal(await page.locator(selector).count(), 0, selector);

    await page.click("#counter-dead a");
    await page.waitForSelector("#dead-list tbody tr", LONG);
    await page.waitForSelector("#dead-causes table", LONG);
    for (const selector of ["#replay-selected", "#discard-selected", "#dead-list input[type=checkbox]", "[data-job]"]) {
      assert.equal(await page.locator(selector).count(), 0, selector);
    }
    await page.click("#dead-list tbody tr:first-child a");
    await page.waitForSelector("#letter-error");
    assert.equal(await page.locator("#replay-letter, #discard-letter").count(), 0);

    await page.click("nav a[href='/ui/failures']");
    await page.waitForSelector("#failure-groups tbody tr", LONG);
    assert.equal(await page.locator("#failure-groups button").count(), 0);
    assert.equal(await page.locator("#failure-groups a", { hasText: "View" }).count(), 1);
    assert.deepEqual(page.problems, []);

    const readerPage = await openPage(browser);
    await signIn(readerPage, secured.base, reader, "/ui/subscriptions");
    await readerPage.waitForSelector("#subscriptions .empty", LONG);
    assert.equal(await readerPage.locator("#new-subscription").count(), 0, "read alone may not create");
    assert.deepEqual(readerPage.problems, []);
  } finally {
    await secured.stop();
  }
});

test("every page renders at phone size in the dark theme", async () => {
  await subscribe(server, "phone", "Phone.Call");
  const [hash] = await makeDeadLetters(server, "phone", "Phone.Call", ["line busy, retry in 30 s"]);
  const page = await openPage(browser, { viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  const pages = [
    ["/ui/subscriptions", "#subscriptions table"],
    ["/ui/subscriptions/new", "#subscription-form"],
    ["/ui/subscriptions/phone", "#counter-dead a"],
    ["/ui/subscriptions/phone/dead", "#dead-list table"],
    [`/ui/subscriptions/phone/dead/${hash}`, "#letter-error"],
    ["/ui/failures", "#failure-groups table"],
  ];
  for (const [path, selector] of pages) {
    await page.goto(server.base + path);
    await page.waitForSelector(selector, LONG);
    const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(dark, "rgb(18, 22, 27)", `${path} is dark`);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `${path} fits the phone's width (${width} px)`);
  }
  assert.deepEqual(page.problems, []);
});
