-- The same tables as the embedded store, in PostgreSQL's types. Times are milliseconds since the
-- Unix epoch on the database's clock (the masters read it, see store::postgres::clock); payloads
-- and results are kept as the JSON text the client sent, like the embedded store does.
CREATE TABLE tasks (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    attempts         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    default_lease_ms BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    run_at           BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    lease_id         TEXT,
    lease_worker     TEXT,
    lease_expires_at BIGINT,
    lease_ms         BIGINT,
    lease_end        TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    result           TEXT,
    error            TEXT,
    completed_by     TEXT,
    idempotency_key  TEXT UNIQUE
);
-- Partial indexes keep each hot path's index as small as the set it serves: the ready set for
-- leasing, the leased set for expiry and drain checks, the finished set for retention.
CREATE INDEX tasks_ready    ON tasks (queue, priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX tasks_leased   ON tasks (lease_expires_at) WHERE state = 'leased';
CREATE INDEX tasks_leased_queue ON tasks (queue) WHERE state = 'leased';
CREATE INDEX tasks_finished ON tasks (updated_at) WHERE state IN ('succeeded', 'failed', 'cancelled');
CREATE TABLE queues (
    name   TEXT    PRIMARY KEY,
    sealed BOOLEAN NOT NULL DEFAULT false
);
