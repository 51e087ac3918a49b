-- Digests over the hash space, for anti-entropy (`GET /v1/digests`,
-- `cairn diff`; docs/design.md, "Digests"). One row per type and prefix of
-- three hexadecimal digits of the hash (`bucket`, 0 to 4095): how many
-- facts, and the XOR of their hashes as four big-endian 64-bit words.
-- Writes do not touch these tables: a digest query first brings them up
-- to the head of the log from `covered_seq` (under the lock of the
-- `cairn_digest_head` row, so one server folds each fact in exactly once),
-- in the same transaction that advances `covered_seq`.

CREATE TABLE cairn_digests (
    type_name text NOT NULL,
    bucket int NOT NULL CHECK (bucket >= 0 AND bucket < 4096),
    count bigint NOT NULL,
    x0 bigint NOT NULL,
    x1 bigint NOT NULL,
    x2 bigint NOT NULL,
    x3 bigint NOT NULL,
    PRIMARY KEY (bucket, type_name)
);

CREATE TABLE cairn_digest_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    covered_seq bigint NOT NULL
);

INSERT INTO cairn_digest_head (singleton, covered_seq) VALUES (true, 0);
