// Facts: find one by hash or by type, and watch the log live. The tail
// long-polls `GET /v1/log` (one request waits until a fact arrives), so a
// fact written anywhere shows up within moments, with no page reload.
import { get } from "../api.js";
import { h, link, problem, replace, section, table } from "../dom.js";
import { count, short } from "../format.js";
import { go, page, sleep } from "../router.js";

const HASH = /^[0-9a-f]{64}$/;
const TAIL_ROWS_MAX = 200;
const TAIL_WAIT_MS = 20_000;

/** A fact's fields in one line, cut to `length` characters. */
export function excerpt(fields, length = 140) {
  const text = JSON.stringify(fields ?? {});
  return text.length > length ? `${text.slice(0, length)}…` : text;
}

/** A link to a fact's page showing the start of its hash. */
export const factLink = (hash) => h("a", { href: `/ui/facts/${hash}`, "data-route": "", title: hash, class: "mono" }, short(hash));

page("/ui/facts", (main, _params, { query, signal }) => {
  const search = h("input", { type: "search", name: "q", size: 50, value: query.get("type") ?? "",
    placeholder: "a fact's hash, or a type (Shop.Order, Shop.*)", "aria-label": "Hash or type" });
  const results = h("div");
  const form = h("form", { class: "row", role: "search" }, search, h("button", { type: "submit" }, "Find"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = search.value.trim();
    if (HASH.test(text.toLowerCase())) go(`/ui/facts/${text.toLowerCase()}`);
    else go(`/ui/facts?type=${encodeURIComponent(text)}`);
  });
  const typeName = query.get("type");
  main.append(h("h1", {}, "Facts"), section("Find a fact", form, results));
  if (typeName) showType(results, typeName, signal);

  const filter = h("input", { type: "text", name: "types", size: 30, value: typeName ?? "",
    placeholder: "type pattern, e.g. Shop.*", "aria-label": "Type filter" });
  const state = h("span", { class: "muted" });
  const rows = h("tbody");
  const tail = h("div", { class: "tail table-scroll" },
    h("table", { id: "tail" }, h("thead", {}, h("tr", {}, ["Seq", "Type", "Hash", "Fields"].map((name) => h("th", {}, name)))), rows));
  const restart = h("button", { type: "button" }, "Apply");
  main.append(section("Live tail of the log", h("div", { class: "row" }, h("label", {}, "Only types ", filter), restart, state), tail));

  let tailing = null;
  const follow = () => {
    tailing?.abort();
    tailing = new AbortController();
    signal.addEventListener("abort", () => tailing.abort(), { once: true });
    rows.replaceChildren();
    runTail(rows, state, filter.value.trim(), tailing.signal);
  };
  restart.addEventListener("click", follow);
  follow();
});

/** Facts of one type or pattern, from the start of the log, a page at a time. */
async function showType(results, pattern, signal) {
  let after = 0;
  const list = h("tbody");
  const more = h("button", { type: "button", class: "quiet" }, "More");
  const status = h("span", { class: "muted" });
  replace(results, h("div", { class: "table-scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Seq", "Type", "Hash", "Fields"].map((name) => h("th", {}, name)))), list)),
  h("div", { class: "row" }, more, status));
  const load = async () => {
    more.disabled = true;
    try {
      const answer = await get("/v1/log", { after, limit: 50, types: pattern }, { signal });
      for (const entry of answer.facts) list.append(factRow(entry));
      after = answer.next;
      replace(status, `${count(list.children.length)} shown; log read up to seq ${count(after)} of ${count(answer.head)}`);
      more.disabled = after >= answer.head;
    } catch (error) {
      if (error.name !== "AbortError") replace(status, problem(error));
    }
  };
  more.addEventListener("click", load);
  await load();
}

function factRow(entry) {
  return h("tr", {},
    h("td", { class: "number" }, count(entry.seq)),
    h("td", {}, entry.fact.type),
    h("td", {}, factLink(entry.hash)),
    h("td", { class: "mono" }, excerpt(entry.fact.fields)));
}

async function runTail(rows, state, pattern, signal) {
  let after;
  try {
    const head = (await get("/v1/log", { after: 0, limit: 1 }, { signal })).head;
    after = Math.max(0, head - 50);
  } catch (error) {
    if (error.name !== "AbortError") replace(state, problem(error));
    return;
  }
  while (!signal.aborted) {
    try {
      replace(state, "live");
      const answer = await get("/v1/log", { after, limit: 500, wait_ms: TAIL_WAIT_MS, types: pattern || undefined }, { signal });
      for (const entry of answer.facts) {
        rows.prepend(factRow(entry));
      }
      while (rows.children.length > TAIL_ROWS_MAX) rows.lastChild.remove();
      after = answer.next;
    } catch (error) {
      if (error.name === "AbortError" || signal.aborted) return;
      replace(state, problem(error));
      await sleep(2000, signal);
    }
  }
}

export { HASH };
