// Takes the screenshots of docs/console.md from the reference system:
// runs `cairn demo` (CAIRN_BIN, default target/debug/cairn; its server
// serves CAIRN_CONSOLE_DIR's build when that is set), signs in with the
// admin token it prints, lets the coffee shop run (and break) for a while,
// and photographs each main page in Debian's Chromium (1280×800, light;
// one page on a phone in the dark theme) into docs/console/. The demo then
// runs to its end and its report is printed.
//
//   cd console && node screenshots.mjs
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { CAIRN, launchBrowser, openPage, signIn } from "./tests/harness.mjs";

const OUT = new URL("../docs/console/", import.meta.url).pathname;
mkdirSync(OUT, { recursive: true });

const LISTEN = "127.0.0.1:7796";
const demo = spawn(CAIRN, ["demo", "--duration", "120s", "--seed", "7", "--listen", LISTEN], { stdio: ["ignore", "pipe", "inherit"] });
let output = "";
demo.stdout.setEncoding("utf8");
demo.stdout.on("data", (chunk) => { output += chunk; });
const ended = new Promise((resolve) => demo.on("exit", resolve));
const until = async (pattern) => {
  for (let waited = 0; waited < 120_000 && !pattern.test(output); waited += 200) await new Promise((r) => setTimeout(r, 200));
  return pattern.exec(output);
};
const [, base, token] = await until(/watch it: (http:\/\/\S+?)\/ui\/\s+\(admin token: (\S+)\)/);
// Past the card provider's outage and Cairn's restart: dead letters and refunds exist.
await until(/\[\s*(2[5-9]|[3-9]\d)\.\d s\] ordered/);
const api = async (path) => (await fetch(base + path, { headers: { authorization: `Bearer ${token}` } })).json();
const browser = await launchBrowser();
try {
  const { facts } = await api("/v1/log?after=0&limit=1000&types=Cafe.OrderServed");
  const served = facts.at(-1).hash;
  const order = Object.values(facts.at(-1).fact.predecessors).flat()[0];
  const shots = [
    ["facts", "/ui/facts", "#tail tbody tr"],
    ["fact", `/ui/facts/${order}`, "#fact-graph .node"],
    ["timeline", `/ui/facts/${served}/timeline`, "#timeline li .delivery"],
    ["subscriptions", "/ui/subscriptions", "main table"],
    ["subscription", "/ui/subscriptions/payments", "main .chart"],
    ["failures", "/ui/failures", "main table"],
    ["dead-letters", "/ui/subscriptions/payments/dead", "main table"],
    ["collaboration", "/ui/collaboration", "main table"],
    ["schemas", "/ui/schemas", "main table"],
    ["services", "/ui/services", "main svg"],
    ["server", "/ui/server", "#health"],
  ];
  for (const [name, path, ready] of shots) {
    const page = await openPage(browser, { viewport: { width: 1280, height: 800 } });
    await signIn(page, base, token, path);
    await page.waitForSelector(ready, { timeout: 15_000 }).catch(() => console.error(`${name}: ${ready} did not show`));
    // Let live charts take a few readings.
    await page.waitForTimeout(name === "subscription" || name === "server" ? 7000 : 1000);
    await page.screenshot({ path: `${OUT}${name}.png` });
    // A page taken while the demo had Cairn down shows that; take it again.
    for (let retry = 0; retry < 3 && page.problems.length > 0; retry += 1) {
      page.problems.length = 0;
      await page.waitForTimeout(5000);
      await page.screenshot({ path: `${OUT}${name}.png` });
    }
    console.log(`${name}.png ${page.problems.join("; ")}`);
    await page.context().close();
  }
  const phone = await openPage(browser, { viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  await signIn(phone, base, token, `/ui/facts/${order}`);
  await phone.waitForSelector("#fact-graph .node");
  await phone.waitForTimeout(500);
  await phone.screenshot({ path: `${OUT}phone-dark-fact.png` });
  console.log("phone-dark-fact.png");
} finally {
  await browser.close();
  await ended;
  console.log(output.trim().split("\n").slice(-9).join("\n"));
}
