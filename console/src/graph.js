// Walking the graph of facts: a fact's predecessors are in the fact
// itself; its successors are found per type (`successor-types`, then
// `successors`). Every walk is bounded in depth and in facts read.
import { get } from "./api.js";

/** The (role, hash) pairs a fact names as predecessors. */
export function predecessorsOf(fact) {
  return Object.entries(fact.predecessors ?? {}).flatMap(([role, value]) =>
    [value].flat().map((hash) => ({ role, hash })));
}

/** A fact by hash, or null if it is not stored (or not readable). */
export async function readFact(hash, signal) {
  try {
    return await get(`/v1/facts/${hash}`, {}, { signal });
  } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
}

/**
 * Up to `limit` successors of `hash`, of every type, each with the role by
 * which it names `hash`; `complete` says whether that is all of them.
 */
export async function successorsOf(hash, { limit = 50, perType = 20, signal } = {}) {
  const { types, complete: allTypes } = await get(`/v1/facts/${hash}/successor-types`, {}, { signal });
  const found = [];
  let complete = allTypes;
  for (const type of types) {
    if (found.length >= limit) {
      complete = false;
      break;
    }
    const answer = await get(`/v1/facts/${hash}/successors`, { type, limit: perType }, { signal });
    for (const entry of answer.facts) {
      const role = predecessorsOf(entry.fact).find((pair) => pair.hash === hash)?.role;
      found.push({ ...entry, role });
    }
    if (answer.facts.length === perType) complete = false;
  }
  return { successors: found.slice(0, limit), complete: complete && found.length <= limit };
}

/**
 * The facts around `hash`: ancestors and descendants up to `depth` steps,
 * at most `factsMax` in all. Each entry is the stored fact with `relation`
 * ("ancestor", "self", "descendant") and `distance`.
 */
export async function neighbourhood(hash, { depth = 3, factsMax = 120, signal } = {}) {
  const seen = new Map();
  const self = await readFact(hash, signal);
  if (!self) return { facts: [], complete: true };
  seen.set(hash, { ...self, relation: "self", distance: 0 });
  let complete = true;
  let frontier = [self];
  for (let step = 1; step <= depth && frontier.length > 0; step += 1) {
    const next = [];
    for (const stored of frontier) {
      for (const { hash: predecessor } of predecessorsOf(stored.fact)) {
        if (seen.has(predecessor)) continue;
        if (seen.size >= factsMax) { complete = false; break; }
        const fact = await readFact(predecessor, signal);
        if (!fact) continue;
        const entry = { ...fact, relation: "ancestor", distance: step };
        seen.set(predecessor, entry);
        next.push(entry);
      }
    }
    frontier = next;
  }
  frontier = [seen.get(hash)];
  for (let step = 1; step <= depth && frontier.length > 0; step += 1) {
    const next = [];
    for (const stored of frontier) {
      if (seen.size >= factsMax) { complete = false; break; }
      const { successors, complete: all } = await successorsOf(stored.hash, { limit: 30, signal });
      complete &&= all;
      for (const successor of successors) {
        if (seen.has(successor.hash)) continue;
        if (seen.size >= factsMax) { complete = false; break; }
        const entry = { ...successor, relation: "descendant", distance: step };
        seen.set(successor.hash, entry);
        next.push(entry);
      }
    }
    frontier = next;
  }
  const facts = [...seen.values()].sort((a, b) => a.seq - b.seq);
  return { facts, complete };
}
