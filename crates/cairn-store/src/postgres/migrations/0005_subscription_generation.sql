-- A subscription's definition may change in what it delivers (lease,
-- attempts, backoff, key window, rate limit), never in what it selects;
-- each change counts a generation, which clients name in If-Match so that
-- two versions of a service do not overwrite each other's definition
-- blindly. Existing subscriptions are at their first generation. Servers
-- of schema 4 ignore the column and never change a definition.
ALTER TABLE cairn_subscriptions ADD COLUMN generation bigint NOT NULL DEFAULT 1;
