-- Facts, their predecessor edges, and the head of the log.
--
-- Sequence numbers are assigned by cairn_put_facts under the lock on the
-- single cairn_log_head row, held until commit: writers commit one after
-- another in seq order, so every snapshot sees a gap-free prefix of the log
-- and a reader of /v1/log never skips a fact that commits later.

CREATE TABLE cairn_facts (
    seq bigint PRIMARY KEY,
    hash bytea NOT NULL UNIQUE,
    type_name text NOT NULL,
    canonical bytea NOT NULL
);

CREATE INDEX cairn_facts_by_type ON cairn_facts (type_name, seq);

-- One row per (successor, role): the successors index.
CREATE TABLE cairn_predecessors (
    predecessor bytea NOT NULL,
    successor_type text NOT NULL,
    successor_seq bigint NOT NULL,
    role text NOT NULL,
    PRIMARY KEY (predecessor, successor_type, successor_seq, role)
);

CREATE INDEX cairn_predecessors_of_successor ON cairn_predecessors (successor_seq);

CREATE TABLE cairn_log_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_seq bigint NOT NULL
);

INSERT INTO cairn_log_head (singleton, last_seq) VALUES (true, 0);

-- Writes one batch. The caller has removed duplicates (hashes are the
-- batch's distinct facts in order) and lists as `external` the predecessors
-- that are not earlier in the batch. If any of those is not stored, the
-- function writes nothing and returns one row per missing hash (in the
-- order given) with `missing` set. Otherwise it returns one row per fact:
-- its 1-based position, its seq and whether it was new.
CREATE FUNCTION cairn_put_facts(
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
    head bigint;
    new_head bigint;
    stored bigint;
BEGIN
    -- Facts are never removed, so a predecessor found now stays found.
    IF cardinality(external) > 0 THEN
        RETURN QUERY
            SELECT NULL::int, NULL::bigint, NULL::boolean, e.h
            FROM unnest(external) WITH ORDINALITY AS e(h, o)
            WHERE NOT EXISTS (SELECT 1 FROM cairn_facts f WHERE f.hash = e.h)
            ORDER BY e.o;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    -- One fact: simple statements with index lookups, which cost a third
    -- of the general statement below (the latency of single writes).
    IF cardinality(hashes) = 1 THEN
        SELECT f.seq INTO stored FROM cairn_facts f WHERE f.hash = hashes[1];
        IF NOT FOUND THEN
            -- Takes the head lock (see the top of this file); the next
            -- statement sees a concurrent writer of the same fact.
            UPDATE cairn_log_head SET last_seq = last_seq + 1 RETURNING last_seq INTO head;
            SELECT f.seq INTO stored FROM cairn_facts f WHERE f.hash = hashes[1];
        END IF;
        IF stored IS NOT NULL THEN
            IF head IS NOT NULL THEN
                UPDATE cairn_log_head SET last_seq = last_seq - 1;
            END IF;
            RETURN QUERY SELECT 1, stored, false, NULL::bytea;
            RETURN;
        END IF;
        INSERT INTO cairn_facts (seq, hash, type_name, canonical)
            VALUES (head, hashes[1], type_names[1], canonicals[1]);
        INSERT INTO cairn_predecessors (predecessor, successor_type, successor_seq, role)
            SELECT DISTINCT e.p, type_names[1], head, e.r
            FROM unnest(edge_roles, edge_predecessors) AS e(r, p);
        PERFORM pg_notify('cairn_facts', head::text);
        RETURN QUERY SELECT 1, head, true, NULL::bytea;
        RETURN;
    END IF;
    -- Serializes writers until commit (see the top of this file). The
    -- statement below sees the facts committed by earlier writers.
    SELECT h.last_seq INTO head FROM cairn_log_head h FOR UPDATE;
    RETURN QUERY
        WITH batch AS (
            SELECT b.o::int AS position, b.h, b.t, b.c, f.seq AS stored_seq
            FROM unnest(hashes, type_names, canonicals) WITH ORDINALITY AS b(h, t, c, o)
            LEFT JOIN cairn_facts f ON f.hash = b.h
        ),
        fresh AS (
            SELECT batch.position, batch.h, batch.t, batch.c,
                   head + row_number() OVER (ORDER BY batch.position) AS new_seq
            FROM batch WHERE batch.stored_seq IS NULL
        ),
        facts_written AS (
            INSERT INTO cairn_facts (seq, hash, type_name, canonical)
            SELECT fresh.new_seq, fresh.h, fresh.t, fresh.c FROM fresh
        ),
        edges_written AS (
            INSERT INTO cairn_predecessors (predecessor, successor_type, successor_seq, role)
            SELECT DISTINCT e.p, fresh.t, fresh.new_seq, e.r
            FROM unnest(edge_facts, edge_roles, edge_predecessors) AS e(i, r, p)
            JOIN fresh ON fresh.position = e.i
        ),
        head_moved AS (
            UPDATE cairn_log_head SET last_seq = head + (SELECT count(*) FROM fresh)
            WHERE EXISTS (SELECT 1 FROM fresh)
        )
        SELECT batch.position, coalesce(batch.stored_seq, fresh.new_seq),
               batch.stored_seq IS NULL, NULL::bytea
        FROM batch LEFT JOIN fresh ON fresh.position = batch.position
        ORDER BY batch.position;
    SELECT h.last_seq INTO new_head FROM cairn_log_head h;
    IF new_head > head THEN
        PERFORM pg_notify('cairn_facts', new_head::text);
    END IF;
END;
$$;
