// The server: health, version, store size, writes and fsyncs per second,
// facts per fsync, and request latency by route — read from `/metrics`
// every two seconds, as a scraper would.
import { get } from "../api.js";
import { h, problem, replace, section, table } from "../dom.js";
import { bytes, count, rate } from "../format.js";
import { every, page } from "../router.js";
import { latencyByRoute, parseMetrics, value } from "../metrics.js";
import { LiveChart } from "../chart.js";

page("/ui/server", (main, _params, { signal }) => {
  const about = h("div");
  const numbers = h("div", { class: "grid" });
  const routes = h("div");
  const writes = new LiveChart("Facts written per second", ["facts/s"]);
  const syncs = new LiveChart("Fsyncs per second", ["fsyncs/s"]);
  main.append(h("h1", {}, "Server"), section("Health", about), numbers,
    h("div", { class: "grid" }, section("Writes", writes.element), section("Fsyncs", syncs.element)),
    section("Request latency by route (since start)", routes));
  let previous = null;
  every(2000, signal, async () => {
    const [health, versions] = await Promise.all([get("/v1/health", {}, { signal }), get("/versions", {}, { signal })]);
    replace(about, h("dl", { class: "facts" },
      h("dt", {}, "Status"), h("dd", {}, h("span", { class: `badge ${health.status === "ok" ? "good" : "bad"}`, id: "health" }, health.status)),
      h("dt", {}, "Version"), h("dd", {}, versions.server),
      h("dt", {}, "API versions"), h("dd", {}, versions.api.join(", "))));
    let samples;
    try {
      samples = parseMetrics(await get("/metrics", {}, { signal }));
    } catch (error) {
      if (error.status === 403) {
        replace(numbers, problem({ code: error.code, message: "this identity may not read /metrics (permission metrics)" }));
        return;
      }
      throw error;
    }
    const now = performance.now();
    const reading = {
      at: now,
      facts: value(samples, "cairn_facts_written_total"),
      fsyncs: value(samples, "cairn_fsyncs_total"),
    };
    let factsPerSecond = 0;
    let fsyncsPerSecond = 0;
    let factsPerFsync = null;
    if (previous) {
      const seconds = (now - previous.at) / 1000;
      factsPerSecond = (reading.facts - previous.facts) / seconds;
      fsyncsPerSecond = (reading.fsyncs - previous.fsyncs) / seconds;
      const fsyncs = reading.fsyncs - previous.fsyncs;
      factsPerFsync = fsyncs > 0 ? (reading.facts - previous.facts) / fsyncs : null;
      writes.push([factsPerSecond]);
      syncs.push([fsyncsPerSecond]);
    }
    previous = reading;
    const totalFacts = reading.fsyncs > 0 ? reading.facts / reading.fsyncs : null;
    replace(numbers,
      tile("Facts in the log", count(value(samples, "cairn_store_last_seq")), "exact: the last seq of this store's log"),
      tile("Store size on disk", bytes(value(samples, "cairn_store_disk_bytes")), "as the store reports it"),
      tile("Writes per second", rate(factsPerSecond), "new facts, over the last two seconds"),
      tile("Fsyncs per second", rate(fsyncsPerSecond), "durable commits"),
      tile("Facts per fsync", factsPerFsync === null ? "–" : rate(factsPerFsync),
        totalFacts === null ? "group commit, last two seconds" : `group commit; ${rate(totalFacts)} since start`),
      tile("Store", value(samples, "cairn_store_poisoned") ? "refusing writes" : "accepting writes",
        "a store refuses writes after a storage failure, until restart"));
    replace(routes, table(["Method", "Route", "Requests", "p50 ≤", "p99 ≤"],
      latencyByRoute(samples, "cairn_http_request_duration_seconds").slice(0, 40).map((route) => [
        route.labels.method, h("span", { class: "mono" }, route.labels.route), count(route.count),
        seconds(route.p50), seconds(route.p99)])));
  }, (error) => replace(about, problem(error)));
});

function tile(title, number, note) {
  return h("section", { class: "card" }, h("h2", {}, title), h("div", { class: "big" }, number), h("p", { class: "muted" }, note));
}

const seconds = (value) => (value === Infinity ? "> 60 s" : value < 1 ? `${value * 1000} ms` : `${value} s`);
