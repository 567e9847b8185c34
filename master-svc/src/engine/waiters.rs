//! Long-poll wake-ups: lease requests that found nothing wait here, per queue, until a task
//! becomes ready. Submissions wake exactly as many waiters as they add tasks (never a herd).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::select_all;
use tokio::sync::Notify;

/// Waiting lease requests, by queue.
#[derive(Debug, Default)]
pub struct Waiters {
    // A std mutex: held only to look up or count, never across an await.
    queues: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Debug, Default)]
struct Slot {
    notify: Notify,
    waiting: AtomicUsize,
}

impl Waiters {
    /// Counts the caller as waiting on `queues` until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>, queues: &[String]) -> Waiting {
        let mut map = self.lock();
        let slots = queues
            .iter()
            .map(|queue| {
                let slot = map.entry(queue.clone()).or_default().clone();
                slot.waiting.fetch_add(1, Ordering::SeqCst);
                (queue.clone(), slot)
            })
            .collect();
        Waiting {
            waiters: self.clone(),
            slots,
        }
    }

    /// Wakes up to `tasks` waiters of `queue`: one per task made ready.
    pub fn wake(&self, queue: &str, tasks: usize) {
        if let Some(slot) = self.lock().get(queue) {
            let waiting = slot.waiting.load(Ordering::SeqCst);
            for _ in 0..tasks.min(waiting) {
                slot.notify.notify_one();
            }
        }
    }

    /// Wakes every waiter of `queue`, e.g. so they learn it is drained.
    pub fn wake_all(&self, queue: &str) {
        if let Some(slot) = self.lock().get(queue) {
            slot.notify.notify_waiters();
        }
    }

    /// The queues that have lease requests waiting.
    pub fn queues_waiting(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, slot)| slot.waiting.load(Ordering::SeqCst) > 0)
            .map(|(queue, _)| queue.clone())
            .collect()
    }

    /// How many lease requests are waiting, over all queues.
    pub fn count(&self) -> usize {
        self.lock()
            .values()
            .map(|slot| slot.waiting.load(Ordering::SeqCst))
            .sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.queues.lock().expect("waiters lock poisoned")
    }
}

/// A lease request's place among the waiters.
#[derive(Debug)]
pub struct Waiting {
    waiters: Arc<Waiters>,
    slots: Vec<(String, Arc<Slot>)>,
}

impl Waiting {
    /// Registers for the next wake-up of any of the queues. Call before looking for tasks, so a
    /// task submitted between the look and the wait still wakes this request.
    pub fn armed(&self) -> impl Future<Output = ()> + '_ {
        let mut notified: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> = self
            .slots
            .iter()
            .map(|(_, slot)| Box::pin(slot.notify.notified()))
            .collect();
        for future in &mut notified {
            future.as_mut().enable();
        }
        async move {
            select_all(notified).await;
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut map = self.waiters.lock();
        for (queue, slot) in &self.slots {
            // Forget idle queues, so names invented by leasers do not pile up.
            if slot.waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
                map.remove(queue);
            }
        }
    }
}
