// One subscription's dead letters: a paged list (filtered by `?cause=`)
// with attempts and last error per row, checkboxes to replay or discard a
// selection, bulk jobs for all of them, and the page of one dead letter
// (its fact, attempts, last error, time of death) with replay and discard.
// Listing dead letters never leases a message.
import { del, get, may, post, segment } from "../api.js";
import { h, link, problem, replace, section, table } from "../dom.js";
import { count, pretty, short, time } from "../format.js";
import { go, page } from "../router.js";
import { bulkJob, causeText, deadPath, deadUrl } from "./failures-job.js";

const PAGE_SIZE = 50;

page("/ui/subscriptions/:name/dead", async (main, { name }, { me, query, signal }) => {
  const admin = may(me.permissions, "admin");
  const cause = query.has("cause") ? query.get("cause") : undefined;
  const job = h("div", { id: "job" });
  const list = h("div", { id: "dead-list" }, h("p", { class: "muted" }, "Reading dead letters…"));
  const message = h("div", { class: "selection-result", role: "status" });
  const causes = h("div", { id: "dead-causes" });
  main.append(
    h("h1", {}, "Dead letters of ", link(`/ui/subscriptions/${segment(name)}`, name)),
    h("p", {}, cause === undefined ? "All causes. " : ["Cause: ", h("span", { class: "cause", id: "cause-filter" }, causeText(cause)), " — ", link(deadUrl(name), "all causes")]),
    job, section("Dead letters", message, list), section("Causes", causes));

  let current = null;
  const startJob = (action, total, exact) => {
    if (current?.running()) return;
    current = bulkJob(job, { subscription: name, cause, action, total, exact, signal, onEnd: () => load(after) });
  };

  // The cursor of each page shown, so "Previous" can go back.
  const cursors = [];
  let after = 0;
  const load = async (from) => {
    after = from;
    let answer;
    try {
      answer = await get(deadPath(name, cause), { limit: PAGE_SIZE, after: from }, { signal });
    } catch (error) {
      if (error.name !== "AbortError") replace(list, problem(error));
      return;
    }
    const boxes = [];
    const rows = answer.messages.map((letter) => {
      const box = h("input", { type: "checkbox", value: letter.hash, "aria-label": `Select ${letter.hash}` });
      boxes.push(box);
      return [
        box,
        h("a", { href: `/ui/subscriptions/${segment(name)}/dead/${letter.hash}`, "data-route": "", title: letter.hash, class: "mono" }, short(letter.hash)),
        h("span", { class: "number" }, count(letter.attempts)),
        h("span", { class: "error-text" }, letter.last_error ?? "–"),
        time(letter.dead_at_ms),
      ];
    });
    const all = h("input", { type: "checkbox", "aria-label": "Select this page", class: "select-page",
      onchange: () => boxes.forEach((box) => { box.checked = all.checked; }) });
    const selected = () => boxes.filter((box) => box.checked).map((box) => box.value);
    const act = async (action) => {
      const hashes = selected();
      if (hashes.length === 0) {
        replace(message, problem({ code: "nothing_selected", message: "select dead letters first" }));
        return;
      }
      try {
        if (action === "replay") {
          const { replayed } = await post(`/v1/subscriptions/${segment(name)}/dead/replay`, { hashes });
          replace(message, `${count(replayed)} replayed.`);
        } else {
          const answers = await Promise.allSettled(hashes.map((hash) => del(`/v1/subscriptions/${segment(name)}/dead/${hash}`)));
          const failed = answers.filter((answer) => answer.status === "rejected");
          replace(message, `${count(hashes.length - failed.length)} discarded.`, failed.length ? problem(failed[0].reason) : null);
        }
      } catch (error) {
        replace(message, problem(error));
      }
      load(after);
    };
    const previous = h("button", { type: "button", class: "quiet", disabled: cursors.length === 0,
      onclick: () => load(cursors.pop()) }, "Previous");
    const next = h("button", { type: "button", class: "quiet", disabled: answer.messages.length < PAGE_SIZE,
      onclick: () => { cursors.push(from); load(answer.next); } }, "Next");
    replace(list,
      admin && answer.messages.length ? h("div", { class: "row" },
        h("label", {}, all, "Select this page"),
        h("button", { type: "button", id: "replay-selected", onclick: () => act("replay") }, "Replay selected"),
        h("button", { type: "button", id: "discard-selected", class: "danger", onclick: () => act("discard") }, "Discard selected")) : null,
      table(admin ? ["", "Hash", "Attempts", "Last error", "Dead since"] : ["Hash", "Attempts", "Last error", "Dead since"],
        admin ? rows : rows.map((row) => row.slice(1)), { empty: "No dead letters here." }),
      h("div", { class: "row" }, previous, next, h("span", { class: "muted" }, `${count(answer.messages.length)} on this page`)));
  };
  await load(0);

  try {
    const grouped = await get(`/v1/subscriptions/${segment(name)}/dead/causes`, {}, { signal });
    const total = cause === undefined
      ? grouped.causes.reduce((sum, group) => sum + group.count, 0)
      : grouped.causes.find((group) => group.cause === cause)?.count ?? 0;
    replace(causes,
      table(["Cause", "Count", "Last dead"], grouped.causes.map((group) => [
        link(deadUrl(name, group.cause), causeText(group.cause)),
        grouped.exact ? count(group.count) : `≥ ${count(group.count)}`,
        time(group.last_dead_at_ms)]), { empty: "No dead letters." }),
      grouped.exact ? null : h("p", { class: "muted" }, `Estimated: ${count(grouped.examined)} dead letters examined.`),
      admin && total > 0 ? h("div", { class: "row" },
        h("button", { type: "button", class: "quiet", "data-job": "replay", onclick: () => startJob("replay", total, grouped.exact) },
          cause === undefined ? "Replay all dead letters…" : "Replay all of this cause…"),
        h("button", { type: "button", class: "quiet", "data-job": "discard", onclick: () => startJob("discard", total, grouped.exact) },
          cause === undefined ? "Discard all dead letters…" : "Discard all of this cause…")) : null);
  } catch (error) {
    if (error.name !== "AbortError") replace(causes, problem(error));
  }
});

page("/ui/subscriptions/:name/dead/:hash", async (main, { name, hash }, { me, signal }) => {
  const admin = may(me.permissions, "admin");
  main.append(h("h1", {}, "Dead letter ", h("span", { class: "mono" }, short(hash))),
    h("p", {}, "Of ", link(`/ui/subscriptions/${segment(name)}`, name), " — ", link(deadUrl(name), "all its dead letters")));
  let letter;
  try {
    letter = await get(`/v1/subscriptions/${segment(name)}/dead/${segment(hash)}`, {}, { signal });
  } catch (error) {
    if (error.name !== "AbortError") main.append(problem(error));
    return;
  }
  const result = h("div", { role: "status", id: "letter-result" });
  const buttons = admin ? h("div", { class: "row" },
    h("button", { type: "button", id: "replay-letter", onclick: async () => {
      try {
        const { replayed } = await post(`/v1/subscriptions/${segment(name)}/dead/replay`, { hashes: [hash] });
        replace(buttons, replayed ? "Replayed: it is delivered again, with fresh attempts. " : "Not replayed (no longer a dead letter). ",
          link(`/ui/subscriptions/${segment(name)}`, "Back to the subscription"));
      } catch (error) {
        replace(result, problem(error));
      }
    } }, "Replay"),
    h("button", { type: "button", id: "discard-letter", class: "danger", onclick: () => {
      replace(result, h("div", { class: "row confirm" }, "Discard this dead letter? It stays recorded as discarded. ",
        h("button", { type: "button", class: "danger", id: "confirm-discard", onclick: async () => {
          try {
            await del(`/v1/subscriptions/${segment(name)}/dead/${segment(hash)}`);
            go(deadUrl(name));
          } catch (error) {
            replace(result, problem(error));
          }
        } }, "Yes, discard"),
        h("button", { type: "button", class: "quiet", onclick: () => result.replaceChildren() }, "Cancel")));
    } }, "Discard")) : null;
  main.append(
    section("Failure",
      h("dl", { class: "facts" },
        h("dt", {}, "Fact"), h("dd", { class: "mono" }, link(`/ui/facts/${letter.hash}`, letter.hash)),
        h("dt", {}, "Type"), h("dd", {}, letter.fact?.type ?? "–"),
        h("dt", {}, "Seq"), h("dd", {}, count(letter.seq)),
        h("dt", {}, "Attempts"), h("dd", { id: "letter-attempts" }, count(letter.attempts)),
        h("dt", {}, "Dead since"), h("dd", {}, time(letter.dead_at_ms)),
        h("dt", {}, "Cause"), h("dd", {}, letter.cause === undefined ? "–" : link(deadUrl(name, letter.cause), causeText(letter.cause))),
        h("dt", {}, "Last error"), h("dd", {}, h("pre", { id: "letter-error", class: "error-text" }, letter.last_error ?? "(none)"))),
      buttons, result),
    section("Fields", h("pre", { id: "letter-fields" }, pretty(letter.fact?.fields ?? {}))));
});
