// Failures first: the dead letters of every subscription grouped by cause
// (the error text normalised by the server, `GET …/dead/causes`), one row
// per subscription, type and cause, with its count, last death and a
// sample error; each group can be viewed, replayed or discarded as a bulk
// job (failures-job.js). Reading never leases: only dead letters are read.
import "./failures.css";
import "./failures-dead.js";
import { get, may, segment } from "../api.js";
import { h, link, problem, replace, section, table } from "../dom.js";
import { ago, count, time } from "../format.js";
import { every, page } from "../router.js";
import { bulkJob, causeText, countText, deadUrl } from "./failures-job.js";

const REFRESH_MS = 5000;

page("/ui/failures", (main, _params, { me, signal }) => {
  const admin = may(me.permissions, "admin");
  const job = h("div", { id: "job" });
  const groups = h("div", { id: "failure-groups" }, h("p", { class: "muted" }, "Reading dead letters…"));
  const note = h("p", { class: "muted" });
  main.append(h("h1", {}, "Failures"),
    h("p", { class: "muted" }, "Dead letters of every subscription you may consume, grouped by cause: the error text with ids, numbers, hashes and quoted values replaced by placeholders. Refreshed every 5 seconds."),
    job, section("Dead letters by cause", note, groups));
  let current = null;
  const startJob = (options) => {
    if (current?.running()) {
      current.panel.scrollIntoView?.({ block: "nearest" });
      return;
    }
    current = bulkJob(job, { ...options, signal });
  };

  every(REFRESH_MS, signal, async () => {
    const { subscriptions } = await get("/v1/subscriptions", {}, { signal });
    const failing = subscriptions.filter((subscription) => subscription.dead > 0);
    const answers = await Promise.all(failing.map((subscription) =>
      get(`/v1/subscriptions/${segment(subscription.name)}/dead/causes`, {}, { signal })
        .catch((error) => ({ subscription: subscription.name, type: subscription.type, error }))));
    const rows = [];
    const problems = [];
    for (const answer of answers) {
      if (answer.error) {
        problems.push(h("div", {}, `${answer.subscription}: `, problem(answer.error)));
        continue;
      }
      for (const group of answer.causes) rows.push({ ...group, subscription: answer.subscription, type: answer.type, exact: answer.exact });
    }
    rows.sort((a, b) => b.count - a.count || b.last_dead_at_ms - a.last_dead_at_ms);
    replace(note, `${count(subscriptions.length)} subscriptions, ${count(failing.length)} with dead letters, ${count(rows.length)} causes.`);
    replace(groups, problems, table(
      ["Subscription", "Type", "Cause", "Count", "Last dead", "Sample error", "Actions"],
      rows.map((group) => [
        link(`/ui/subscriptions/${segment(group.subscription)}`, group.subscription),
        group.type,
        h("span", { class: "cause" }, causeText(group.cause)),
        h("span", { class: "group-count" }, countText(group.count, group.exact)),
        h("span", { title: time(group.last_dead_at_ms) }, ago(group.last_dead_at_ms)),
        h("span", { class: "error-text" }, group.sample_error ?? "–"),
        h("span", { class: "actions" },
          link(deadUrl(group.subscription, group.cause), "View"),
          admin ? [
            h("button", { type: "button", class: "quiet", "data-job": "replay",
              onclick: () => startJob({ subscription: group.subscription, cause: group.cause, action: "replay", total: group.count, exact: group.exact }) }, "Replay all"),
            h("button", { type: "button", class: "quiet", "data-job": "discard",
              onclick: () => startJob({ subscription: group.subscription, cause: group.cause, action: "discard", total: group.count, exact: group.exact }) }, "Discard all"),
          ] : null),
      ]), { empty: "No dead letters. Nothing has failed for good." }));
  }, (error) => replace(groups, problem(error)));
});
