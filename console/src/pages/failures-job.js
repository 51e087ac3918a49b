// A bulk job over dead letters: replay or discard every dead letter of one
// cause (or of a whole subscription) in batches, with a visible panel —
// batch size, rate limit, progress, counts, errors and a Stop button —
// instead of one request that takes minutes without feedback. Each batch
// reads the first page again (handled letters leave the list), acts on it
// and waits long enough to honour the rate; the job ends on an empty page,
// on Stop, or when the person leaves the page.
import { del, get, post, segment } from "../api.js";
import { h, problem, replace } from "../dom.js";
import { count } from "../format.js";
import { sleep } from "../router.js";

export const BATCH_DEFAULT = 100;
export const BATCH_MAX = 1000;
export const RATE_DEFAULT_PER_S = 200;
const DISCARDS_AT_ONCE = 4;

/** How a cause is shown: its text, or a note when the letters had none. */
export const causeText = (cause) => (cause === "" ? "(no error text)" : cause);

/** "12" or "≥ 12, estimated", from a count and whether it is exact. */
export const countText = (value, exact) => (exact ? `${count(value)} exact` : `≥ ${count(value)}, estimated`);

/** The console's URL of a subscription's dead letters of one cause. */
export const deadUrl = (subscription, cause) =>
  `/ui/subscriptions/${segment(subscription)}/dead${cause === undefined ? "" : `?cause=${encodeURIComponent(cause)}`}`;

/** The path of a subscription's dead letters, with `?cause=` when one is given ("" included). */
export function deadPath(subscription, cause) {
  const path = `/v1/subscriptions/${segment(subscription)}/dead`;
  return cause === undefined || cause === null ? path : `${path}?cause=${encodeURIComponent(cause)}`;
}

/**
 * Shows a job panel in `container`. `action` is "replay" or "discard";
 * `cause` undefined means every dead letter of `subscription`; `total` and
 * `exact` say how many the job expects. `onEnd` runs when the job ends.
 * Answers `{panel, running(), stop()}`.
 */
export function bulkJob(container, { subscription, cause, action, total, exact = true, signal, onEnd = () => {} }) {
  const verb = action === "replay" ? "Replay" : "Discard";
  const done_word = action === "replay" ? "replayed" : "discarded";
  const batch = h("input", { type: "number", name: "batch", min: 1, max: BATCH_MAX, value: BATCH_DEFAULT, required: true });
  const rate = h("input", { type: "number", name: "rate", min: 1, value: RATE_DEFAULT_PER_S, required: true });
  const start = h("button", { type: "submit", class: action === "discard" ? "danger" : null }, `Start: ${verb.toLowerCase()}`);
  const stop = h("button", { type: "button", class: "quiet", disabled: true }, "Stop");
  const close = h("button", { type: "button", class: "quiet" }, "Close");
  const bar = h("progress", { class: "progress", max: Math.max(total, 1), value: 0 });
  const status = h("p", { class: "job-status", role: "status" }, "Not started.");
  const errors = h("div", { class: "job-errors" });
  const scope = cause === undefined ? "every dead letter" : `the dead letters of cause “${cause || "(no error text)"}”`;
  const form = h("form", { class: "row" },
    h("label", {}, "Batch size ", batch), h("label", {}, "Rate limit (messages/s) ", rate), start, stop, close);
  const panel = h("section", { class: "card job", "data-action": action, "aria-label": `${verb} job` },
    h("h2", {}, `${verb} ${scope} of ${subscription}`),
    h("p", { class: "muted" }, `About ${exact ? "" : "≥ "}${count(total)} ${exact ? "" : "(estimated) "}dead letters; the job works in batches and can be stopped between them.`),
    form, bar, status, errors);
  replace(container, panel);
  panel.scrollIntoView?.({ block: "nearest" });

  const stopper = new AbortController();
  signal?.addEventListener("abort", () => stopper.abort(), { once: true });
  stop.addEventListener("click", () => {
    stop.disabled = true;
    stopper.abort();
  });
  close.addEventListener("click", () => {
    stopper.abort();
    container.replaceChildren();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const size = Number(batch.value);
    const perSecond = Number(rate.value);
    if (!Number.isInteger(size) || size < 1 || size > BATCH_MAX || !(perSecond > 0)) {
      replace(errors, problem({ code: "invalid_parameter", message: `batch size is 1 to ${BATCH_MAX}, the rate limit above 0` }));
      return;
    }
    batch.disabled = rate.disabled = start.disabled = true;
    stop.disabled = false;
    running = true;
    run(size, perSecond).finally(() => {
      running = false;
      onEnd();
    });
  });

  let running = false;
  const tally = { done: 0, failed: 0, batches: 0 };
  const show = (state) => {
    bar.max = Math.max(total, tally.done, 1);
    bar.value = tally.done;
    const of = tally.done > total ? "" : ` of ${exact ? "" : "≥ "}${count(total)}${exact ? "" : " (estimated)"}`;
    replace(status, h("span", { class: "job-state" }, state), ": ",
      h("span", { class: "job-done" }, count(tally.done)), `${of} ${done_word}`,
      `, ${count(tally.failed)} errors, ${count(tally.batches)} batches`);
  };

  async function run(size, perSecond) {
    const seen = new Set();
    let after = 0;
    show("running");
    while (!stopper.signal.aborted) {
      const started = performance.now();
      let page;
      try {
        page = await get(deadPath(subscription, cause), { limit: size, after }, { signal: stopper.signal });
      } catch (error) {
        if (error.name === "AbortError") break;
        tally.failed += 1;
        replace(errors, problem(error));
        show("failed");
        return;
      }
      // A replayed letter that died again comes back with the same hash:
      // it is skipped (and paged past), so the job always ends.
      const hashes = page.messages.map((message) => message.hash).filter((hash) => !seen.has(hash));
      if (page.messages.length === 0) break;
      if (hashes.length === 0) {
        after = page.next;
        continue;
      }
      for (const hash of hashes) seen.add(hash);
      try {
        if (action === "replay") {
          const answer = await post(`/v1/subscriptions/${segment(subscription)}/dead/replay`, { hashes });
          tally.done += answer.replayed;
          tally.failed += hashes.length - answer.replayed;
        } else {
          await discard(hashes);
        }
      } catch (error) {
        tally.failed += hashes.length;
        replace(errors, problem(error));
      }
      tally.batches += 1;
      show("running");
      const wait_ms = (hashes.length / perSecond) * 1000 - (performance.now() - started);
      if (wait_ms > 0) await sleep(wait_ms, stopper.signal);
    }
    stop.disabled = true;
    show(stopper.signal.aborted ? "stopped" : "finished");
    panel.dataset.state = stopper.signal.aborted ? "stopped" : "finished";
  }

  async function discard(hashes) {
    for (let index = 0; index < hashes.length; index += DISCARDS_AT_ONCE) {
      const group = hashes.slice(index, index + DISCARDS_AT_ONCE);
      const answers = await Promise.allSettled(group.map((hash) =>
        del(`/v1/subscriptions/${segment(subscription)}/dead/${hash}`)));
      for (const answer of answers) {
        if (answer.status === "fulfilled") tally.done += 1;
        else {
          tally.failed += 1;
          replace(errors, problem(answer.reason));
        }
      }
    }
  }
  return { panel, running: () => running, stop: () => stopper.abort() };
}
