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
 * The facts around `hash`: everything reachable in up to `depth` steps
 * along predecessors and successors (so the other branches of a process
 * are found through a shared ancestor), at most `factsMax` in all. Each
 * entry is the stored fact with `relation` — "self", "ancestor" (reached
 * through predecessors only), "descendant" (through successors only) or
 * "related" — and `distance`, in log order.
 */
export async function neighbourhood(hash, { depth = 3, factsMax = 120, signal } = {}) {
  const self = await readFact(hash, signal);
  if (!self) return { facts: [], complete: true };
  const seen = new Map([[hash, { ...self, relation: "self", distance: 0 }]]);
  let complete = true;
  let frontier = [seen.get(hash)];
  const relationOf = (from, edge) => {
    if ((from.relation === "self" || from.relation === "ancestor") && edge === "predecessor") return "ancestor";
    if ((from.relation === "self" || from.relation === "descendant") && edge === "successor") return "descendant";
    return "related";
  };
  for (let step = 1; step <= depth && frontier.length > 0; step += 1) {
    const next = [];
    for (const from of frontier) {
      const { successors, complete: all } = await successorsOf(from.hash, { limit: 30, signal });
      complete &&= all;
      const neighbours = [
        ...predecessorsOf(from.fact).map(({ hash: predecessor }) => ({ hash: predecessor, edge: "predecessor" })),
        ...successors.map((successor) => ({ hash: successor.hash, stored: successor, edge: "successor" })),
      ];
      for (const neighbour of neighbours) {
        if (seen.has(neighbour.hash)) continue;
        if (seen.size >= factsMax) {
          complete = false;
          break;
        }
        const stored = neighbour.stored ?? (await readFact(neighbour.hash, signal));
        if (!stored) continue;
        const entry = { ...stored, relation: relationOf(from, neighbour.edge), distance: step };
        seen.set(neighbour.hash, entry);
        next.push(entry);
      }
    }
    frontier = next;
  }
  const facts = [...seen.values()].sort((a, b) => a.seq - b.seq);
  return { facts, complete };
}
