-- Attempt history (model::history). The last lease's attempt, start, heartbeats and end are
-- columns of the task's row, written by the transitions that change them; the leases before it
-- and the refused requests are JSON (NULL while there is none), written when a lease moves the
-- last one there. No index covers these columns, so they add no index entry. A lease from
-- before this migration reads as attempt `attempts`, started at its deadline less its length,
-- ended at the task's last change.
ALTER TABLE tasks ADD COLUMN lease_attempt INT;
ALTER TABLE tasks ADD COLUMN lease_started_at BIGINT;
ALTER TABLE tasks ADD COLUMN lease_heartbeats INT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_beat_at BIGINT;
ALTER TABLE tasks ADD COLUMN lease_ended_at BIGINT;
ALTER TABLE tasks ADD COLUMN history TEXT;
