-- Claim batches (postgres/claim_batcher.rs): a server decides many claims
-- and releases at once, in memory, on the records it read, and applies
-- the decisions with one call of cairn_apply_claims, which commits with
-- the statement. Nothing crosses the network while the log head's lock is
-- held (cairn_put_facts takes it; the statement's commit releases it).
--
-- The call locks the row of every key of the batch in key order (making
-- the rows that are missing), so two servers applying batches on the same
-- keys cannot deadlock, and the head's row last. If any key's record is
-- no longer the one the decisions were made on (`expected`, as read; NULL
-- for none), another server decided in between: nothing is written and
-- one row with `conflict` set is returned, and the server decides again
-- on fresh records. Otherwise the decisions' facts are written with
-- cairn_put_facts and the changed records stored, the seqs of the facts
-- written filled in (the records hold 0 for them, and name by position in
-- `hashes` the fact whose seq is the holder's `claimed_seq` and the
-- release's `released_seq`, 0 for none); one row per fact is returned:
-- its 1-based position and its seq. The facts' predecessors were checked
-- by the caller; one missing (a bug) raises an error and writes nothing.
--
-- `SET enable_seqscan = off`: the function's plans are cached for the
-- connection, made from the statistics of the moment, and a table that was
-- small then (every table of a new deployment) gets a plan that scans it
-- whole — on every call, as it grows, until the next ANALYZE. Every lookup
-- here is by key, so the index is always the right plan. `SET jit = off`:
-- a plan that must still scan (the one-row log head) then costs more than
-- the JIT threshold, and compiling it would take longer than running it
-- (seen: 50-700 ms per call).
CREATE FUNCTION cairn_apply_claims(
    keys text[],
    expected text[],
    changed_keys text[],
    records text[],
    claimed_ords int[],
    released_ords int[],
    hashes bytea[],
    type_names text[],
    canonicals bytea[],
    external bytea[],
    edge_facts int[],
    edge_roles text[],
    edge_predecessors bytea[]
) RETURNS TABLE (ord int, fact_seq bigint, conflict boolean)
LANGUAGE plpgsql
SET enable_seqscan = off
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    n_stale bigint;
    n_missing bigint;
    seqs bigint[];
BEGIN
    INSERT INTO cairn_claims (key)
        SELECT k.key FROM unnest(keys) AS k(key) ORDER BY k.key
        ON CONFLICT DO NOTHING;
    -- Locks in key order; a row another transaction holds is waited for
    -- and then read as that transaction left it.
    SELECT count(*) INTO n_stale
    FROM (SELECT c.key, c.record FROM cairn_claims c
          WHERE c.key = ANY (keys) ORDER BY c.key FOR UPDATE) AS locked
    JOIN unnest(keys, expected) AS e(key, record) ON e.key = locked.key
    WHERE locked.record IS DISTINCT FROM e.record;
    IF n_stale > 0 THEN
        RETURN QUERY SELECT NULL::int, NULL::bigint, true;
        RETURN;
    END IF;
    SELECT array_agg(p.fact_seq ORDER BY p.ord), count(p.missing)
        INTO seqs, n_missing
    FROM cairn_put_facts(hashes, type_names, canonicals, external,
                         edge_facts, edge_roles, edge_predecessors) AS p;
    IF n_missing > 0 THEN
        RAISE EXCEPTION 'cairn_apply_claims: % claimed fact(s) are not stored', n_missing;
    END IF;
    UPDATE cairn_claims AS c
    SET record = (CASE WHEN f.released_ord > 0
                       THEN jsonb_set(f.filled, '{released,released_seq}',
                                      to_jsonb(seqs[f.released_ord]))
                       ELSE f.filled END)::text
    FROM (SELECT u.key, u.released_ord,
                 CASE WHEN u.claimed_ord > 0
                      THEN jsonb_set(u.record::jsonb, '{holder,claimed_seq}',
                                     to_jsonb(seqs[u.claimed_ord]))
                      ELSE u.record::jsonb END AS filled
          FROM unnest(changed_keys, records, claimed_ords, released_ords)
               AS u(key, record, claimed_ord, released_ord)) AS f
    WHERE c.key = f.key;
    RETURN QUERY
        SELECT s.o::int, s.seq, false
        FROM unnest(seqs) WITH ORDINALITY AS s(seq, o);
END;
$$;

-- cairn_put_facts (migration 1) looks facts up by hash in a join and an
-- anti-join, planned once per connection: planned while cairn_facts was
-- small, both scan the whole table on every call of a batch of more than
-- one fact (seen: 3-5 ms per batch of ~30 claims after a few seconds of a
-- new deployment). Lookups by hash belong to the index at any size; JIT
-- is off for the reason given above.
ALTER FUNCTION cairn_put_facts(bytea[], text[], bytea[], bytea[], int[], text[], bytea[])
    SET enable_seqscan = off;
ALTER FUNCTION cairn_put_facts(bytea[], text[], bytea[], bytea[], int[], text[], bytea[])
    SET jit = off;
