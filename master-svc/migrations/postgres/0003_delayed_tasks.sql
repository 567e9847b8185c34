-- Delayed tasks are kept out of the ready index until they are due. In it, a walk to the one
-- ready task stepped over every delayed task of a higher priority (300,000 made a lease take
-- 20 ms instead of 1). `delayed` is set when a task is queued with `run_at` after the decision
-- that queued it, and cleared by a lease of its queue once `run_at` has passed
-- (store::postgres::lease::ready_ids).
ALTER TABLE tasks ADD COLUMN delayed BOOLEAN NOT NULL DEFAULT false;
UPDATE tasks SET delayed = true WHERE state = 'queued' AND run_at > updated_at;
DROP INDEX tasks_ready;
CREATE INDEX tasks_ready ON tasks (queue, priority DESC, run_at, id)
    WHERE state = 'queued' AND NOT delayed;
-- Queued tasks by time, ready and delayed apart: the delayed ones due (promotion, readiness
-- checks) and the oldest ready one (`GET /queues`) are each one look-up, however many
-- priorities are in use.
CREATE INDEX tasks_queued ON tasks (queue, delayed, run_at) WHERE state = 'queued';
