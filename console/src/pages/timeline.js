// A business process as a timeline: from any fact, the facts around it
// (ancestors and descendants a few steps away, across every service that
// wrote them) in log order, each with how the subscriptions that carried
// it delivered it — attempts, errors, dead letters.
import { get } from "../api.js";
import { h, link, problem, replace, section } from "../dom.js";
import { count, short, time } from "../format.js";
import { page } from "../router.js";
import { neighbourhood } from "../graph.js";
import { excerpt, HASH } from "./facts.js";

const DELIVERY_READS_AT_ONCE = 6;

page("/ui/facts/:hash/timeline", async (main, { hash }, { signal }) => {
  main.append(h("h1", {}, "Timeline around ", link(`/ui/facts/${hash}`, h("span", { class: "mono" }, short(hash)))));
  if (!HASH.test(hash)) {
    main.append(problem({ code: "invalid_hash", message: "a fact's hash is 64 lowercase hexadecimal digits" }));
    return;
  }
  const status = h("p", { class: "muted" }, "Walking the facts around it…");
  const list = h("ol", { class: "timeline", id: "timeline" });
  main.append(section("Facts and deliveries, in log order", status, list));
  try {
    const { facts, complete } = await neighbourhood(hash, { signal });
    if (facts.length === 0) {
      replace(status, problem({ code: "not_found", message: "no fact with this hash is stored here (or you may not read its type)" }));
      return;
    }
    replace(status, `${count(facts.length)} facts within three steps along predecessors and successors${complete ? "" : " (bounded: more exist further out)"}.`);
    const items = facts.map((entry) => {
      const deliveries = h("div");
      const item = h("li", { class: entry.relation === "self" ? "self" : "" },
        h("div", {}, h("strong", {}, entry.fact.type), " ",
          link(`/ui/facts/${entry.hash}`, h("span", { class: "mono" }, short(entry.hash))), " ",
          h("span", { class: "muted" }, `seq ${count(entry.seq)} · ${entry.relation}${entry.distance ? ` (${entry.distance})` : ""}`),
          entry.author?.first ? h("span", { class: "badge" }, entry.author.first) : null),
        h("div", { class: "mono muted" }, excerpt(entry.fact.fields, 160)),
        deliveries);
      list.append(item);
      return { entry, item, deliveries };
    });
    await forEachLimited(items, DELIVERY_READS_AT_ONCE, async ({ entry, item, deliveries }) => {
      const answer = await get(`/v1/facts/${entry.hash}/deliveries`, {}, { signal });
      if (answer.deliveries.some((delivery) => delivery.state === "dead")) item.classList.add("bad");
      replace(deliveries, answer.deliveries.map(deliveryLine));
    });
  } catch (error) {
    if (error.name !== "AbortError") replace(status, problem(error));
  }
});

function deliveryLine(delivery) {
  const tone = { acked: "good", dead: "bad", discarded: "bad", in_flight: "warn" }[delivery.state] ?? "";
  return h("div", { class: "delivery" },
    "→ ", link(`/ui/subscriptions/${encodeURIComponent(delivery.subscription)}`, delivery.subscription), " ",
    h("span", { class: `badge ${tone}` }, delivery.state.replaceAll("_", " ")),
    delivery.attempts ? ` after ${delivery.attempts} attempt${delivery.attempts === 1 ? "" : "s"}` : "",
    delivery.dead_at_ms ? ` · dead since ${time(delivery.dead_at_ms)}` : "",
    delivery.last_error ? h("span", { class: "muted" }, ` · last error: ${delivery.last_error}`) : "");
}

/** Runs `step` over `items`, at most `limit` at a time. */
async function forEachLimited(items, limit, step) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next];
      next += 1;
      await step(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
