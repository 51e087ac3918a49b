// Test helper (not a test file): dead letters made through the API, as a
// consumer makes them — pull every message and nack it with an error text,
// on a subscription whose max_attempts is 1.
import { fact, writeFacts } from "./harness.mjs";

/** Creates subscription `name` over `type` with max_attempts 1 (and `extra` members). */
export async function subscribe(server, name, type, extra = {}, options) {
  return server.api("PUT", `/v1/subscriptions/${name}`, { type, max_attempts: 1, ...extra }, options);
}

/**
 * Writes one fact of `type` for each text of `errors` and makes each a dead
 * letter of `subscription` whose last error is that text (null: none);
 * answers the hashes.
 */
export async function makeDeadLetters(server, subscription, type, errors, options) {
  const tag = `${Date.now()}-${Math.random()}`;
  const hashes = await writeFacts(server, errors.map((_, index) => fact(type, { index, tag })), options);
  const pending = new Map(hashes.map((hash, index) => [hash, errors[index]]));
  while (pending.size > 0) {
    const { messages } = await server.api("POST", `/v1/subscriptions/${subscription}/pull`, { max: 1000, wait_ms: 2000 }, options);
    for (const message of messages) {
      if (!pending.has(message.hash)) continue;
      const error = pending.get(message.hash);
      await server.api("POST", `/v1/subscriptions/${subscription}/nack`, { tokens: [message.token], error }, options);
      pending.delete(message.hash);
    }
  }
  return hashes;
}
