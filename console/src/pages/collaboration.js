// Collaboration: durable timers (next due, last fired), sagas (definitions
// and recent instances), and claims and leases (the newest decisions from
// the log, with whether each still holds). Everything is read-only and
// refreshed live; the log is read in bounded windows.
import { ApiError, get, may, segment } from "../api.js";
import { h, link, problem, replace, section, table } from "../dom.js";
import { count, time } from "../format.js";
import { every, page } from "../router.js";
import { factLink } from "./facts.js";
import { clipped, cursorPager, instant, logHead, newestPager, tailFacts } from "./collaboration-log.js";
import { sagasSection } from "./collaboration-sagas.js";
import "./collaboration.css";

const TIMERS_PER_PAGE = 20;
const DECISION_TYPES = ["Cairn.Claimed", "Cairn.ClaimReleased", "Cairn.LeaseGranted", "Cairn.LeaseReleased"];

page("/ui/collaboration", (main, _params, { signal, me }) => {
  main.append(h("h1", {}, "Collaboration"), timersSection(signal), sagasSection(signal, me), decisionsSection(signal, me));
});

function timersSection(signal) {
  const message = h("div");
  const pager = cursorPager(async (after) => {
    const answer = await get("/v1/timers", { after, limit: TIMERS_PER_PAGE }, { signal });
    replace(message);
    return { rows: answer.timers, next: answer.next };
  }, (body, timers) => {
    body.id = "timers";
    replace(body, table(["Name", "Schedule", "Writes", "Next due", "Last fired", "State"], timers.map(timerRow),
      { empty: "No timers this identity may read." }));
  }, (error) => replace(message, problem(error)));
  every(2000, signal, pager.reload);
  return section("Timers", h("p", { class: "muted" }, "By name, refreshed every two seconds. Times in this browser's time zone."), message, pager.element);
}

function timerRow(timer) {
  const schedule = timer.at ? h("span", {}, "once at ", instant(timer.at))
    : h("span", {}, h("code", {}, timer.cron), " ", h("span", { class: "muted" }, timer.timezone), timer.catch_up ? h("span", { class: "muted" }, ` · catch up ${timer.catch_up}`) : null);
  let state;
  if (timer.last_error) state = h("div", {}, h("span", { class: "badge bad" }, "failing"), " ", h("span", { class: "timer-error" }, clipped(timer.last_error, 300)));
  else if (!timer.next_due) state = h("span", { class: "badge" }, "done");
  else state = h("span", { class: "badge good" }, "scheduled");
  return [h("span", { class: "mono" }, clipped(timer.name, 128)), schedule, timer.fact?.type ?? "–", instant(timer.next_due), instant(timer.last_fired), state];
}

function decisionsSection(signal, me) {
  const claims = may(me.permissions, "read", "Cairn.Claimed") ? decisionList("Cairn.Claimed", "claims", claimRows, signal) : null;
  const leases = may(me.permissions, "read", "Cairn.LeaseGranted") ? decisionList("Cairn.LeaseGranted", "lease grants", leaseRows, signal) : null;
  const live = h("span", { class: "muted" });
  if (claims || leases) {
    // New decisions mark the lists stale; they are read again at most
    // every two seconds, however fast decisions arrive.
    let stale = false;
    logHead(signal).then((head) => {
      replace(live, "live");
      tailFacts(DECISION_TYPES, head, signal, () => { stale = true; }, (error) => replace(live, problem(error)));
    }, (error) => error.name !== "AbortError" && replace(live, problem(error)));
    // Whether each shown claim and lease still holds changes without a fact
    // (a lease expires), so the rows shown are checked again now and then.
    let tick = 0;
    every(2000, signal, async () => {
      tick += 1;
      const reread = stale;
      stale = false;
      for (const list of [claims, leases]) {
        if (!list) continue;
        if (reread && list.pager.onFirstPage()) await list.pager.reload();
        else if (tick % 3 === 0) await list.pager.redraw();
      }
    });
  }
  return section("Claims and leases",
    h("p", { class: "muted" }, "The newest decisions in the log (Cairn.Claimed, Cairn.LeaseGranted), and whether each still holds. ", live),
    h("h3", {}, "Claims"), claims?.element ?? h("p", { class: "muted" }, "This identity may not read Cairn.Claimed."),
    h("h3", {}, "Leases"), leases?.element ?? h("p", { class: "muted" }, "This identity may not read Cairn.LeaseGranted."));
}

function decisionList(type, label, rows, signal) {
  const message = h("div");
  const pager = newestPager([type], {
    want: 10, signal, label,
    render: async (body, entries) => {
      body.id = type === "Cairn.Claimed" ? "claims" : "leases";
      const drawn = await rows(entries, signal);
      replace(body, drawn);
      replace(message);
    },
    onError: (error) => replace(message, problem(error)),
  });
  pager.first();
  return { pager, element: h("div", {}, message, pager.element) };
}

/** The current answer of a GET, or null for 404 (nothing holds it). */
async function current(path, signal) {
  try {
    return await get(path, {}, { signal });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

async function claimRows(entries, signal) {
  const rows = await Promise.all(entries.map(async (entry) => {
    const fields = entry.fact.fields;
    const holder = await current(`/v1/claims/${segment(fields.key)}`, signal);
    let now;
    if (!holder) now = h("span", { class: "badge" }, "released");
    else if (holder.claimed === entry.hash) now = h("span", { class: "badge good" }, "held");
    else now = h("span", { class: "badge warn", title: holder.claimed }, `superseded (generation ${count(holder.generation)})`);
    return [h("span", { class: "mono claim-key" }, clipped(fields.key, 200)), count(fields.generation),
      factLink(entry.fact.predecessors.fact), h("span", { class: "mono", title: fields.deployment }, clipped(fields.deployment, 8)),
      link(`/ui/facts/${entry.hash}`, count(entry.seq)), now];
  }));
  return table(["Key", "Generation", "Winner (holder)", "Deployment", "Seq", "Now"], rows, { empty: "No claims in the part of the log read." });
}

async function leaseRows(entries, signal) {
  const rows = await Promise.all(entries.map(async (entry) => {
    const fields = entry.fact.fields;
    const grant = await current(`/v1/leases/${segment(fields.name)}`, signal);
    let now;
    let expires = "–";
    if (!grant) now = h("span", { class: "badge" }, "unknown");
    else if (grant.fence !== fields.fence) now = h("span", { class: "badge warn" }, `superseded by fence ${count(grant.fence)}`);
    else {
      expires = time(grant.expires_at_ms);
      if (grant.released) now = h("span", { class: "badge" }, "released");
      else if (grant.expires_at_ms > Date.now()) now = h("span", { class: "badge good" }, "held");
      else now = h("span", { class: "badge warn", title: "expired; still current until another holder acquires it" }, "expired");
    }
    return [h("span", { class: "mono" }, clipped(fields.name, 128)), clipped(fields.holder, 200), count(fields.fence),
      `${count(fields.ttl_ms)} ms`, expires, link(`/ui/facts/${entry.hash}`, count(entry.seq)), now];
  }));
  return table(["Name", "Holder", "Fence", "TTL", "Expires", "Seq", "Now"], rows, { empty: "No lease grants in the part of the log read." });
}

