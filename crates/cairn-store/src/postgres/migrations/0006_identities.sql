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

-- Who wrote each fact that an identity wrote: the first author and, at
-- most `again_max`, the others in order. Written in the transaction of
-- the facts.
CREATE TABLE cairn_fact_authors (
    hash bytea PRIMARY KEY,
    first_author text NOT NULL,
    again text[] NOT NULL DEFAULT '{}'
);

-- cairn_put_facts, and the authorship of `author`: the first author of
-- each fact the batch stores, and `author` appended to the list of each
-- fact stored before that has a record, names it neither first nor again
-- and lists fewer than `again_max`. A batch with missing predecessors
-- writes nothing here either. Returns what cairn_put_facts returns.
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
        INSERT INTO cairn_fact_authors (hash, first_author)
            SELECT hashes[o.position], author
            FROM unnest(ords, inserteds) AS o(position, fresh)
            WHERE o.fresh;
        -- The row lock makes a concurrent writer of the same fact
        -- re-check the conditions on the updated row.
        UPDATE cairn_fact_authors a SET again = a.again || author
            WHERE a.hash IN (SELECT hashes[o.position]
                             FROM unnest(ords, inserteds) AS o(position, fresh)
                             WHERE NOT o.fresh)
              AND a.first_author <> author
              AND NOT (author = ANY (a.again))
              AND cardinality(a.again) < again_max;
    END IF;
    RETURN QUERY
        SELECT u.o, u.s, u.i, u.m FROM unnest(ords, seqs, inserteds, missings) AS u(o, s, i, m);
END;
$$;
