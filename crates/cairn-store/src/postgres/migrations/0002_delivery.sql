-- Delivery state shared by every server: one row per subscription and one
-- per message a subscription tracks (pending, dead or discarded).
-- Acknowledged messages have no row. Servers coordinate only through these
-- rows: leases are taken with FOR UPDATE SKIP LOCKED, so two servers never
-- lease one message at once, and admission of new facts takes the
-- subscription row's lock (SKIP LOCKED: one server admits at a time).

CREATE TABLE cairn_subscriptions (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    -- The validated definition with defaults, as JSON.
    definition text NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    -- Every matching fact with seq <= cursor_seq has a message row or was
    -- acknowledged; facts above it are new to the subscription.
    cursor_seq bigint NOT NULL,
    created_at_ms bigint NOT NULL,
    -- Token bucket of rate_limit_per_s (thousandths of a message).
    rate_milli_tokens bigint,
    rate_refilled_at_ms bigint
);

CREATE TABLE cairn_messages (
    subscription_id bigint NOT NULL REFERENCES cairn_subscriptions (id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    -- 0 pending, 1 dead letter, 2 discarded dead letter.
    status smallint NOT NULL,
    ordering_key bytea,
    attempts integer NOT NULL DEFAULT 0,
    -- Not delivered before this time (ms since the Unix epoch).
    available_at_ms bigint NOT NULL,
    -- The last lease's id (kept after it ends: an ack with it is still
    -- accepted until the message is leased again) and, while leased, its end.
    lease_id bigint,
    leased_until_ms bigint,
    first_delivered_at_ms bigint,
    last_error text,
    dead_at_ms bigint,
    PRIMARY KEY (subscription_id, seq)
);

-- What a lease scans: pending messages not leased now, in seq order, so
-- that leased rows and the dead tuples acks leave behind are not walked
-- over by every pull.
CREATE INDEX cairn_messages_ready ON cairn_messages (subscription_id, seq)
    WHERE status = 0 AND leased_until_ms IS NULL;
-- Dead letters by hash (dead/{hash}, replay, discard); pending rows, the
-- churn of every delivery, stay out of it.
CREATE INDEX cairn_messages_by_hash ON cairn_messages (subscription_id, hash)
    WHERE status <> 0;
CREATE INDEX cairn_messages_by_status ON cairn_messages (subscription_id, status, seq)
    WHERE status <> 0;
CREATE INDEX cairn_messages_leased ON cairn_messages (subscription_id, leased_until_ms)
    WHERE leased_until_ms IS NOT NULL;
CREATE INDEX cairn_messages_by_key ON cairn_messages (subscription_id, ordering_key, seq)
    WHERE status = 0 AND ordering_key IS NOT NULL;

-- The time base of delivery state: the database's clock, so that servers
-- with skewed clocks agree on leases and delays.
CREATE FUNCTION cairn_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint
$$;

-- Exponential backoff with equal jitter, as cairn-delivery's Backoff: the
-- ceiling doubles from initial_ms with each failed attempt up to max_ms,
-- and the delay is drawn uniformly from [ceiling / 2, ceiling].
CREATE FUNCTION cairn_backoff_ms(initial_ms bigint, max_ms bigint, failed_attempts integer)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT c / 2 + floor(random() * (c - c / 2 + 1))::bigint
    FROM (SELECT least(max_ms::float8,
                       initial_ms::float8 * power(2::float8, greatest(failed_attempts - 1, 0)))::bigint
          AS c) ceiling
$$;
