// One fact: its fields, size, author, and its neighbours as a graph one
// step deep on each side — predecessors on the left, successors on the
// right, every node a link to its own page.
import { may } from "../api.js";
import { h, link, problem, replace, section } from "../dom.js";
import { bytes, count, pretty, short } from "../format.js";
import { page } from "../router.js";
import { predecessorsOf, readFact, successorsOf } from "../graph.js";
import { HASH } from "./facts.js";

page("/ui/facts/:hash", async (main, { hash }, { me, signal }) => {
  if (!HASH.test(hash)) {
    main.append(h("h1", {}, "Fact"), problem({ code: "invalid_hash", message: "a fact's hash is 64 lowercase hexadecimal digits" }));
    return;
  }
  main.append(h("h1", {}, "Fact ", h("span", { class: "mono" }, short(hash))));
  let stored;
  try {
    stored = await readFact(hash, signal);
  } catch (error) {
    if (error.name !== "AbortError") main.append(problem(error));
    return;
  }
  if (!stored) {
    main.append(problem({ code: "not_found", message: "no fact with this hash is stored here (or you may not read its type)" }));
    return;
  }
  const { fact } = stored;
  const size = stored.size ?? new TextEncoder().encode(JSON.stringify(fact)).length;
  main.append(
    section("About",
      h("dl", { class: "facts" },
        h("dt", {}, "Hash"), h("dd", { class: "mono", id: "fact-hash" }, hash),
        h("dt", {}, "Type"), h("dd", {}, link(`/ui/facts?type=${encodeURIComponent(fact.type)}`, fact.type)),
        h("dt", {}, "Seq"), h("dd", {}, count(stored.seq)),
        h("dt", {}, "Canonical size"), h("dd", {}, `${bytes(size)} (${count(size)} bytes)`),
        h("dt", {}, "Author"), h("dd", {}, authorText(stored.author, me))),
      h("p", {}, link(`/ui/facts/${hash}/timeline`, "Timeline of the process around this fact →"))),
    section("Fields", h("pre", { id: "fact-fields" }, pretty(fact.fields))));
  const graph = h("div", { class: "graph", id: "fact-graph" }, h("p", { class: "muted" }, "Loading neighbours…"));
  main.append(section("Predecessors and successors", graph));
  drawGraph(graph, stored, signal).catch((error) => {
    if (error.name !== "AbortError") replace(graph, problem(error));
  });
});

function authorText(author, me) {
  if (author?.first) {
    return [author.first, author.again?.length ? `, again by ${author.again.join(", ")}` : ""].join("");
  }
  if (me.auth && !may(me.permissions, "admin")) return "shown to admins only";
  return "not recorded (written without a token)";
}

async function drawGraph(graph, stored, signal) {
  const predecessors = predecessorsOf(stored.fact).slice(0, 32);
  const left = await Promise.all(predecessors.map(async ({ role, hash }) => {
    const fact = await readFact(hash, signal);
    return node(hash, role, fact?.fact.type ?? "not readable");
  }));
  const right = h("div", { class: "column", "aria-label": "Successors" }, h("p", { class: "muted" }, "Loading successors…"));
  replace(graph,
    h("div", { class: "column", "aria-label": "Predecessors" },
      left.length ? left : h("p", { class: "muted" }, "No predecessors: a root fact.")),
    h("div", { class: "arrow", "aria-hidden": "true" }, "→ ",
      h("div", { class: "node self" }, stored.fact.type, h("br"), h("span", { class: "mono" }, short(stored.hash))), " →"),
    right);
  try {
    const { successors, complete } = await successorsOf(stored.hash, { signal });
    replace(right,
      successors.length ? successors.map((entry) => node(entry.hash, entry.role, entry.fact.type)) : h("p", { class: "muted" }, "No successors yet."),
      complete ? null : h("p", { class: "muted" }, "More successors exist; the timeline walks further."));
  } catch (error) {
    if (error.name !== "AbortError") replace(right, problem(error));
  }
}

function node(hash, role, type) {
  return h("a", { class: "node", href: `/ui/facts/${hash}`, "data-route": "", title: hash },
    h("span", { class: "muted" }, role ?? "", " "), type, h("br"), h("span", { class: "mono" }, short(hash)));
}
