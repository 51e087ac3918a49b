// The Links, Schemas and Services pages in a real browser: a link from a
// second server catching up (and a failing one saying why), a type's
// schema versions with compatibility and upcast as JSON text, services
// drawn as a flow map with their observed flows and violations, admin-only
// pages told to other identities, hostile strings as text, and a phone in
// dark theme.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fact, launchBrowser, openPage, signIn, startServer, writeFacts } from "./harness.mjs";

const HOSTILE = "<img src=x onerror=\"window.hacked=1\"><script>window.hacked=2</script>\u202Egnp.exe";
const WAIT = { timeout: 15_000 };

let server;
let source;
let browser;
before(async () => {
  [server, source] = await Promise.all([startServer({ auth: true }), startServer()]);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  await source?.stop();
});

async function token(name, permissions) {
  return (await server.api("POST", "/v1/tokens", { name, permissions })).token;
}

test("links show state, lag, facts received and the last error, live", async () => {
  await writeFacts(source, [fact("Shop.Order", { id: "o-1" }), fact("Shop.Order", { id: "o-2" })]);
  await server.api("PUT", "/v1/links/from-shop", { source: source.base, types: ["Shop.*"] });
  await server.api("PUT", "/v1/links/nowhere", { source: "http://127.0.0.1:9", types: ["Other.*"] });
  const page = await openPage(browser);
  await signIn(page, server.base, server.adminToken, "/ui/links");
  const shop = "#links tr:has([data-link=from-shop])";
  await page.waitForSelector(`${shop} :text('caught up')`, WAIT);
  assert.match(await page.textContent(shop), /running/);
  assert.ok((await page.textContent(shop)).includes(source.base));
  await page.waitForSelector("#links tr:has([data-link=nowhere]) .badge.bad", WAIT);
  assert.match(await page.textContent("#links tr:has([data-link=nowhere]) .link-error"), /\w+/);
  // Facts written at the source arrive, and the count moves without a reload.
  const before = Number((await page.textContent(`${shop} td:nth-child(7)`)).replace(/,/g, ""));
  await writeFacts(source, [fact("Shop.Order", { id: "o-3" })]);
  await page.waitForFunction(([selector, count]) =>
    Number(document.querySelector(selector)?.textContent.replace(/,/g, "")) > count, [`${shop} td:nth-child(7)`, before], WAIT);
  assert.deepEqual(page.problems, []);
});

test("schemas: types with versions, a type's versions as JSON text", async () => {
  await server.api("PUT", "/v1/schemas/Shop.Invoice/1", {
    schema: { type: "object", properties: { total: { type: "number", description: HOSTILE } } },
    compatibility: "none",
  });
  await server.api("PUT", "/v1/schemas/Shop.Invoice/2", {
    schema: { type: "object", properties: { amount: { type: "number" } } },
    compatibility: "none",
    upcast: [{ op: "rename", from: "/total", to: "/amount" }],
  });
  const page = await openPage(browser);
  await signIn(page, server.base, server.adminToken, "/ui/schemas");
  await page.waitForSelector("#schemas a[href='/ui/schemas/Shop.Invoice']", WAIT);
  assert.match(await page.textContent("#schemas tr:has-text('Shop.Invoice')"), /1, 2/);
  await page.click("#schemas a[href='/ui/schemas/Shop.Invoice']");
  await page.waitForSelector("[data-version='1'] .schema-json", WAIT);
  assert.match(await page.textContent("[data-version='2'] .upcast-json"), /"op": "rename"/);
  assert.equal(await page.textContent("[data-version='2'] .compatibility"), "none");
  assert.ok((await page.textContent("[data-version='1'] .schema-json")).includes(JSON.stringify(HOSTILE).slice(1, 20)));
  assert.equal(await page.locator("main img").count(), 0);
  assert.equal(await page.evaluate(() => window.hacked), undefined);
  await page.goto(`${server.base}/ui/schemas/No.Such`);
  await page.waitForSelector("main .problem:has-text('unknown_schema')", WAIT);
  assert.deepEqual(page.problems, []);
});

test("services: the flow map, its edges, observed flows and violations", async () => {
  await server.api("PUT", "/v1/services/shop?allow_unknown_types=true",
    { name: "shop", identity: "shop-svc", owns: ["Shop.Order"], description: `takes orders ${HOSTILE}` });
  await server.api("PUT", "/v1/services/billing?allow_unknown_types=true",
    { name: "billing", identity: "billing-svc", owns: ["Billing.Invoice"], consumes: ["Shop.Order"] });
  // An identity no service declares writes an order: a violation.
  const rogue = await token("rogue", { write: ["Shop.*"], read: ["Shop.*"] });
  await writeFacts(server, [fact("Shop.Order", { id: "r-1" })], { token: rogue });
  const page = await openPage(browser);
  await signIn(page, server.base, server.adminToken, "/ui/services");
  await page.waitForSelector("#flow-map svg g.node[data-name='billing'][data-column='consumer']", WAIT);
  assert.equal(await page.locator("#flow-map svg g.node[data-name='shop'][data-column='writer']").count(), 1);
  assert.equal(await page.locator("#flow-map svg g.node[data-name='Shop.Order'][data-column='type']").count(), 1);
  assert.ok(await page.locator("#flow-map svg path.edge").count() >= 3);
  assert.equal(await page.locator("#flow-map svg g.node[data-name='identity:rogue']").count(), 1);
  await page.waitForSelector("#violations tr:has-text('undeclared_writer')", WAIT);
  assert.match(await page.textContent("#edges"), /shop.*Shop\.Order.*billing/s);
  assert.match(await page.textContent("#flows"), /rogue/);
  assert.ok((await page.textContent("#services")).includes(`takes orders ${HOSTILE}`));
  assert.equal(await page.locator("main img").count(), 0);
  assert.equal(await page.evaluate(() => window.hacked), undefined);
  assert.deepEqual(page.problems, []);
});

test("identities without admin are told links and services are admin's", async () => {
  const page = await openPage(browser);
  await signIn(page, server.base, await token("reader", { read: ["*"] }), "/ui/links");
  await page.waitForSelector("main :text('needs the admin permission')", WAIT);
  assert.equal(await page.locator("#links").count(), 0);
  await page.click("nav a[href='/ui/services']");
  await page.waitForSelector("main :text('need the admin permission')", WAIT);
  await page.click("nav a[href='/ui/schemas']");
  await page.waitForSelector("#schemas a[href='/ui/schemas/Shop.Invoice']", WAIT);
  assert.deepEqual(page.problems, []);
});

test("on a phone in dark theme the system pages fit the screen", async () => {
  const page = await openPage(browser, { viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  await signIn(page, server.base, server.adminToken, "/ui/services");
  await page.waitForSelector("#flow-map svg g.node", WAIT);
  const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(await fits(), "the flow map scrolls inside its box");
  assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), "rgb(18, 22, 27)");
  await page.click("nav a[href='/ui/links']");
  await page.waitForSelector("#links tr", WAIT);
  assert.ok(await fits(), "the links table scrolls inside its box");
  assert.deepEqual(page.problems, []);
});
