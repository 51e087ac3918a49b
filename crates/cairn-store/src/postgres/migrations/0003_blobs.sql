-- Content-addressed blobs, stored as chunks so that a blob of up to 1 GiB
-- is streamed in and out a chunk at a time and replicated with the rest of
-- the database.
--
-- An upload starts with a row in cairn_blob_uploads (its id comes from the
-- row's sequence) and adds one cairn_blob_chunks row per chunk of up to
-- 1 MiB, numbered n = 0, 1, 2, ... in byte order. The hash is known only at
-- the end, so chunks are keyed by the upload, not by the hash. Finishing is
-- one transaction: delete the upload's row, check its chunks, insert the
-- cairn_blobs row ON CONFLICT (hash) DO NOTHING, and, when the blob was
-- already stored, delete the new upload's chunks. A blob is therefore
-- either absent or complete, and stored once. Chunks commit without
-- waiting for the WAL flush; finish's synchronous commit flushes them with
-- it (see postgres/blobs.rs).
--
-- cairn_blob_uploads holds only the uploads in progress. Its rows are the
-- locks that keep abandoned-upload cleanup from racing a live upload:
--   * a chunk is inserted with INSERT ... SELECT ... FROM cairn_blob_uploads
--     ... FOR KEY SHARE, so it is written only while its upload's row
--     exists, and cleanup (which deletes that row first) waits for it;
--   * finish and cleanup both start by deleting the upload's row: whichever
--     comes second finds it gone, so a finished blob never loses chunks to
--     cleanup, and an upload removed as abandoned can no longer finish.
-- An upload dropped without finishing removes itself (row and chunks); one
-- whose server crashed is removed once its row is older than the cleanup
-- age (`remove_abandoned_uploads` in postgres/blobs.rs).
--
-- Committed cairn_blobs rows and their chunks are never updated or deleted.

CREATE TABLE cairn_blob_uploads (
    upload_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cairn_blob_chunks (
    upload_id bigint NOT NULL,
    n int NOT NULL CHECK (n >= 0),
    bytes bytea NOT NULL CHECK (length(bytes) > 0),
    PRIMARY KEY (upload_id, n)
);

CREATE TABLE cairn_blobs (
    hash bytea PRIMARY KEY CHECK (length(hash) = 32),
    size bigint NOT NULL CHECK (size >= 0),
    upload_id bigint NOT NULL UNIQUE
);
