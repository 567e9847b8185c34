//! Samples of `GET /masters` and of the pulling workers `GET /workers` lists: two masters
//! sharing a PostgreSQL database, and the original example's `w01` pulling from the default
//! queue.

use super::at;
use crate::DEFAULT_QUEUE;
use crate::cluster::{MasterInfo, MasterList, PullWorker, StoreKind, WorkerRequest};

/// `GET /masters` answered by the master started last of two.
pub fn master_list() -> MasterList {
    MasterList {
        store: StoreKind::Postgres,
        masters: vec![
            MasterInfo {
                id: "leasehold-master-1-7-3f2a9c01".into(),
                version: "0.1.0".into(),
                started_at: at(-600),
                seen_at: at(-2),
                uptime_secs: 600,
                this: true,
            },
            MasterInfo {
                id: "leasehold-master-0-7-c41e0b6d".into(),
                version: "0.1.0".into(),
                started_at: at(-3_600),
                seen_at: at(-7),
                uptime_secs: 3_600,
                this: false,
            },
        ],
    }
}

/// `w01`, holding task 3, last heard from by its heartbeat.
pub fn pull_worker() -> PullWorker {
    PullWorker {
        id: "w01".into(),
        queues: vec![DEFAULT_QUEUE.into()],
        in_flight: 1,
        last_seen_at: at(-5),
        last_seen: WorkerRequest::Heartbeat,
    }
}
