-- Finding tasks and acting on them in bulk (store::postgres::search, store::operations).
-- Every index on tasks costs every lease and every result (see 0005), so none is added that a
-- lease or a result writes:
-- * tags are kept with the task (JSON, NULL without any), never indexed there;
-- * tags and concurrency keys are found through task_labels ('t:' || tag, 'k:' || key), a side
--   table written at submission only; a trigger on deletes (not a foreign key, whose check
--   locks each task's row at submission) deletes a task's labels with it;
-- * created_at is found through a BRIN index: a few pages' summaries, which a new row version
--   leaves as they are unless it lands in a range its time is outside of;
-- * failed tasks by worker are read from tasks_by_state (migration 4), which holds them apart.
ALTER TABLE tasks ADD COLUMN tags TEXT;
CREATE TABLE task_labels (
    label   TEXT   NOT NULL,
    task_id BIGINT NOT NULL,
    PRIMARY KEY (label, task_id)
);
CREATE INDEX task_labels_by_task ON task_labels (task_id);
INSERT INTO task_labels (label, task_id)
    SELECT 'k:' || concurrency_key, id FROM tasks WHERE concurrency_key IS NOT NULL;
CREATE FUNCTION tasks_delete_labels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_labels WHERE task_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER tasks_delete_labels AFTER DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION tasks_delete_labels();
CREATE INDEX tasks_created ON tasks USING brin (created_at);
-- Bulk operations: the request, the progress, and which master runs it until when (a master
-- claims a running operation whose hold ran out, so that one master at a time runs it).
CREATE TABLE operations (
    id          BIGSERIAL PRIMARY KEY,
    action      TEXT    NOT NULL,
    filter      TEXT    NOT NULL, -- the API's filter, as JSON
    max_tasks   BIGINT,           -- the request's `limit`
    dry_run     BOOLEAN NOT NULL,
    state       TEXT    NOT NULL,
    matched     BIGINT  NOT NULL DEFAULT 0,
    done        BIGINT  NOT NULL DEFAULT 0,
    skipped     BIGINT  NOT NULL DEFAULT 0,
    errors      BIGINT  NOT NULL DEFAULT 0,
    error       TEXT,
    cursor      BIGINT  NOT NULL DEFAULT 0,
    started_at  BIGINT  NOT NULL,
    finished_at BIGINT,
    owner       TEXT,
    owned_until BIGINT
);
CREATE INDEX operations_running ON operations (id) WHERE state = 'running';
