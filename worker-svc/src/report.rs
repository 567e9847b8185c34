//! Results on their way to the master, in as few requests as possible.
//!
//! A finished task hands its result over and frees its slot at the same moment. While the pull
//! loop is leasing, the result rides on its next lease request ("report and lease next": the
//! results of a batch and the next batch's leases in one request and one commit). The pull loop
//! sends one within [`HOLD`] in steady work; when it does not (the pace fell), the held results
//! go on their own. While the loop long-polls, or does not lease at all, a result goes at once:
//! while one report is in flight, the results of every task that finishes meanwhile wait and
//! then go together in one `POST /tasks/results`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::{ReportAck, ReportFor, TaskId, TaskResult, TaskState};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::metrics as m;
use crate::slots::Slot;
use leasehold_client::{ClientError, MasterClient};

/// Most results in one request (the master's limit).
const MAX_GROUP: usize = common::MAX_REPORT_BATCH;

/// Longest a result waits for a lease request to ride on before it goes on its own.
pub const HOLD: Duration = Duration::from_millis(50);

/// The master's answer to one result: the task's state once the result is accepted (when the
/// master says it), or why it was not.
pub type Answer = Result<Option<TaskState>, ClientError>;

/// A result waiting to be sent, and who waits for its answer.
#[derive(Debug)]
pub struct Pending {
    item: ReportFor,
    answer: oneshot::Sender<Answer>,
}

/// The results a lease request carries: their bodies go in the request, and who waits for
/// their answers stays here.
#[derive(Debug, Default)]
pub struct Carried {
    answers: Vec<oneshot::Sender<Answer>>,
}

/// Sends results to the master, grouping those that finish together. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Reporter {
    // A std mutex: held only to push or take, never across an await.
    outbox: Arc<Mutex<Outbox>>,
    /// Wakes the sending task; it ends when every reporter is dropped.
    wake: mpsc::UnboundedSender<()>,
}

#[derive(Debug, Default)]
struct Outbox {
    /// For the sending task.
    now: Vec<Pending>,
    /// For the pull loop's next lease request.
    riding: Vec<Pending>,
    /// When the oldest of `riding` was handed over.
    held_since: Option<Instant>,
    /// The pull loop is leasing and no long-poll is out: results ride on its next request.
    ride: bool,
}

impl Reporter {
    /// Starts the sending task; it ends when every clone of the reporter is dropped.
    pub fn start(client: MasterClient) -> Reporter {
        let outbox = Arc::new(Mutex::new(Outbox::default()));
        let (wake, woken) = mpsc::unbounded_channel();
        tokio::spawn(send_grouped(client, outbox.clone(), woken));
        Reporter { outbox, wake }
    }

    /// Hands over a finished task's result and frees its slot. Answers as
    /// `POST /tasks/{id}/result` would for the result alone.
    pub async fn finish(&self, task_id: TaskId, report: TaskResult, slot: Slot) -> Answer {
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            item: ReportFor { task_id, report },
            answer,
        };
        let riding = {
            let mut outbox = self.outbox();
            if outbox.ride {
                outbox.held_since.get_or_insert_with(Instant::now);
                outbox.riding.push(pending);
            } else {
                outbox.now.push(pending);
            }
            outbox.ride
        };
        if !riding {
            let _ = self.wake.send(());
        }
        // Freed after the hand-over, so that a pull loop woken by it finds the result waiting.
        drop(slot);
        answered.await.unwrap_or(Err(ClientError::Unavailable(503)))
    }

    /// Sends one result at once (grouped with others finishing meanwhile), e.g. to retry one.
    pub async fn report(&self, task_id: TaskId, report: TaskResult) -> Answer {
        let (answer, answered) = oneshot::channel();
        self.send(vec![Pending {
            item: ReportFor { task_id, report },
            answer,
        }]);
        answered.await.unwrap_or(Err(ClientError::Unavailable(503)))
    }

    /// The pull loop starts (or resumes) leasing: results ride on its requests.
    pub fn ride(&self) {
        self.outbox().ride = true;
    }

    /// The pull loop stops leasing: results held for it go at once, and so do later ones.
    pub fn stop_riding(&self) {
        let held = {
            let mut outbox = self.outbox();
            outbox.ride = false;
            outbox.held_since = None;
            std::mem::take(&mut outbox.riding)
        };
        self.send(held);
    }

    /// Sends the held results on their own: no lease request came for them in time.
    pub fn flush(&self) {
        let held = {
            let mut outbox = self.outbox();
            outbox.held_since = None;
            std::mem::take(&mut outbox.riding)
        };
        self.send(held);
    }

    /// When the oldest held result was handed over.
    pub fn held_since(&self) -> Option<Instant> {
        self.outbox().held_since
    }

    /// The results for the lease request about to go (at most a request's worth; any more wait
    /// for the next one). While a `long_poll` is out, results go at once instead: it may wait
    /// long on the master before it carries anything back.
    pub fn take_for_lease(&self, long_poll: bool) -> (Vec<ReportFor>, Carried) {
        let mut outbox = self.outbox();
        let count = outbox.riding.len().min(MAX_GROUP);
        let riding: Vec<Pending> = outbox.riding.drain(..count).collect();
        if outbox.riding.is_empty() {
            outbox.held_since = None;
        }
        outbox.ride = !long_poll;
        drop(outbox);
        m::results_sent("lease", riding.len());
        let (items, answers) = riding
            .into_iter()
            .map(|pending| (pending.item, pending.answer))
            .unzip();
        (items, Carried { answers })
    }

    /// Answers results that rode on a lease, from the lease reply's `results`, in order.
    pub fn answer(carried: Carried, acks: Vec<ReportAck>) {
        let mut acks = acks.into_iter();
        for answer_to in carried.answers {
            let answer = acks
                .next()
                .map_or(Err(ClientError::Unavailable(502)), answer_of);
            let _ = answer_to.send(answer);
        }
    }

    /// Sends results again on their own: the lease request that carried them failed, or was
    /// dropped as the worker stopped.
    pub fn send_again(&self, items: Vec<ReportFor>, carried: Carried) {
        let again = items
            .into_iter()
            .zip(carried.answers)
            .map(|(item, answer)| Pending { item, answer })
            .collect();
        self.send(again);
    }

    /// Sends results at once, e.g. those of a lease request that failed, so that they are not
    /// lost with it.
    pub fn send(&self, results: Vec<Pending>) {
        if results.is_empty() {
            return;
        }
        self.outbox().now.extend(results);
        let _ = self.wake.send(());
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().expect("outbox poisoned")
    }
}

async fn send_grouped(
    client: MasterClient,
    outbox: Arc<Mutex<Outbox>>,
    mut woken: mpsc::UnboundedReceiver<()>,
) {
    while woken.recv().await.is_some() {
        while woken.try_recv().is_ok() {}
        loop {
            let group: Vec<Pending> = {
                let mut outbox = outbox.lock().expect("outbox poisoned");
                let count = outbox.now.len().min(MAX_GROUP);
                outbox.now.drain(..count).collect()
            };
            if group.is_empty() {
                break;
            }
            m::results_sent("request", group.len());
            let (items, answers): (Vec<_>, Vec<_>) = group
                .into_iter()
                .map(|pending| (pending.item, pending.answer))
                .unzip();
            for (answer, outcome) in answers.into_iter().zip(send(&client, items).await) {
                let _ = answer.send(outcome);
            }
        }
    }
}

/// One request for the group: the single-result endpoint for one, the batch endpoint for more.
async fn send(client: &MasterClient, mut items: Vec<ReportFor>) -> Vec<Answer> {
    if items.len() == 1 {
        let item = items.remove(0);
        let answer = client.result(item.task_id, &item.report).await;
        return vec![answer.map(|task| Some(task.state))];
    }
    let count = items.len();
    match client.results(items).await {
        Ok(reply) => reply.results.into_iter().map(answer_of).collect(),
        Err(e) => vec![Err(e); count],
    }
}

/// The answer the master gave one result of a group.
fn answer_of(ack: ReportAck) -> Answer {
    match ack.problem {
        None => Ok(ack.state),
        Some(problem) => Err(ClientError::Refused(problem)),
    }
}
