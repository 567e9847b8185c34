//! Results on their way to the master, grouped: while one report is in flight, the results of
//! every task that finishes meanwhile wait and then go together in one `POST /tasks/results`
//! (one request and one commit on the master for all of them). A result that finishes alone goes
//! at once, on its own, so grouping adds no delay; under load it saves a round trip per task.

use common::{ReportFor, TaskId, TaskResult};
use tokio::sync::{mpsc, oneshot};

use crate::client::{ClientError, MasterClient};

/// Most results in one request (the master's limit).
const MAX_GROUP: usize = common::MAX_REPORT_BATCH;

type Answer = Result<(), ClientError>;

/// Sends results to the master, grouping those that finish together. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Reporter {
    results: mpsc::UnboundedSender<(ReportFor, oneshot::Sender<Answer>)>,
}

impl Reporter {
    /// Starts the sending task; it ends when every clone of the reporter is dropped.
    pub fn start(client: MasterClient) -> Reporter {
        let (results, rx) = mpsc::unbounded_channel();
        tokio::spawn(send_grouped(client, rx));
        Reporter { results }
    }

    /// Sends one task's result; answers as `POST /tasks/{id}/result` would for it alone.
    pub async fn report(&self, task_id: TaskId, report: TaskResult) -> Answer {
        let (answer, answered) = oneshot::channel();
        let item = ReportFor { task_id, report };
        if self.results.send((item, answer)).is_err() {
            return Err(ClientError::Unavailable(503));
        }
        answered.await.unwrap_or(Err(ClientError::Unavailable(503)))
    }
}

async fn send_grouped(
    client: MasterClient,
    mut rx: mpsc::UnboundedReceiver<(ReportFor, oneshot::Sender<Answer>)>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.recv().await {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let (items, answers): (Vec<_>, Vec<_>) = group.drain(..).unzip();
        for (answer, outcome) in answers.into_iter().zip(send(&client, items).await) {
            let _ = answer.send(outcome);
        }
    }
}

/// One request for the group: the single-result endpoint for one, the batch endpoint for more.
async fn send(client: &MasterClient, mut items: Vec<ReportFor>) -> Vec<Answer> {
    if items.len() == 1 {
        let item = items.remove(0);
        return vec![client.result(item.task_id, &item.report).await.map(drop)];
    }
    let count = items.len();
    match client.results(items).await {
        Ok(reply) => reply
            .results
            .into_iter()
            .map(|ack| match ack.problem {
                None => Ok(()),
                Some(problem) => Err(ClientError::Refused(problem)),
            })
            .collect(),
        Err(e) => vec![Err(e); count],
    }
}
