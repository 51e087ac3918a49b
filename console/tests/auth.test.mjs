// The console on a server with --auth: a token login, and only what that
// identity may see — facts of other types are "not found", the live tail
// leaves them out, authorship is for admins — and a bad token is refused
// with the API's words.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fact, launchBrowser, openPage, signIn, startServer, writeFacts } from "./harness.mjs";

let server;
let browser;
let readerToken;
before(async () => {
  server = await startServer({ auth: true });
  browser = await launchBrowser();
  const made = await server.api("POST", "/v1/tokens", { name: "reader", permissions: { read: ["Shop.*"] } });
  readerToken = made.token;
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test("without a token the console asks for one, and a wrong one is refused", async () => {
  const page = await openPage(browser);
  await page.goto(`${server.base}/ui/facts`);
  await page.waitForURL(/\/ui\/login\?next=/);
  await page.fill("input[name=token]", `cairn_${"0".repeat(16)}_${"1".repeat(64)}`);
  await page.click("button[type=submit]");
  await page.waitForSelector(".problem >> text=unauthenticated");
  assert.match(page.url(), /\/ui\/login/);
  assert.deepEqual(page.problems, []);
});

test("a reader sees its types only, and no authorship", async () => {
  const [order] = await writeFacts(server, [fact("Shop.Order", { id: "visible" })]);
  const [secret] = await writeFacts(server, [fact("Payroll.Salary", { amount: 1 })]);
  const page = await openPage(browser);
  await signIn(page, server.base, readerToken, `/ui/facts/${order}`);
  await page.waitForSelector("#fact-fields");
  assert.match(await page.textContent("main"), /shown to admins only/);
  await page.goto(`${server.base}/ui/facts/${secret}`);
  await page.waitForSelector(".problem >> text=not_found");
  await page.goto(`${server.base}/ui/facts`);
  await page.waitForSelector(`#tail a[href="/ui/facts/${order}"]`);
  assert.equal(await page.locator(`#tail a[href="/ui/facts/${secret}"]`).count(), 0);
  // The session is this tab's: a new tab must sign in again.
  const other = await openPage(browser);
  await other.goto(`${server.base}/ui/facts`);
  await other.waitForURL(/\/ui\/login/);
  assert.deepEqual(page.problems, []);
});

test("an admin sees who wrote a fact", async () => {
  const [order] = await writeFacts(server, [fact("Shop.Order", { id: "authored" })]);
  const page = await openPage(browser);
  await signIn(page, server.base, server.adminToken, `/ui/facts/${order}`);
  await page.waitForSelector("#fact-fields");
  assert.match(await page.textContent("main"), /Author\s*admin/);
  assert.deepEqual(page.problems, []);
});
