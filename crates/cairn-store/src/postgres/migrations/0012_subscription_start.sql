-- Addition (issue 17): the cursor a subscription was created with, so that
-- the state of one fact in a subscription is exact: a fact at or below it
-- was never a message of the subscription (`start: "now"`), while one
-- between it and the cursor with no message row was acknowledged.
-- Subscriptions created before this migration have none (NULL): their
-- facts within the cursor without a row read as acknowledged.
ALTER TABLE cairn_subscriptions ADD COLUMN start_seq bigint;
