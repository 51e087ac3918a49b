-- Replication links (`/v1/links`, postgres/links.rs): each link's
-- definition, whether it is paused, its runner's progress, and which
-- server runs it now. The definition may hold the credentials the link
-- uses at its source; it lives here only. The store interprets neither
-- the definition nor the progress (JSON text, the server's).

CREATE TABLE cairn_links (
    name text PRIMARY KEY,
    definition_json text NOT NULL,
    -- Made when the link is created; a link deleted and made again under
    -- the same name has another, and progress saved for the old one is
    -- refused.
    incarnation text NOT NULL,
    -- 1 at creation, one more at each put that changed the definition.
    generation bigint NOT NULL CHECK (generation >= 1),
    paused boolean NOT NULL DEFAULT false,
    -- NULL until the runner first saves.
    progress_json text,
    -- The server that claimed the link, and until when (the database's
    -- clock); a claim that ran out may be taken by another server.
    runner text,
    runner_until timestamptz,
    CHECK ((runner IS NULL) = (runner_until IS NULL))
);
