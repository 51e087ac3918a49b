// Sagas, read from their journals (facts in the `Saga.` namespace, as
// docs/api-v1.md "Sagas" defines them): the definitions, an instance's
// steps as a timeline with its state, and the operator's Retry and Abort,
// which write `Saga.RetryRequested` / `Saga.AbortRequested` facts and are
// offered only to identities that may write them, in states where the
// runner would act on them.
import { get, may, post, segment } from "../api.js";
import { h, link, problem, replace, section, table } from "../dom.js";
import { count, pretty, short, time } from "../format.js";
import { every, page } from "../router.js";
import { factLink } from "./facts.js";
import { clipped, logHead, newestPager, tailFacts } from "./collaboration-log.js";

/**
 * The hash of `{"type": "Saga.Registry", "fields": {}, "predecessors": {}}`:
 * BLAKE3 of its canonical form, the same on every store. The browser
 * tests check it against the server.
 */
export const SAGA_REGISTRY_HASH = "9026691e885bb96de8e4e095696faead2bdc8a6c2fb184267149d8fb0f0468ab";
/** Transitions one journal read holds at most (ten pages). */
const JOURNAL_TRANSITIONS_MAX = 10_000;
const JOURNAL_PAGE = 1000;
const ENDS = ["completed", "compensated", "aborted", "failed"];
const BAD_KINDS = ["step_failed", "step_timed_out", "compensation_failed", "failed", "aborted", "compensated"];

/** A predecessor that may be one hash or a set of them, as its first hash. */
const one = (value) => (Array.isArray(value) ? value[0] : value);

/**
 * Reads the successors of `hash` of `type` in `role` after `after`, at most
 * `limit` of them in pages; answers `{facts, next, complete}`.
 */
async function successors(hash, type, role, { after = 0, limit, signal }) {
  const facts = [];
  let next = after;
  while (facts.length < limit) {
    const asked = Math.min(JOURNAL_PAGE, limit - facts.length);
    const answer = await get(`/v1/facts/${hash}/successors`, { type, role, after: next, limit: asked }, { signal });
    facts.push(...answer.facts);
    next = answer.next;
    if (answer.facts.length < asked) return { facts, next, complete: true };
  }
  return { facts, next, complete: false };
}

/**
 * A journal as the docs define it: the chain from the `Saga.Started`, each
 * next transition the lowest-`seq` successor naming the current one as
 * `previous`; the others are superseded.
 */
export function chainOf(startedHash, transitions) {
  const byPrevious = new Map();
  for (const transition of [...transitions].sort((a, b) => a.seq - b.seq)) {
    const previous = one(transition.fact.predecessors.previous);
    if (!byPrevious.has(previous)) byPrevious.set(previous, transition);
  }
  const chain = [];
  const inChain = new Set();
  let current = startedHash;
  while (byPrevious.has(current) && !inChain.has(current)) {
    inChain.add(current);
    const transition = byPrevious.get(current);
    chain.push(transition);
    current = transition.hash;
  }
  const chained = new Set(chain.map((transition) => transition.hash));
  const superseded = transitions.filter((transition) => !chained.has(transition.hash));
  return { chain, superseded };
}

/** A saga's state from its chain and definition, as the docs define it. */
export function stateOf(chain, definition) {
  const last = chain.at(-1)?.fact.fields;
  if (!last) return "running";
  if (ENDS.includes(last.kind)) return last.kind;
  if (chain.some((transition) => ["abort_accepted", "compensation_attempted"].includes(transition.fact.fields.kind))) return "compensating";
  if (last.kind === "step_failed" || last.kind === "step_timed_out") {
    const attemptsMax = definition?.fields?.steps?.[last.step]?.attempts_max;
    const permanent = last.kind === "step_failed" && last.retryable === false;
    if (permanent || (attemptsMax !== undefined && last.attempt >= attemptsMax)) return "compensating";
  }
  return "running";
}

/** A badge for a state. */
export function stateBadge(state) {
  const tone = { completed: "good", running: "", compensating: "warn", compensated: "warn", aborted: "warn", failed: "bad" }[state] ?? "";
  return h("span", { class: `badge ${tone}`, "data-state": state }, state);
}

const definitions = new Map();
/** A definition fact, read once per page load. */
async function definitionOf(hash, signal) {
  if (!definitions.has(hash)) definitions.set(hash, await get(`/v1/facts/${hash}`, {}, { signal }));
  return definitions.get(hash);
}

/** An instance's state, read from its journal (bounded). */
async function instanceState(started, signal) {
  const definition = await definitionOf(one(started.fact.predecessors.definition), signal).catch(() => null);
  const journal = await successors(started.hash, "Saga.Transition", "saga", { limit: JOURNAL_TRANSITIONS_MAX, signal });
  const { chain } = chainOf(started.hash, journal.facts);
  return { definition, chain, state: journal.complete ? stateOf(chain, definition?.fact) : "unknown" };
}

/** Rows of instances: id, definition, state, steps done, last move. */
async function instanceRows(entries, signal) {
  return Promise.all(entries.map(async (started) => {
    let read;
    try {
      read = await instanceState(started, signal);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      return [link(`/ui/sagas/${started.hash}`, clipped(started.fact.fields.id, 80)), "–", problem(error), "–", "–"];
    }
    const last = read.chain.at(-1)?.fact.fields;
    const name = read.definition ? `${read.definition.fact.fields.name} v${read.definition.fact.fields.version}` : "–";
    return [
      link(`/ui/sagas/${started.hash}`, clipped(started.fact.fields.id ?? short(started.hash), 80)),
      name,
      stateBadge(read.state),
      count(read.chain.length),
      last ? `${last.kind}${last.step_name !== undefined ? ` · ${last.step_name}` : ""}` : "started",
    ];
  }));
}

/** The Sagas section of /ui/collaboration: definitions and recent instances. */
export function sagasSection(signal, me) {
  const defined = h("div", { id: "saga-definitions" });
  const more = h("button", { type: "button", class: "quiet" }, "More definitions");
  const status = h("span", { class: "muted" });
  const rows = [];
  let after = 0;
  const loadDefinitions = async () => {
    more.disabled = true;
    try {
      const answer = await get(`/v1/facts/${SAGA_REGISTRY_HASH}/successors`, { type: "Saga.Definition", role: "registry", after, limit: 20 }, { signal });
      for (const entry of answer.facts) {
        const fields = entry.fact.fields;
        rows.push([link(`/ui/sagas/${entry.hash}`, clipped(fields.name, 80)), count(fields.version),
          clipped((fields.steps ?? []).map((step) => step.name).join(" → "), 300), factLink(entry.hash)]);
      }
      more.disabled = answer.facts.length === 0 || answer.next === after;
      after = answer.next;
      replace(defined, table(["Name", "Version", "Steps", "Fact"], rows, { empty: "No saga definitions." }));
      replace(status, `${count(rows.length)} definitions shown, oldest first`);
    } catch (error) {
      if (error.name === "AbortError") return;
      replace(defined, error.status === 403 ? problem({ code: error.code, message: "this identity may not read saga definitions (read on Saga.Definition)" }) : problem(error));
    }
  };
  more.addEventListener("click", loadDefinitions);
  loadDefinitions();

  const recentMessage = h("div");
  const recent = newestPager(["Saga.Started"], {
    want: 10, signal, label: "instances",
    render: async (body, entries) => {
      replace(body, table(["Saga", "Definition", "State", "Transitions", "Last move"], await instanceRows(entries, signal),
        { empty: "No saga instances in the part of the log read." }));
      body.id = "saga-instances";
    },
    onError: (error) => replace(recentMessage, problem(error)),
  });
  // A new instance marks the list stale; the states of the shown ones are
  // read again from their journals every five seconds.
  let stale = false;
  recent.first().then(() => logHead(signal)).then((head) => tailFacts(["Saga.Started"], head, signal, () => { stale = true; }),
    (error) => error.name !== "AbortError" && replace(recentMessage, problem(error)));
  every(5000, signal, async () => {
    if (stale && recent.onFirstPage()) {
      stale = false;
      await recent.reload();
    } else {
      await recent.redraw();
    }
  });
  return section("Sagas",
    h("h3", {}, "Definitions"), defined, h("div", { class: "row" }, more, status),
    h("h3", {}, "Recent instances"),
    may(me.permissions, "read", "Saga.Started") ? h("div", {}, recentMessage, recent.element) : h("p", { class: "muted" }, "This identity may not read Saga.Started."));
}

page("/ui/sagas/:hash", async (main, { hash }, context) => {
  const { signal } = context;
  main.append(h("h1", {}, "Saga"));
  let entry;
  try {
    entry = await get(`/v1/facts/${segment(hash)}`, {}, { signal });
  } catch (error) {
    if (error.name !== "AbortError") main.append(problem(error));
    return;
  }
  if (entry.fact.type === "Saga.Definition") return showDefinition(main, entry, context);
  if (entry.fact.type !== "Saga.Started") {
    main.append(problem({ code: "not_a_saga", message: `this fact is a ${entry.fact.type}, not a Saga.Started or Saga.Definition` }), link(`/ui/facts/${entry.hash}`, "Open the fact"));
    return;
  }
  return showInstance(main, entry, context);
});

function showDefinition(main, entry, { signal }) {
  const fields = entry.fact.fields;
  replace(main.firstChild, "Saga definition ", h("span", { class: "mono" }, fields.name), ` v${fields.version}`);
  main.append(section("Steps", table(["#", "Name", "Attempts at most", "Timeout", "Compensable", "Compensation attempts at most"],
    (fields.steps ?? []).map((step, index) => [count(index), clipped(step.name, 80), count(step.attempts_max),
      step.timeout_ms === undefined ? "–" : `${count(step.timeout_ms)} ms`, step.compensable ? "yes" : "no", count(step.compensation_attempts_max)]))));
  const list = h("div", { id: "definition-instances" });
  const more = h("button", { type: "button", class: "quiet" }, "More");
  const rows = [];
  let after = 0;
  const load = async () => {
    more.disabled = true;
    try {
      const answer = await get(`/v1/facts/${entry.hash}/successors`, { type: "Saga.Started", role: "definition", after, limit: 20 }, { signal });
      rows.push(...await instanceRows(answer.facts, signal));
      more.disabled = answer.facts.length === 0;
      after = answer.next;
      replace(list, table(["Saga", "Definition", "State", "Transitions", "Last move"], rows, { empty: "No instances." }));
    } catch (error) {
      if (error.name !== "AbortError") replace(list, problem(error));
    }
  };
  more.addEventListener("click", load);
  main.append(section("Instances (oldest first)", list, h("div", { class: "row" }, more)), section("Fact", factLink(entry.hash)));
  load();
}

function showInstance(main, started, { signal, me }) {
  const definitionHash = one(started.fact.predecessors.definition);
  replace(main.firstChild, "Saga ", h("span", { class: "mono", id: "saga-id" }, String(started.fact.fields.id ?? "")));
  const about = h("div", { id: "saga-about" });
  const actions = h("div", { id: "saga-actions" });
  const timeline = h("ol", { class: "timeline", id: "saga-timeline" });
  const requests = h("div", { id: "saga-requests" });
  const other = h("div");
  main.append(section("State", about, actions), section("Steps", timeline, other), section("Operator requests", requests),
    section("Input", h("pre", {}, pretty(started.fact.fields.input ?? null))));

  const transitions = [];
  const asked = { retry: [], abort: [] };
  const cursors = { journal: 0, retry: 0, abort: 0 };
  let definition = null;
  let complete = true;
  let shownKey = "";
  const refresh = async () => {
    definition ??= await definitionOf(definitionHash, signal).catch(() => null);
    const journal = await successors(started.hash, "Saga.Transition", "saga", { after: cursors.journal, limit: JOURNAL_TRANSITIONS_MAX - transitions.length, signal });
    transitions.push(...journal.facts);
    cursors.journal = journal.next;
    complete = journal.complete;
    for (const [kind, type] of [["retry", "Saga.RetryRequested"], ["abort", "Saga.AbortRequested"]]) {
      const read = await successors(started.hash, type, "saga", { after: cursors[kind], limit: 100, signal });
      asked[kind].push(...read.facts);
      cursors[kind] = read.next;
    }
    const key = `${transitions.length}/${asked.retry.length}/${asked.abort.length}`;
    if (key === shownKey) return;
    shownKey = key;
    draw();
  };

  const draw = () => {
    const { chain, superseded } = chainOf(started.hash, transitions);
    const state = complete ? stateOf(chain, definition?.fact) : "unknown";
    const name = definition ? `${definition.fact.fields.name} v${definition.fact.fields.version}` : short(definitionHash);
    replace(about, h("dl", { class: "facts" },
      h("dt", {}, "State"), h("dd", { id: "saga-state" }, stateBadge(state)),
      h("dt", {}, "Definition"), h("dd", {}, link(`/ui/sagas/${definitionHash}`, name)),
      h("dt", {}, "Saga (its Saga.Started)"), h("dd", {}, factLink(started.hash)),
      h("dt", {}, "Transitions"), h("dd", {}, `${count(chain.length)} in the journal`,
        superseded.length ? `, ${count(superseded.length)} superseded` : "",
        complete ? "" : ` (only the first ${count(JOURNAL_TRANSITIONS_MAX)} read)`)));
    replace(timeline, chain.length === 0 ? h("li", {}, "Started; no step attempted yet.") : chain.map(transitionItem));
    replace(other, superseded.length ? h("details", {}, h("summary", {}, `${count(superseded.length)} superseded transitions`),
      table(["Kind", "Step", "Attempt", "Fact"], superseded.map((transition) => [transition.fact.fields.kind,
        clipped(transition.fact.fields.step_name ?? "–", 80), count(transition.fact.fields.attempt), factLink(transition.hash)]))) : null);
    const answered = new Set(chain.map((transition) => one(transition.fact.predecessors.request)).filter(Boolean));
    replace(requests, table(["Request", "Reason", "Asked at", "Answered", "Fact"],
      [...asked.retry.map((request) => ["retry", request]), ...asked.abort.map((request) => ["abort", request])]
        .sort((a, b) => a[1].seq - b[1].seq)
        .map(([kind, request]) => [kind, clipped(request.fact.fields.reason, 300), time(request.fact.fields.requested_at_ms),
          answered.has(request.hash) ? "accepted" : "not (yet) accepted", factLink(request.hash)]),
    { empty: "No operator requests." }));
    drawActions(state, chain, answered);
  };

  // What the actions were drawn for: a refresh that allows the same
  // actions keeps the form as it is, with what the person typed in it and
  // the answer to their last request.
  let drawnFor = null;
  let retryAfter = null;
  // The answer to the last request, kept across redraws.
  const message = h("div");
  const drawActions = (state, chain, answered) => {
    const pendingAbort = asked.abort.some((request) => !answered.has(request.hash));
    const canRetry = state === "failed" && may(me.permissions, "write", "Saga.RetryRequested");
    const canAbort = state === "running" && !pendingAbort && may(me.permissions, "write", "Saga.AbortRequested");
    retryAfter = chain.at(-1)?.hash;
    const key = `${canRetry} ${canAbort} ${pendingAbort} ${state}`;
    if (key === drawnFor) return;
    drawnFor = key;
    if (!canRetry && !canAbort) {
      replace(actions, pendingAbort && state === "running" ? h("p", { class: "muted" }, "An abort was asked for; the runner accepts it at the next step boundary.") : null, message);
      return;
    }
    const reason = h("input", { type: "text", name: "reason", size: 40, maxLength: 1000, placeholder: "why (kept in the request fact)", "aria-label": "Reason" });
    const ask = async (type, extra) => {
      for (const button of actions.querySelectorAll("button")) button.disabled = true;
      try {
        const request = {
          type,
          fields: { id: randomId(), reason: reason.value, requested_at_ms: Date.now() },
          predecessors: { saga: started.hash, definition: definitionHash, ...extra },
        };
        const answer = await post("/v1/facts", { facts: [request] }, { signal });
        replace(message, h("p", { class: "muted", id: "saga-asked" }, `${type} written: `, factLink(answer.results[0].hash)));
        await refresh();
      } catch (error) {
        if (error.name !== "AbortError") replace(message, problem(error));
        for (const button of actions.querySelectorAll("button")) button.disabled = false;
      }
    };
    replace(actions,
      h("div", { class: "row" },
        h("label", {}, "Reason ", reason),
        canRetry ? h("button", { type: "button", id: "saga-retry", title: "Ask the runner to go on with fresh compensation attempts",
          onclick: () => ask("Saga.RetryRequested", { after: retryAfter }) }, "Retry") : null,
        canAbort ? h("button", { type: "button", class: "danger", id: "saga-abort", title: "Ask the runner to compensate the completed steps and end the saga",
          onclick: () => { if (confirm("Abort this saga? Its completed steps will be compensated.")) ask("Saga.AbortRequested", {}); } }, "Abort") : null),
      message);
  };

  every(2000, signal, refresh, (error) => replace(about, problem(error)));
}

function transitionItem(transition) {
  const fields = transition.fact.fields;
  const bad = BAD_KINDS.includes(fields.kind);
  return h("li", { class: bad ? "bad" : fields.kind === "completed" || fields.kind === "step_succeeded" ? "self" : null, "data-kind": fields.kind },
    h("div", { class: "row" },
      h("strong", {}, fields.kind),
      fields.step !== undefined ? h("span", {}, `step ${fields.step}`, fields.step_name !== undefined ? " · " : "", fields.step_name !== undefined ? clipped(fields.step_name, 80) : null) : null,
      fields.attempt !== undefined ? h("span", { class: "muted" }, `attempt ${fields.attempt}`) : null,
      fields.at_ms ? h("span", { class: "muted" }, time(fields.at_ms)) : null,
      fields.deadline_ms ? h("span", { class: "muted" }, `deadline ${time(fields.deadline_ms)}`) : null,
      fields.retryable !== undefined ? h("span", { class: "muted" }, fields.retryable ? "retryable" : "permanent") : null,
      factLink(transition.hash)),
    fields.error !== undefined ? h("pre", { class: "saga-error" }, String(fields.error)) : null,
    fields.output !== undefined ? h("details", {}, h("summary", {}, "output"), h("pre", {}, pretty(fields.output))) : null);
}

function randomId() {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}
