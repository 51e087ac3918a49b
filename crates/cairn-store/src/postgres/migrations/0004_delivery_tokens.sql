-- Lease tokens are signed (a keyed BLAKE3 MAC) with a secret kept per
-- subscription, so that every server recognises the tokens of a
-- subscription and nothing else; a token names its lease by the message's
-- replay round and attempt rather than by a stored random lease id. The
-- backoff is computed in Rust (cairn-delivery), the one definition of it.

-- 32 random bytes for each subscription that already exists: two version 4
-- UUIDs (gen_random_uuid draws from the server's strong random source).
ALTER TABLE cairn_subscriptions ADD COLUMN token_secret bytea;
UPDATE cairn_subscriptions SET token_secret =
    decode(replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', ''),
           'hex');
ALTER TABLE cairn_subscriptions ALTER COLUMN token_secret SET NOT NULL;

-- How often a message was replayed from the dead letters: with attempts, it
-- numbers the message's leases (round << 32 | attempt).
ALTER TABLE cairn_messages ADD COLUMN round integer NOT NULL DEFAULT 0;
ALTER TABLE cairn_messages DROP COLUMN lease_id;

DROP FUNCTION cairn_backoff_ms(bigint, bigint, integer);
