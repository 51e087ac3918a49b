// Reading the log for the collaboration and system pages: the newest facts
// of some types (the log only reads forward, so it is read backwards in
// bounded windows), a live tail of new ones, and a pager for lists that
// the API pages by cursor. Every read is bounded, so a store of ten
// million facts costs a page of requests, never a scan of the log.
import { get } from "../api.js";
import { h, replace, table } from "../dom.js";
import { count } from "../format.js";
import { sleep } from "../router.js";

/** Log entries one backward window examines (one request). */
export const WINDOW_FACTS = 5000;
/** Windows one search reads at most before it stops and says how far it got. */
export const WINDOWS_PER_SEARCH_MAX = 20;
const TAIL_WAIT_MS = 20_000;

/** The last `seq` of the log. */
export async function logHead(signal) {
  return (await get("/v1/log", { after: 0, limit: 1 }, { signal })).head;
}

/**
 * The newest facts of `types` below `before` (a seq; the head + 1 for the
 * newest), newest first, at most `want`. Answers `{facts, before, done}`:
 * `before` is where the next (older) search starts, `done` whether the
 * whole log below it was read.
 */
export async function newestFacts(types, { before, want, signal }) {
  let upper = before;
  const found = [];
  for (let window = 0; window < WINDOWS_PER_SEARCH_MAX && upper > 1 && found.length < want; window += 1) {
    const lower = Math.max(0, upper - 1 - WINDOW_FACTS);
    const answer = await get("/v1/log", { after: lower, limit: upper - 1 - lower, types }, { signal });
    found.push(...answer.facts.reverse());
    upper = lower + 1;
  }
  if (found.length > want) {
    const kept = found.slice(0, want);
    return { facts: kept, before: kept.at(-1).seq, done: false };
  }
  return { facts: found, before: upper, done: upper <= 1 };
}

/**
 * Follows the log after `after` for facts of `types`, calling
 * `onFacts(entries)` with each page, until `signal` aborts. Long-polls, so
 * a new fact shows within moments; reading never changes anything.
 */
export async function tailFacts(types, after, signal, onFacts, onError = () => {}) {
  while (!signal.aborted) {
    try {
      const answer = await get("/v1/log", { after, limit: 1000, wait_ms: TAIL_WAIT_MS, types }, { signal });
      if (answer.facts.length > 0) onFacts(answer.facts);
      after = answer.next;
    } catch (error) {
      if (error.name === "AbortError" || signal.aborted) return;
      onError(error);
      await sleep(2000, signal);
    }
  }
}

/**
 * A list read newest first from the log, a page at a time: `render(entries)`
 * draws the page's rows. Answers `{element, reload}`.
 */
export function newestPager(types, { want = 10, signal, render, label, onError = () => {} }) {
  const status = h("span", { class: "muted" });
  const body = h("div");
  const newer = h("button", { type: "button", class: "quiet" }, "Newest");
  const older = h("button", { type: "button", class: "quiet" }, "Older");
  let start = null; // null: the newest page
  let next = null;
  let shown = [];
  const show = async (before) => {
    older.disabled = true;
    try {
      const head = await logHead(signal);
      const from = before ?? head + 1;
      const answer = await newestFacts(types, { before: from, want, signal });
      start = before ?? null;
      next = answer.before;
      shown = answer.facts;
      await render(body, shown);
      older.disabled = answer.done;
      newer.disabled = before === null || before === undefined;
      const read = from - answer.before;
      replace(status, `${count(answer.facts.length)} ${label} shown, newest first; read log entries ${count(answer.before)} to ${count(from - 1)} of ${count(head)}`
        + (answer.done ? " (the whole log below)" : read >= WINDOW_FACTS * WINDOWS_PER_SEARCH_MAX ? " (search bounded: Older reads on)" : ""));
    } catch (error) {
      if (error.name !== "AbortError") onError(error);
    }
  };
  newer.addEventListener("click", () => show(null));
  older.addEventListener("click", () => show(next));
  return {
    element: h("div", {}, body, h("div", { class: "row" }, newer, older, status)),
    reload: () => show(start),
    first: () => show(null),
    onFirstPage: () => newer.disabled,
    /** Draws the rows shown again (their live state), without reading the log. */
    redraw: async () => {
      try {
        await render(body, shown);
      } catch (error) {
        if (error.name !== "AbortError") onError(error);
      }
    },
  };
}

/**
 * A pager over a list the API pages with an opaque cursor: `load(cursor)`
 * answers `{rows, next}` (`next` null at the end). Keeps the cursors of the
 * pages before, so Previous works; `reload()` reads the current page again.
 */
export function cursorPager(load, render, onError = () => {}) {
  const cursors = [undefined];
  let position = 0;
  let following = null;
  const previous = h("button", { type: "button", class: "quiet" }, "Previous");
  const nextButton = h("button", { type: "button", class: "quiet" }, "Next");
  const status = h("span", { class: "muted" });
  const body = h("div");
  const show = async () => {
    try {
      const answer = await load(cursors[position]);
      following = answer.next ?? null;
      await render(body, answer.rows);
      previous.disabled = position === 0;
      nextButton.disabled = following === null;
      replace(status, `page ${position + 1}`);
    } catch (error) {
      if (error.name !== "AbortError") onError(error);
    }
  };
  previous.addEventListener("click", () => { position = Math.max(0, position - 1); show(); });
  nextButton.addEventListener("click", () => {
    if (following === null) return;
    cursors[position + 1] = following;
    position += 1;
    show();
  });
  return { element: h("div", {}, body, h("div", { class: "row" }, previous, nextButton, status)), reload: show };
}

/** A text cut to `length` characters, whole in its title. */
export function clipped(text, length = 200) {
  const value = String(text ?? "");
  return h("span", { title: value.length > length ? value : null }, value.length > length ? `${value.slice(0, length)}…` : value);
}

/** An RFC 3339 time from the API, in the browser's time zone. */
export function instant(text) {
  if (!text) return "–";
  const ms = Date.parse(text);
  return h("time", { datetime: text, title: text }, Number.isNaN(ms) ? text : new Date(ms).toLocaleString(undefined, { hour12: false }));
}

/**
 * A table over rows already in memory (lists the API answers whole but
 * bounds: at most 256 links, 1,000 services), `per_page` rows at a time.
 * `update(rows)` replaces the rows and keeps the page where it can.
 */
export function localPager(headers, { perPage = 50, empty, id } = {}) {
  let rows = [];
  let position = 0;
  const body = h("div", { id });
  const previous = h("button", { type: "button", class: "quiet" }, "Previous");
  const next = h("button", { type: "button", class: "quiet" }, "Next");
  const status = h("span", { class: "muted" });
  const controls = h("div", { class: "row" }, previous, next, status);
  const draw = () => {
    const pages = Math.max(1, Math.ceil(rows.length / perPage));
    position = Math.min(position, pages - 1);
    replace(body, table(headers, rows.slice(position * perPage, (position + 1) * perPage), { empty }));
    previous.disabled = position === 0;
    next.disabled = position >= pages - 1;
    controls.hidden = pages === 1;
    replace(status, `${count(rows.length)} in all; page ${position + 1} of ${pages}`);
  };
  previous.addEventListener("click", () => { position -= 1; draw(); });
  next.addEventListener("click", () => { position += 1; draw(); });
  return { element: h("div", {}, body, controls), update: (newRows) => { rows = newRows; draw(); } };
}
