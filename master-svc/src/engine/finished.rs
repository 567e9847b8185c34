//! Waiting for a task to finish (`GET /tasks/{id}?wait_secs=`, `POST /tasks?wait_secs=`).
//!
//! A waiter is woken by the commit that finishes its task, never by a timer: every transition to
//! succeeded, failed or cancelled passes through the engine ([`Engine::finished`]), which wakes
//! this master's waiters of the task and tells the other masters sharing the store, which wake
//! theirs. A waiter registers before it reads the task, so a finish between the two is not
//! missed; on a shared store it also tells the store it watches the task
//! ([`Store::watch`](crate::store::Store::watch)), so that only watched tasks are announced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{SubmitTask, Task, TaskId};
use tokio::sync::Notify;

use super::{Engine, EngineError, Result, validate, view};
use crate::store::{Store, Wake};

/// This master's waiters, by task.
#[derive(Debug, Default)]
pub(super) struct FinishWaiters {
    // A std mutex: held only to look up or count, never across an await.
    tasks: Mutex<HashMap<TaskId, (usize, Arc<Notify>)>>,
}

impl FinishWaiters {
    fn register(self: &Arc<Self>, id: TaskId) -> Registered {
        let mut tasks = self.tasks.lock().expect("finish waiters");
        let (count, notify) = tasks.entry(id).or_default();
        *count += 1;
        Registered {
            waiters: self.clone(),
            id,
            notify: notify.clone(),
        }
    }

    /// Wakes every waiter of `id`.
    pub(super) fn wake(&self, id: TaskId) {
        let tasks = self.tasks.lock().expect("finish waiters");
        if let Some((_, notify)) = tasks.get(&id) {
            notify.notify_waiters();
        }
    }

    pub(super) fn waiting(&self) -> usize {
        let tasks = self.tasks.lock().expect("finish waiters");
        tasks.values().map(|(count, _)| count).sum()
    }
}

/// One waiter's place; leaving it forgets the task once no one else waits for it.
struct Registered {
    waiters: Arc<FinishWaiters>,
    id: TaskId,
    notify: Arc<Notify>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut tasks = self.waiters.tasks.lock().expect("finish waiters");
        if let Some((count, _)) = tasks.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                tasks.remove(&self.id);
            }
        }
    }
}

/// Ends the store's watch when the wait ends, also when its request is dropped mid-wait (the
/// client went away).
struct Unwatch {
    store: Arc<dyn Store>,
    id: TaskId,
}

impl Drop for Unwatch {
    fn drop(&mut self) {
        let (store, id) = (self.store.clone(), self.id);
        tokio::spawn(async move { store.unwatch(id).await });
    }
}

impl Engine {
    /// The task, or with `wait_secs` (0 to 60), the task once it is finished, or as it is when
    /// the wait runs out (or the master stops).
    pub async fn get_finished(&self, id: TaskId, wait_secs: Option<u64>) -> Result<Task> {
        match validate::wait_secs(wait_secs)? {
            0 => self.get(id).await,
            wait => self.wait_finished(id, Duration::from_secs(wait)).await,
        }
    }

    /// Submits one task (as [`submit`](Engine::submit)) and, with `wait_secs` (0 to 60, checked
    /// first), waits for it to finish as [`get_finished`](Self::get_finished) does.
    pub async fn submit_and_wait(
        &self,
        task: SubmitTask,
        wait_secs: Option<u64>,
    ) -> Result<(Task, bool)> {
        let wait = validate::wait_secs(wait_secs)?;
        let (task, created) = self.submit(task).await?;
        if wait == 0 || task.state.is_terminal() {
            return Ok((task, created));
        }
        let task = self
            .wait_finished(task.id, Duration::from_secs(wait))
            .await?;
        Ok((task, created))
    }

    /// The task once it is finished, or as it is when `wait` runs out (or the master stops).
    async fn wait_finished(&self, id: TaskId, wait: Duration) -> Result<Task> {
        let deadline = tokio::time::Instant::now() + wait;
        let registered = self.finish_waiters.register(id);
        self.store.watch(id).await?;
        let _unwatch = Unwatch {
            store: self.store.clone(),
            id,
        };
        self.wait_registered(id, &registered, deadline).await
    }

    async fn wait_registered(
        &self,
        id: TaskId,
        registered: &Registered,
        deadline: tokio::time::Instant,
    ) -> Result<Task> {
        loop {
            let woken = registered.notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let record = self.store.get(id).await?;
            let record = record.ok_or(EngineError::TaskNotFound(id))?;
            if record.state.is_terminal() {
                return Ok(view::task(record));
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(view::task(record)),
                _ = self.shutdown.cancelled() => return Ok(view::task(record)),
            }
        }
    }

    /// A task just finished (its commit is done): wakes its waiters here and on the other
    /// masters.
    pub(super) fn finished(&self, id: TaskId, queue: &str) {
        self.wake(queue, Wake::Finished(id));
    }

    /// Requests waiting for a task to finish on this master.
    pub fn finish_waiters(&self) -> usize {
        self.finish_waiters.waiting()
    }
}
