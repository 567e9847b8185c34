//! Sizing a lease by free slots: the worker's pull loop and the master's push feeders both
//! lease as many tasks as their worker has room for, and wait for room when it has none.

use std::sync::Arc;

use common::MAX_LEASE_BATCH;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Waits for one free slot, then takes every other free one too (up to a lease's maximum).
/// The master's push feeders size their leases the same way.
pub async fn free_slots(slots: &Arc<Semaphore>) -> Vec<OwnedSemaphorePermit> {
    let first = slots
        .clone()
        .acquire_owned()
        .await
        .expect("the slots semaphore is never closed");
    let mut permits = vec![first];
    while permits.len() < MAX_LEASE_BATCH as usize {
        match slots.clone().try_acquire_owned() {
            Ok(permit) => permits.push(permit),
            Err(_) => break,
        }
    }
    permits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_free_slot_is_taken_up_to_a_leases_maximum() {
        let slots = Arc::new(Semaphore::new(MAX_LEASE_BATCH as usize + 3));
        assert_eq!(free_slots(&slots).await.len(), MAX_LEASE_BATCH as usize);
    }

    #[tokio::test]
    async fn it_waits_for_a_slot_and_takes_only_what_is_free() {
        let slots = Arc::new(Semaphore::new(2));
        let held = free_slots(&slots).await;
        assert_eq!(held.len(), 2);
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { free_slots(&slots).await.len() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no slot was free");
        drop(held);
        assert_eq!(waiting.await.unwrap(), 2);
    }
}
