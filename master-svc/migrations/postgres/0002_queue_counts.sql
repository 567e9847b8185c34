-- Tasks per queue and state, so that reading the counts (`GET /queues`, `/metrics`, autoscalers)
-- does not read every task. Several masters change tasks at once, so a change does not update a
-- shared row (every writer would queue behind it): statement-level triggers append the change's
-- net deltas to `queue_count_changes`, and the masters fold those into `queue_counts` every
-- second (store::postgres::counts). The counts are the sum of both, always exact.
--
-- Writers (masters of the previous version, during a rolling upgrade) wait while the counts are
-- taken and the triggers created, so that no change falls between the two.
LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;
CREATE TABLE queue_counts (
    queue TEXT   NOT NULL,
    state TEXT   NOT NULL,
    n     BIGINT NOT NULL,
    PRIMARY KEY (queue, state)
);
CREATE TABLE queue_count_changes (
    queue TEXT   NOT NULL,
    state TEXT   NOT NULL,
    delta BIGINT NOT NULL
);
INSERT INTO queue_counts (queue, state, n) SELECT queue, state, COUNT(*) FROM tasks GROUP BY queue, state;

CREATE FUNCTION leasehold_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_count_changes (queue, state, delta)
    SELECT queue, state, COUNT(*) FROM inserted GROUP BY queue, state;
    RETURN NULL;
END $$;

CREATE FUNCTION leasehold_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_count_changes (queue, state, delta)
    SELECT queue, state, SUM(delta) FROM (
        SELECT queue, state, -1 AS delta FROM before_update
        UNION ALL
        SELECT queue, state, 1 AS delta FROM after_update
    ) AS moved
    GROUP BY queue, state
    HAVING SUM(delta) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION leasehold_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_count_changes (queue, state, delta)
    SELECT queue, state, -COUNT(*) FROM deleted GROUP BY queue, state;
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_count_inserted AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION leasehold_count_inserted();
CREATE TRIGGER tasks_count_updated AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS before_update NEW TABLE AS after_update
    FOR EACH STATEMENT EXECUTE FUNCTION leasehold_count_updated();
CREATE TRIGGER tasks_count_deleted AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION leasehold_count_deleted();
