-- Identities, their access tokens, the audit trail and the authorship of
-- facts (the persistence behind `--auth`). A token is kept as its id and
-- the BLAKE3 hash of its secret, never the secret.

CREATE TABLE cairn_identities (
    name text PRIMARY KEY,
    -- cairn_api::Permissions as JSON text; the store does not interpret it.
    permissions_json text NOT NULL,
    rate_per_s integer,
    write_rate_per_s integer,
    created_at_ms bigint NOT NULL
);

CREATE TABLE cairn_access_tokens (
    id text PRIMARY KEY,
    identity text NOT NULL REFERENCES cairn_identities (name) ON DELETE CASCADE,
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at_ms bigint NOT NULL,
    expires_at_ms bigint,
    last_used_at_ms bigint
);

CREATE INDEX cairn_access_tokens_of_identity ON cairn_access_tokens (identity);

-- Moved, under the row's lock, in the transaction of every change to
-- identities or tokens (not of token uses): servers poll it and reload
-- when it moves. The lock also makes identity changes one at a time.
CREATE TABLE cairn_identity_revision (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    revision bigint NOT NULL
);

INSERT INTO cairn_identity_revision (singleton, revision) VALUES (true, 0);

CREATE TABLE cairn_audit (
    seq bigserial PRIMARY KEY,
    at_ms bigint NOT NULL,
    identity text NOT NULL,
    method text NOT NULL,
    route text NOT NULL,
    outcome text NOT NULL,
    status integer NOT NULL,
    count bigint NOT NULL,
    detail text NOT NULL
);

-- Who wrote the facts that identities wrote. The facts one batch stores
-- get consecutive seqs, so their first author costs one row per batch:
-- a range of seqs (one per run of consecutive seqs, to be safe).
CREATE TABLE cairn_author_ranges (
    first_seq bigint PRIMARY KEY,
    last_seq bigint NOT NULL,
    author text NOT NULL
);

-- A fact written again by other identities: its first author and, at most
-- `again_max`, the others in order. Written in the transaction of the
-- facts.
CREATE TABLE cairn_fact_authors (
    hash bytea PRIMARY KEY,
    first_author text NOT NULL,
    again text[] NOT NULL DEFAULT '{}'
);

-- The first author of the fact at `at_seq`, if an identity stored it.
CREATE FUNCTION cairn_first_author(at_seq bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN r.last_seq >= at_seq THEN r.author END
    FROM (SELECT last_seq, author FROM cairn_author_ranges
          WHERE first_seq <= at_seq ORDER BY first_seq DESC LIMIT 1) r
$$;

-- cairn_put_facts, and the authorship of `author`: one range for the facts
-- the batch stores, and `author` appended to the list of each fact stored
-- before by another identity, when it is new there and the list holds
-- fewer than `again_max`. A batch with missing predecessors writes nothing
-- here either. Returns what cairn_put_facts returns.
CREATE FUNCTION cairn_put_facts_by(
    author text,
    again_max int,
    hashes bytea[],
    type_names text[],
    canonicals bytea[],
    external bytea[],
    edge_facts int[],
    edge_roles text[],
    edge_predecessors bytea[]
) RETURNS TABLE (ord int, fact_seq bigint, inserted boolean, missing bytea)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    ords int[];
    seqs bigint[];
    inserteds boolean[];
    missings bytea[];
BEGIN
    SELECT array_agg(r.ord ORDER BY r.n), array_agg(r.fact_seq ORDER BY r.n),
           array_agg(r.inserted ORDER BY r.n), array_agg(r.missing ORDER BY r.n)
        INTO ords, seqs, inserteds, missings
        FROM cairn_put_facts(hashes, type_names, canonicals, external,
                             edge_facts, edge_roles, edge_predecessors)
             WITH ORDINALITY AS r(ord, fact_seq, inserted, missing, n);
    IF missings[1] IS NULL THEN
        INSERT INTO cairn_author_ranges (first_seq, last_seq, author)
            SELECT min(runs.s), max(runs.s), cairn_put_facts_by.author
            FROM (SELECT o.s, o.s - row_number() OVER (ORDER BY o.s) AS run
                  FROM unnest(seqs, inserteds) AS o(s, fresh)
                  WHERE o.fresh) runs
            GROUP BY runs.run;
        -- The row lock of ON CONFLICT makes a concurrent writer of the same
        -- fact re-check the conditions on the updated row.
        INSERT INTO cairn_fact_authors AS a (hash, first_author, again)
            SELECT DISTINCT ON (w.h) w.h, w.f, ARRAY[cairn_put_facts_by.author]
            FROM (SELECT hashes[o.position] AS h, cairn_first_author(o.s) AS f
                  FROM unnest(ords, seqs, inserteds) AS o(position, s, fresh)
                  WHERE NOT o.fresh) w
            WHERE w.f IS NOT NULL AND w.f <> cairn_put_facts_by.author
            ON CONFLICT (hash) DO UPDATE SET again = a.again || cairn_put_facts_by.author
                WHERE a.first_author <> cairn_put_facts_by.author
                  AND NOT (cairn_put_facts_by.author = ANY (a.again))
                  AND cardinality(a.again) < again_max;
    END IF;
    RETURN QUERY
        SELECT u.o, u.s, u.i, u.m FROM unnest(ords, seqs, inserteds, missings) AS u(o, s, i, m);
END;
$$;
