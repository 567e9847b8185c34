-- Attempt history (model::history): the live lease's start and heartbeats, and what the task
-- keeps of its ended leases and of refused requests, as JSON (NULL while there is none). All in
-- the task's row, so a transition writes its history in the row version it writes anyway; no
-- index covers these columns, so they add no index entry. A lease granted before this
-- migration has no start: it reads as its deadline less its length.
ALTER TABLE tasks ADD COLUMN lease_started_at BIGINT;
ALTER TABLE tasks ADD COLUMN lease_heartbeats INT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_beat_at BIGINT;
ALTER TABLE tasks ADD COLUMN history TEXT;
