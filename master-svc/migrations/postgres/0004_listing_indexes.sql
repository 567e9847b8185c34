-- `GET /tasks?state=` and `?queue=` (and both) walk an index in id order and stop at the end of
-- the page; they read the whole table before (87 ms at 1M tasks). See store::postgres::listing.
CREATE INDEX tasks_by_state ON tasks (state, id);
CREATE INDEX tasks_by_queue ON tasks (queue, state, id);
