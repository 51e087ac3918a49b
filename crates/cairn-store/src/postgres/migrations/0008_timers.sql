-- Durable timers (`/v1/timers`): each timer's definition and where its
-- schedule stands. Times are ms since the Unix epoch, judged by the
-- database's clock. Migration 7 is the lead's (claims and leases).

CREATE TABLE cairn_timers (
    name text PRIMARY KEY,
    -- The definition as JSON text; the store does not interpret it.
    definition_json text NOT NULL,
    -- 1 at creation, one more at each PUT that changed the definition.
    generation bigint NOT NULL CHECK (generation >= 1),
    -- The occurrence to fire next; NULL once none is left.
    next_due_ms bigint,
    -- When a scheduler looks at the timer next (a claim moves it on).
    attempt_at_ms bigint,
    last_fired_ms bigint,
    last_error text
);

-- Due timers are read from the start of this index, so a scheduler never
-- reads the timers that are not due.
CREATE INDEX cairn_timers_by_attempt ON cairn_timers (attempt_at_ms)
    WHERE attempt_at_ms IS NOT NULL;
