-- Tickets: batches insert their facts concurrently; only publishing them
-- (moving the head of the log) is serialized.
--
-- Until migration 13 a writer took the cairn_log_head row first and held it
-- through its inserts and its commit, so every batch's inserts ran one
-- after another. Now a writer:
--
-- 1. reserves, in a short step under the session advisory lock
--    (reserve_class, -1), the next ticket (cairn_log_tickets) and a block
--    of provisional seqs, one per fact it has not found stored
--    (cairn_log_reserved, the last seq reserved), and takes the
--    transaction-level advisory lock (ticket_class, ticket) before letting
--    the next writer reserve; sequences are not transactional, so nothing
--    here waits for a commit;
-- 2. inserts its facts with their provisional seqs, concurrently with the
--    other writers (ON CONFLICT (hash) DO NOTHING: a fact a concurrent
--    writer committed first is skipped, and its seq is that writer's);
-- 3. waits until the previous ticket's transaction has ended (its ticket
--    lock), takes the cairn_log_head row and holds it until commit, and
--    numbers the facts it inserted head + 1 .. head + m, in block order.
--    When the block starts right after the head and no fact was skipped
--    (the usual case) the provisional seqs are already those; otherwise
--    (a skipped fact, or an earlier block left unused by a writer that
--    aborted or found everything stored) it renumbers its own rows, which
--    no other transaction can see yet;
-- 4. moves the head to head + m, notifies, and commits.
--
-- Why the log stays dense, gap-free and visible in seq order: seqs become
-- final only in step 3, under the head's row lock held until commit, from
-- head + 1 upwards, exactly as before migration 13; a reserved block never
-- becomes a seq by itself, so an unused or half-used block leaves no gap.
-- Every snapshot therefore sees a gap-free prefix of the log, and a reader
-- paging by seq never skips a fact that commits later.
--
-- Given back: a block left partly unused would put every later block
-- above the head for good (and make every later writer renumber). So a
-- publisher gives back (cairn_log_give_back, under the reservation lock)
-- its unused slots, and those below its block that nobody gave back (a
-- transaction that ended early: its shift minus what was given back since
-- its reservation); the next blocks are reserved that much lower. Such a
-- block may overlap the provisional tail of a block reserved before the
-- give-back and not yet published; that one publishes at least that much
-- lower (the slots given back are below it), so an insert meeting its row
-- waits for its commit (its row is renumbered away then; or the wait runs
-- out and the writer gives way, below) and never conflicts with a final
-- seq.
--
-- Why provisional seqs never collide with final ones: every block lies
-- above the head when reserved, and a publisher's final seqs, head + 1 ..
-- head + m, end at or below its own block's end minus every slot left
-- unused below its block (all of which have ended by then); in that range
-- there are only its own rows and rows of ended transactions (committed
-- with final seqs at most the head, or rolled back), because every earlier
-- ticket has ended. Blocks overlap only through a give-back, as above.
--
-- Waits and cycles: ticket waits point to earlier tickets. A writer's
-- insert waits for a concurrent writer of the same fact, possibly a later
-- ticket (which waits for it: a cycle). That wait is bounded by
-- lock_timeout (insert_lock_timeout, 200 ms); on timeout the writer rolls its
-- inserts back, waits for its own previous ticket (so ticket order is kept)
-- and fails with serialization_failure (40001), which callers retry; the
-- later writer publishes the fact. If a transaction ends without waiting
-- for its previous ticket (a statement timeout, a lost connection), a later
-- publisher may meet rows of a still running earlier one: PostgreSQL's
-- deadlock detection (40P01) or a unique violation ends one of them, and
-- the caller retries; no seq is published either way.
--
-- Crash at each step: before step 4's commit nothing of the batch is
-- visible and its block is simply unused (the next publisher numbers from
-- the head); sequences survive crashes at least as far as every committed
-- transaction's WAL (a commit flushes the reservations before it), and a
-- reservation starts above the head in any case.
--
-- One publishing call per transaction: a second call would wait for
-- tickets taken after the first, which wait for this transaction.
-- Callers that need facts and other changes atomically make one call.

CREATE SEQUENCE cairn_log_tickets;
CREATE SEQUENCE cairn_log_reserved MINVALUE 0 START 0;
SELECT setval('cairn_log_reserved', (SELECT last_seq FROM cairn_log_head), false);
CREATE SEQUENCE cairn_log_given_back MINVALUE 0 START 0;

-- Gives back `slots` reserved seqs no fact will take: the next blocks are
-- reserved that much lower (see "Given back" above).
CREATE FUNCTION cairn_log_give_back(slots bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_lock(1129468980, -1);
    PERFORM setval('cairn_log_reserved', (SELECT last_value FROM cairn_log_reserved) - slots);
    PERFORM setval('cairn_log_given_back', (SELECT last_value FROM cairn_log_given_back) + slots);
    PERFORM pg_advisory_unlock(1129468980, -1);
EXCEPTION WHEN OTHERS OR query_canceled THEN
    PERFORM pg_advisory_unlock(1129468980, -1);
    RAISE;
END;
$$;

-- Same contract as migration 1's cairn_put_facts.
CREATE OR REPLACE FUNCTION cairn_put_facts(
    hashes bytea[],
    type_names text[],
    canonicals bytea[],
    external bytea[],
    edge_facts int[],
    edge_roles text[],
    edge_predecessors bytea[]
) RETURNS TABLE (ord int, fact_seq bigint, inserted boolean, missing bytea)
LANGUAGE plpgsql
SET enable_seqscan = off
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    -- Advisory lock classes (two-key form: distinct from one-key locks).
    reserve_class constant int := 1129468980;
    ticket_class constant int := 1129468981;
    insert_lock_timeout constant text := '200ms';
    n int;
    ticket bigint;
    start bigint;
    head bigint;
    got bigint[];
    m int;
    seqs bigint[];
    fresh int[];
    renumbered boolean := false;
    given_back_before bigint;
    give_back bigint;
    saved_lock_timeout text;
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
    -- The facts not stored yet (a stored fact stays stored: its answer
    -- is final).
    IF cardinality(hashes) = 1 THEN
        SELECT f.seq INTO head FROM cairn_facts f WHERE f.hash = hashes[1];
        IF FOUND THEN
            RETURN QUERY SELECT 1, head, false, NULL::bytea;
            RETURN;
        END IF;
        n := 1;
    ELSE
        -- One lookup per fact: the seqs of those stored (NULL for the
        -- others) and the positions of the others, in batch order.
        SELECT array_agg(f.seq ORDER BY b.o),
               coalesce(array_agg(b.o::int ORDER BY b.o) FILTER (WHERE f.seq IS NULL), '{}')
            INTO seqs, fresh
        FROM unnest(hashes) WITH ORDINALITY AS b(h, o)
        LEFT JOIN cairn_facts f ON f.hash = b.h;
        n := cardinality(fresh);
        IF n = 0 THEN
            RETURN QUERY
                SELECT a.o::int, a.s, false, NULL::bytea
                FROM unnest(seqs) WITH ORDINALITY AS a(s, o)
                ORDER BY a.o;
            RETURN;
        END IF;
    END IF;
    IF coalesce(current_setting('cairn.ticket', true), '') <> '' THEN
        RAISE EXCEPTION 'cairn_put_facts: one publishing call per transaction';
    END IF;

    -- 1. The ticket and the block (the session lock is released on error).
    BEGIN
        PERFORM pg_advisory_lock(reserve_class, -1);
        ticket := nextval('cairn_log_tickets');
        PERFORM pg_advisory_xact_lock(ticket_class, (ticket % 2147483647)::int);
        SELECT greatest(r.last_value, h.last_seq) + 1, g.last_value INTO start, given_back_before
        FROM cairn_log_reserved r, cairn_log_head h, cairn_log_given_back g;
        PERFORM setval('cairn_log_reserved', start + n - 1);
        PERFORM pg_advisory_unlock(reserve_class, -1);
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock(reserve_class, -1);
        RAISE;
    END;
    PERFORM set_config('cairn.ticket', ticket::text, true);

    -- 2. The inserts, concurrent with other writers'.
    saved_lock_timeout := current_setting('lock_timeout');
    BEGIN
        PERFORM set_config('lock_timeout', insert_lock_timeout, true);
        IF cardinality(hashes) = 1 THEN
            INSERT INTO cairn_facts (seq, hash, type_name, canonical)
                VALUES (start, hashes[1], type_names[1], canonicals[1])
                ON CONFLICT (hash) DO NOTHING;
            IF FOUND THEN
                got := ARRAY[start];
                INSERT INTO cairn_predecessors (predecessor, successor_type, successor_seq, role)
                    SELECT DISTINCT e.p, type_names[1], start, e.r
                    FROM unnest(edge_roles, edge_predecessors) AS e(r, p);
            ELSE
                got := '{}';
            END IF;
        ELSE
            WITH written AS (
                INSERT INTO cairn_facts (seq, hash, type_name, canonical)
                SELECT start - 1 + x.k, hashes[x.p], type_names[x.p], canonicals[x.p]
                FROM unnest(fresh) WITH ORDINALITY AS x(p, k)
                ORDER BY x.k
                ON CONFLICT (hash) DO NOTHING
                RETURNING seq
            )
            SELECT coalesce(array_agg(written.seq ORDER BY written.seq), '{}') INTO got
            FROM written;
            IF cardinality(got) > 0 THEN
                INSERT INTO cairn_predecessors (predecessor, successor_type, successor_seq, role)
                    SELECT DISTINCT e.p, type_names[e.i], g.s, e.r
                    FROM unnest(got) AS g(s)
                    JOIN unnest(edge_facts, edge_roles, edge_predecessors) AS e(i, r, p)
                      ON e.i = fresh[(g.s - start + 1)::int];
            END IF;
        END IF;
        PERFORM set_config('lock_timeout', saved_lock_timeout, true);
    EXCEPTION WHEN lock_not_available THEN
        -- Waited for a concurrent writer of the same fact, maybe a later
        -- ticket waiting for this one: give way, keeping ticket order.
        PERFORM set_config('lock_timeout', saved_lock_timeout, true);
        PERFORM pg_advisory_xact_lock_shared(ticket_class, ((ticket - 1) % 2147483647)::int);
        SELECT h.last_seq INTO head FROM cairn_log_head h;
        give_back := greatest(start - 1 - head
                              - ((SELECT g.last_value FROM cairn_log_given_back g) - given_back_before), 0)
                     + n;
        PERFORM cairn_log_give_back(give_back);
        RAISE EXCEPTION 'cairn_put_facts: a concurrent writer of the same fact'
            USING ERRCODE = 'serialization_failure';
    END;
    m := cardinality(got);
    -- Some facts were committed by concurrent writers meanwhile (rare):
    -- every fact's seq again, provisional for those inserted here (at
    -- least `start`; every other one was committed below it), looked up
    -- before the head is taken.
    IF cardinality(hashes) > 1 AND m < n THEN
        SELECT array_agg(f.seq ORDER BY b.o) INTO seqs
        FROM unnest(hashes) WITH ORDINALITY AS b(h, o)
        JOIN cairn_facts f ON f.hash = b.h;
    END IF;

    -- 3. Publish, in ticket order.
    PERFORM pg_advisory_xact_lock_shared(ticket_class, ((ticket - 1) % 2147483647)::int);
    IF m > 0 THEN
        SELECT h.last_seq INTO head FROM cairn_log_head h FOR UPDATE;
    ELSE
        -- Stable: later tickets wait for this one.
        SELECT h.last_seq INTO head FROM cairn_log_head h;
    END IF;
    -- Given back: the slots below this block that no one gave back (a
    -- transaction that ended early), and this block's unused ones.
    give_back := greatest(start - 1 - head
                          - ((SELECT g.last_value FROM cairn_log_given_back g) - given_back_before), 0)
                 + (n - m);
    IF give_back > 0 THEN
        PERFORM cairn_log_give_back(give_back);
    END IF;
    IF m > 0 THEN
        renumbered := head <> start - 1 OR got[m] <> start + m - 1;
        IF renumbered THEN
            -- Renumber this transaction's rows to head + 1 .. head + m,
            -- through negative seqs (no transient unique conflicts).
            UPDATE cairn_facts SET seq = -seq WHERE seq = ANY (got);
            UPDATE cairn_predecessors SET successor_seq = -successor_seq
                WHERE successor_seq = ANY (got);
            UPDATE cairn_facts f SET seq = head + r.k
                FROM unnest(got) WITH ORDINALITY AS r(s, k)
                WHERE f.seq = -r.s;
            UPDATE cairn_predecessors p SET successor_seq = head + r.k
                FROM unnest(got) WITH ORDINALITY AS r(s, k)
                WHERE p.successor_seq = -r.s;
        END IF;
        UPDATE cairn_log_head SET last_seq = head + m;
        PERFORM pg_notify('cairn_facts', (head + m)::text);
    END IF;

    -- 4. The answers: every fact is stored now, by this call or another.
    IF cardinality(hashes) = 1 THEN
        IF m = 1 THEN
            RETURN QUERY SELECT 1, head + 1, true, NULL::bytea;
        ELSE
            RETURN QUERY SELECT 1, f.seq, false, NULL::bytea
                FROM cairn_facts f WHERE f.hash = hashes[1];
        END IF;
        RETURN;
    END IF;
    IF m = n THEN
        -- Every fresh fact inserted here: the k-th of them is head + k.
        RETURN QUERY
            SELECT a.o::int, coalesce(a.s, head + x.k), a.s IS NULL, NULL::bytea
            FROM unnest(seqs) WITH ORDINALITY AS a(s, o)
            LEFT JOIN unnest(fresh) WITH ORDINALITY AS x(p, k) ON x.p = a.o
            ORDER BY a.o;
    ELSIF renumbered THEN
        RETURN QUERY
            SELECT a.o::int, coalesce(head + r.k, a.s), r.k IS NOT NULL, NULL::bytea
            FROM unnest(seqs) WITH ORDINALITY AS a(s, o)
            LEFT JOIN unnest(got) WITH ORDINALITY AS r(s, k) ON r.s = a.s
            ORDER BY a.o;
    ELSE
        RETURN QUERY
            SELECT a.o::int, a.s, a.s >= start, NULL::bytea
            FROM unnest(seqs) WITH ORDINALITY AS a(s, o)
            ORDER BY a.o;
    END IF;
END;
$$;
