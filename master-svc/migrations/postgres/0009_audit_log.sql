-- The audit log of operator actions (store::postgres::audit): appended to, read newest first by
-- id, purged by age through `audit_at`. A table of its own: the tasks' hot path never touches it.
CREATE TABLE audit_log (
    id      BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT  NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    status  INTEGER NOT NULL
);
CREATE INDEX audit_at ON audit_log (at);
