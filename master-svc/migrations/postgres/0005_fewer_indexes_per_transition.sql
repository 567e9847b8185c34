-- Every change of a task's state writes a new row version, and a new entry in every index whose
-- condition the new version meets: each index costs every lease and every result. Whether a
-- queue has leased tasks (`tasks_leased_queue`) is one look-up in `tasks_by_queue`
-- (queue, state, id) since migration 4, so that index goes.
DROP INDEX tasks_leased_queue;
