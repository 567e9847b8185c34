-- Flow control (engine::limits, store::postgres::gates). A queue's settings, its token bucket and
-- the key rotation's cursor live in its row: a lease of a queue with settings locks that row
-- before it counts what is in flight, so that masters sharing the database admit one after the
-- other, and writes the bucket and the cursor back in its own commit.
ALTER TABLE queues
    ADD COLUMN paused        BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN paused_until  BIGINT,
    ADD COLUMN max_in_flight INTEGER,
    ADD COLUMN rate_per_sec  DOUBLE PRECISION,
    ADD COLUMN rate_burst    INTEGER,
    ADD COLUMN key_limit     INTEGER,
    ADD COLUMN bucket_tokens DOUBLE PRECISION,
    ADD COLUMN bucket_at     BIGINT,
    ADD COLUMN cursor_key    TEXT;
ALTER TABLE tasks ADD COLUMN concurrency_key TEXT;
-- Ready tasks with a concurrency key are leased by the key rotation, from their own index: each
-- key's ready tasks, best first, so that the next key after the cursor is one look-up however
-- many tasks a key holds. The ready index keeps the others, so every ready task is in one of the
-- two, and tasks without a key cost what they cost before.
DROP INDEX tasks_ready;
CREATE INDEX tasks_ready ON tasks (queue, priority DESC, run_at, id)
    WHERE state = 'queued' AND NOT delayed AND concurrency_key IS NULL;
CREATE INDEX tasks_lanes ON tasks (queue, concurrency_key, priority DESC, run_at, id)
    WHERE state = 'queued' AND NOT delayed AND concurrency_key IS NOT NULL;
-- Tasks leased per key: a key limit's count, read under the queue's lock. Only keyed tasks enter
-- it, so a lease of a task without a key writes no entry here.
CREATE INDEX tasks_keys_leased ON tasks (queue, concurrency_key)
    WHERE state = 'leased' AND concurrency_key IS NOT NULL;
