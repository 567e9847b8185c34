-- The masters' heartbeats (engine::masters, store::postgres::cluster): each master sharing the
-- database writes its row at every beat (times on the database's clock, as every master reads
-- it) and deletes it when it stops; `GET /masters` lists the rows written lately. A table of its
-- own, written every few seconds per master: the tasks' hot path never touches it.
CREATE TABLE masters (
    id         TEXT   PRIMARY KEY,
    version    TEXT   NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL
);
