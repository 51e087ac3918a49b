-- Claims, leases and the deployment's identity (issue 14).
--
-- One row per claim key and per lease name, holding the record the
-- server's rules decide on (JSON text, the same records the embedded
-- store keeps). A claim or lease operation locks its row (FOR UPDATE) for
-- the transaction that also writes the decision's fact; a fenced write
-- locks its lease row FOR SHARE in the transaction that writes its facts,
-- so no grant can come between the check and the write. Rows are never
-- deleted: a lease's fence only grows.

CREATE TABLE cairn_deployment (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id text NOT NULL
);
INSERT INTO cairn_deployment (id) VALUES (replace(gen_random_uuid()::text, '-', ''));

CREATE TABLE cairn_claims (
    key text PRIMARY KEY,
    -- NULL until the key is first won (a row is made to be locked).
    record text
);

CREATE TABLE cairn_leases (
    name text PRIMARY KEY,
    record text
);
