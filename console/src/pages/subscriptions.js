// Subscriptions: every subscription with its counters, refreshed live, and
// one subscription's definition, counters and live charts (backlog and in
// flight, delivered/redelivered/acked per second, oldest unacked age), with
// pause, resume and delete for admins. Reading a subscription's view never
// pulls: browsing changes nothing.
import "./subscription-form.js";
import "./subscriptions.css";
import { ApiError, del, get, may, post, segment } from "../api.js";
import { h, link, problem, replace, section, table } from "../dom.js";
import { count, duration, pretty, rate } from "../format.js";
import { every, go, page } from "../router.js";
import { LiveChart } from "../chart.js";
import { deadUrl } from "./failures-job.js";

const REFRESH_MS = 2000;

/** Whether `permissions` may create some subscription (admin, or subscribe on any name). */
const mayCreate = (permissions) => may(permissions, "admin") || (permissions?.subscribe ?? []).length > 0;

const state = (view) => view.paused
  ? h("span", { class: "badge warn subscription-state" }, "paused")
  : h("span", { class: "badge good subscription-state" }, "running");

page("/ui/subscriptions", (main, _params, { me, signal }) => {
  const list = h("div", { id: "subscriptions" }, h("p", { class: "muted" }, "Reading subscriptions…"));
  main.append(
    h("div", { class: "row" }, h("h1", {}, "Subscriptions"),
      mayCreate(me.permissions) ? h("a", { href: "/ui/subscriptions/new", "data-route": "", id: "new-subscription", class: "button-link" }, "New subscription") : null),
    section("All subscriptions (refreshed every 2 seconds)", list));
  every(REFRESH_MS, signal, async () => {
    const { subscriptions } = await get("/v1/subscriptions", {}, { signal });
    replace(list, table(["Name", "Type", "State", "Backlog", "In flight", "Dead", "Acked", "Oldest unacked", "Lag"],
      subscriptions.map((view) => [
        link(`/ui/subscriptions/${segment(view.name)}`, view.name),
        view.type,
        state(view),
        h("span", { class: "number" }, count(view.backlog)),
        h("span", { class: "number" }, count(view.in_flight)),
        view.dead ? link(deadUrl(view.name), count(view.dead)) : "0",
        h("span", { class: "number" }, count(view.acked)),
        view.oldest_unacked_age_ms ? duration(view.oldest_unacked_age_ms) : "–",
        count(view.consumer_lag),
      ]), { empty: "No subscriptions (or none you may consume)." }));
  }, (error) => replace(list, problem(error)));
});

page("/ui/subscriptions/:name", (main, { name }, { me, signal }) => {
  const admin = may(me.permissions, "admin");
  const path = `/v1/subscriptions/${segment(name)}`;
  const heading = h("h1", {}, "Subscription ", h("span", { id: "subscription-name" }, name), " ");
  const tiles = h("div", { class: "tiles", id: "counters" });
  const definition = h("div", { id: "definition" });
  const controls = h("div", { class: "row", id: "controls" });
  const result = h("div", { role: "status", id: "control-result" });
  const backlog = new LiveChart("Backlog and in flight", ["backlog", "in flight"]);
  const rates = new LiveChart("Delivered, redelivered and acked per second", ["delivered/s", "redelivered/s", "acked/s"]);
  const age = new LiveChart("Oldest unacked age (seconds)", ["oldest unacked (s)"]);
  main.append(heading, tiles, controls, result,
    h("div", { class: "grid" },
      section("Backlog and in flight", backlog.element),
      section("Delivered, redelivered, acked per second", rates.element),
      section("Oldest unacked age", age.element)),
    section("Definition", definition),
    h("p", {}, link(deadUrl(name), "Dead letters of this subscription →"), " · ", link("/ui/failures", "All failures")));

  let view = null;
  let previous = null;
  const control = async (action) => {
    try {
      if (action === "delete") {
        await del(path);
        go("/ui/subscriptions");
        return;
      }
      show(await post(`${path}/${action}`, {}));
      replace(result);
    } catch (error) {
      replace(result, problem(error));
    }
  };
  const showControls = () => {
    if (!admin || !view) return;
    replace(controls,
      view.paused
        ? h("button", { type: "button", id: "resume", onclick: () => control("resume") }, "Resume")
        : h("button", { type: "button", id: "pause", onclick: () => control("pause") }, "Pause"),
      h("button", { type: "button", id: "delete", class: "danger", onclick: () => replace(result,
        h("div", { class: "row confirm" }, `Delete ${name}? Its cursor, backlog and dead letters are gone for good.`,
          h("button", { type: "button", id: "confirm-delete", class: "danger", onclick: () => control("delete") }, "Yes, delete"),
          h("button", { type: "button", class: "quiet", onclick: () => result.replaceChildren() }, "Cancel"))) }, "Delete…"));
  };
  const show = (next) => {
    const changed = !view || view.paused !== next.paused;
    view = next;
    replace(heading, "Subscription ", h("span", { id: "subscription-name" }, name), " ", state(view));
    replace(tiles,
      tile("Backlog", count(view.backlog), "backlog"),
      tile("In flight", count(view.in_flight), "in-flight"),
      tile("Dead letters", view.dead ? link(deadUrl(name), count(view.dead)) : "0", "dead"),
      tile("Oldest unacked", view.oldest_unacked_age_ms ? duration(view.oldest_unacked_age_ms) : "–", "oldest"),
      tile("Delivered", count(view.delivered), "delivered"),
      tile("Redelivered", count(view.redelivered), "redelivered"),
      tile("Acked", count(view.acked), "acked"),
      tile("Discarded", count(view.discarded), "discarded"),
      tile("Consumer lag", count(view.consumer_lag), "lag"));
    replace(definition, definitionList(view));
    if (changed) showControls();
  };
  every(REFRESH_MS, signal, async () => {
    const next = await get(path, {}, { signal });
    show(next);
    const now = performance.now();
    backlog.push([next.backlog, next.in_flight]);
    age.push([next.oldest_unacked_age_ms / 1000]);
    if (previous) {
      // Counters restart with the server: a negative difference is a restart.
      const seconds = (now - previous.at) / 1000;
      const per = (member) => Math.max(0, next[member] - previous.view[member]) / seconds;
      rates.push([per("delivered"), per("redelivered"), per("acked")]);
    }
    previous = { at: now, view: next };
  }, (error) => {
    if (error instanceof ApiError && error.status === 404) replace(tiles, problem(error));
    else replace(result, problem(error));
  });
});

function tile(title, value, id) {
  return h("section", { class: "card" }, h("h2", {}, title), h("div", { class: "big", id: `counter-${id}` }, value));
}

/** The definition's members, as the server filled them in. */
function definitionList(view) {
  const rows = [
    ["Type", view.type],
    ["Predecessor", view.predecessor ? `${view.predecessor.role} = ${view.predecessor.hash}` : "–"],
    ["Start", view.start ?? "–"],
    ["Lease", view.lease_ms === undefined ? "–" : `${count(view.lease_ms)} ms`],
    ["Max attempts", count(view.max_attempts)],
    ["Backoff", view.backoff ? `${count(view.backoff.initial_ms)} ms, doubling up to ${count(view.backoff.max_ms)} ms` : "–"],
    ["Ordering key", view.ordering_key ?? "–"],
    ["Max in flight per key", view.ordering_key ? count(view.max_in_flight_per_key) : "–"],
    ["Rate limit", view.rate_limit_per_s ? `${rate(view.rate_limit_per_s)} messages/s` : "none"],
    ["As schema version", view.as_version ?? "as written"],
    ["Generation", count(view.generation)],
  ];
  return [h("dl", { class: "facts", id: "definition-members" }, rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])),
    h("details", {}, h("summary", {}, "As JSON"), h("pre", {}, pretty(view)))];
}
