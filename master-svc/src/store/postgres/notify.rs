//! `LISTEN/NOTIFY` between masters sharing a database.
//!
//! A master announces "queue Q has N new ready tasks" (or "look again", for drains) on one
//! channel after its change is committed; every other master wakes that many of its own
//! long-polls. It announces nothing while no other master shares the store (the engine's
//! `Company`, in `engine/masters.rs`), and a master that opens the store announces that it
//! joined, so that the others start at once. It also announces "task T finished", but only for
//! the tasks some master watches (`task_watches`, migration 0008), looked up after the commit: a
//! drain of tasks nobody waits for announces nothing. Announcements are coalesced and sent by
//! one background task, so no request waits for them. They are a fast path only: one lost with a
//! dropped connection costs a waiter at most one reaper tick, when the reaper looks for ready
//! tasks on every waiting queue anyway.

use std::collections::HashMap;
use std::time::Duration;

use common::TaskId;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Mutex, mpsc};

use crate::store::db;
use crate::store::{Announcement, StoreError, Wake};

/// The one channel every master listens on.
const CHANNEL: &str = "leasehold_ready";
/// Pause before listening again after the connection failed to come back.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// Sends this master's announcements.
#[derive(Debug)]
pub(super) struct Announcer {
    /// Tells this master's own announcements apart from the others' on the shared channel.
    instance: String,
    changes: mpsc::UnboundedSender<(String, Wake)>,
}

impl Announcer {
    /// Starts the sending task; it ends when the announcer is dropped.
    pub(super) fn start(pool: PgPool) -> Announcer {
        let instance = format!("{:016x}", fastrand::u64(..));
        let (changes, rx) = mpsc::unbounded_channel();
        tokio::spawn(send_coalesced(pool, instance.clone(), rx));
        Announcer { instance, changes }
    }

    pub(super) fn announce(&self, queue: &str, wake: Wake) {
        let _ = self.changes.send((queue.to_owned(), wake));
    }

    pub(super) fn instance(&self) -> &str {
        &self.instance
    }

    /// Tells the other masters that this one listens from now on; waits for the commit.
    pub(super) async fn joined(&self, pool: &PgPool) -> Result<(), StoreError> {
        notify(pool, &[encode_joined(&self.instance)])
            .await
            .map_err(db)
    }
}

async fn send_coalesced(
    pool: PgPool,
    instance: String,
    mut rx: mpsc::UnboundedReceiver<(String, Wake)>,
) {
    while let Some(first) = rx.recv().await {
        let mut pending: HashMap<String, Wake> = HashMap::new();
        let mut finished: Vec<(TaskId, String)> = Vec::new();
        let mut next = Some(first);
        while let Some((queue, wake)) = next {
            if let Wake::Finished(id) = wake {
                finished.push((id, queue));
            } else {
                let merged = match (pending.get(&queue), wake) {
                    (Some(Wake::Tasks(a)), Wake::Tasks(b)) => Wake::Tasks(a + b),
                    (None, wake) => wake,
                    _ => Wake::All,
                };
                pending.insert(queue, merged);
            }
            next = rx.try_recv().ok();
        }
        let payloads: Vec<String> = pending
            .into_iter()
            .map(|(queue, wake)| encode(&instance, &queue, wake))
            .collect();
        if !payloads.is_empty()
            && let Err(e) = notify(&pool, &payloads).await
        {
            tracing::warn!(error = %crate::chain::Chain(&e), "could not announce ready tasks to other masters");
        }
        if !finished.is_empty() {
            announce_watched(&pool, &instance, finished).await;
        }
    }
}

/// Sends `payloads` on the channel, in one statement (and one commit).
async fn notify(pool: &PgPool, payloads: &[String]) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
        .bind(CHANNEL)
        .bind(payloads)
        .execute(pool)
        .await
        .map(drop)
}

/// Announces those of the finished tasks that some master watches.
async fn announce_watched(pool: &PgPool, instance: &str, finished: Vec<(TaskId, String)>) {
    let (ids, queues): (Vec<i64>, Vec<String>) = finished
        .into_iter()
        .map(|(id, queue)| (id.0, queue))
        .unzip();
    let sent = sqlx::query(
        "SELECT pg_notify($1, $2 || ' f' || f.id || ' ' || f.queue) \
         FROM unnest($3::int8[], $4::text[]) AS f (id, queue) \
         WHERE EXISTS (SELECT 1 FROM task_watches WHERE task_id = f.id)",
    )
    .bind(CHANNEL)
    .bind(instance)
    .bind(&ids)
    .bind(&queues)
    .execute(pool)
    .await;
    if let Err(e) = sent {
        tracing::warn!(error = %crate::chain::Chain(&e), "could not announce finished tasks to other masters");
    }
}

/// Records that this master waits for `id` to finish, until `at_most` from now; forgets the
/// watches of masters that stopped mid-wait.
pub(super) async fn watch(pool: &PgPool, id: TaskId, at_most: Duration) -> Result<(), StoreError> {
    sqlx::query(
        "WITH gone AS (DELETE FROM task_watches WHERE until < now()) \
         INSERT INTO task_watches (task_id, until) VALUES ($1, now() + make_interval(secs => $2))",
    )
    .bind(id.0)
    .bind(at_most.as_secs_f64())
    .execute(pool)
    .await
    .map(drop)
    .map_err(db)
}

/// Ends one watch of `id`.
pub(super) async fn unwatch(pool: &PgPool, id: TaskId) {
    let ended = sqlx::query(
        "DELETE FROM task_watches WHERE ctid = \
         (SELECT ctid FROM task_watches WHERE task_id = $1 LIMIT 1)",
    )
    .bind(id.0)
    .execute(pool)
    .await;
    if let Err(e) = ended {
        tracing::warn!(error = %crate::chain::Chain(&e), task_id = %id, "could not end a watch; it ends by itself");
    }
}

/// `INSTANCE COUNT QUEUE`, with `*` as the count for "everyone look again" and `fID` for "task
/// ID finished" (written by [`announce_watched`]'s SQL); `INSTANCE joined` for a master that
/// opened the store ([`encode_joined`]). Queue names have no spaces, so the last field is the
/// whole name.
fn encode(instance: &str, queue: &str, wake: Wake) -> String {
    match wake {
        Wake::Tasks(n) => format!("{instance} {n} {queue}"),
        Wake::All => format!("{instance} * {queue}"),
        Wake::Finished(id) => format!("{instance} f{id} {queue}"),
    }
}

fn encode_joined(instance: &str) -> String {
    format!("{instance} joined")
}

fn decode(payload: &str) -> Option<(&str, Announcement)> {
    let mut fields = payload.splitn(3, ' ');
    let instance = fields.next()?;
    let wake = match fields.next()? {
        "joined" => return Some((instance, Announcement::Joined)),
        "*" => Wake::All,
        finished if finished.starts_with('f') => Wake::Finished(finished[1..].parse().ok()?),
        n => Wake::Tasks(n.parse().ok()?),
    };
    let queue = fields.next()?.to_owned();
    Some((instance, Announcement::Changed { queue, wake }))
}

/// Receives the other masters' announcements.
#[derive(Debug)]
pub(super) struct Listener {
    // A Tokio mutex: the one reader holds it across the wait for the next notification.
    inner: Mutex<PgListener>,
}

impl Listener {
    pub(super) async fn connect(pool: &PgPool) -> Result<Listener, StoreError> {
        let mut listener = PgListener::connect_with(pool).await.map_err(db)?;
        listener.listen(CHANNEL).await.map_err(db)?;
        Ok(Listener {
            inner: Mutex::new(listener),
        })
    }

    /// The next announcement not sent by `own_instance`. A lost connection is re-established
    /// (and listened on again) by sqlx; whatever was announced meanwhile is missed.
    pub(super) async fn next(&self, own_instance: &str) -> Announcement {
        let mut listener = self.inner.lock().await;
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match decode(notification.payload()) {
                    Some((instance, announcement)) if instance != own_instance => {
                        return announcement;
                    }
                    Some(_) => {}
                    None => tracing::warn!(payload = notification.payload(), "bad announcement"),
                },
                Ok(None) => tracing::warn!("lost the LISTEN connection; reconnecting"),
                Err(e) => {
                    tracing::warn!(error = %crate::chain::Chain(&e), "cannot listen for other masters' announcements");
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_read_back_as_written() {
        for wake in [Wake::Tasks(3), Wake::All, Wake::Finished(TaskId(42))] {
            let payload = encode("abc", "emails.high", wake);
            let (instance, announcement) = decode(&payload).expect("decodes");
            assert_eq!(instance, "abc");
            let queue = "emails.high".to_owned();
            assert_eq!(announcement, Announcement::Changed { queue, wake });
        }
    }

    #[test]
    fn a_master_that_joined_reads_back_as_joined() {
        assert_eq!(encode_joined("abc"), "abc joined");
        assert_eq!(decode("abc joined"), Some(("abc", Announcement::Joined)));
    }

    #[test]
    fn a_malformed_announcement_is_ignored() {
        assert!(decode("abc").is_none());
        assert!(decode("abc x default").is_none());
    }
}
