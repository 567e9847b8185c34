-- Tasks a master waits for (`GET /tasks/{id}?wait_secs=`): the master that finishes one
-- announces it to the others only if it is watched here (store::postgres::notify), so that
-- finishing a task nobody waits for costs no announcement. A waiter inserts its row before it
-- reads the task, and the finishing master looks here after its commit: whichever comes
-- second sees the other. Rows of a master that stopped mid-wait are deleted once `until` has
-- passed.
CREATE TABLE task_watches (
    task_id BIGINT      NOT NULL,
    until   TIMESTAMPTZ NOT NULL
);
CREATE INDEX task_watches_task ON task_watches (task_id);
