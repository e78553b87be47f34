-- The hourly prune of idempotency keys older than a day finds them here,
-- a chunk at a time, instead of reading the whole table: on SQLite each
-- statement holds the database's one write lock, which the group commit
-- waits behind.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
