//! The audit log of operator actions: recorded as each is answered, read newest first, and
//! purged by the reaper once older than the retention (`--audit-retention-secs`).

use std::time::Duration;

use common::{AuditEntry, AuditOutcome, AuditPage, ListAudit};

use super::{Engine, EngineError, Result, validate, view};
use crate::model::AuditRecord;

/// Audit entries deleted per store call.
const PURGE_BATCH: u32 = 1_000;

impl Engine {
    /// Keeps audit entries for `retention`; `None`: for good.
    pub fn with_audit_retention(mut self, retention: Option<Duration>) -> Engine {
        self.audit_retention = retention;
        self
    }

    /// Records, durably, that `actor` asked for `action` on `target` and was answered `status`.
    pub async fn record_audit(
        &self,
        actor: &str,
        action: &str,
        target: String,
        status: u16,
    ) -> Result<()> {
        let record = AuditRecord {
            id: 0,
            at: self.clock.now_ms(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target,
            status,
        };
        Ok(self.store.record_audit(record).await?)
    }

    /// A page of the audit log, newest first, older than the cursor's entry.
    pub async fn audit_page(&self, query: ListAudit) -> Result<AuditPage> {
        let limit = validate::in_range(
            "limit",
            query.limit.unwrap_or(100),
            1,
            common::MAX_LIST_LIMIT,
        )?;
        let before_id = match query.cursor.as_deref() {
            Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| {
                EngineError::Invalid(format!("`cursor` `{cursor}` is not one this API returned"))
            })?),
            None => None,
        };
        let records = self.store.audit_page(before_id, limit).await?;
        let next_cursor = (records.len() == limit as usize)
            .then(|| records.last().map(|record| record.id.to_string()))
            .flatten();
        let entries = records.into_iter().map(entry).collect();
        Ok(AuditPage {
            entries,
            next_cursor,
        })
    }

    /// Deletes audit entries older than the retention, if there is one.
    pub(super) async fn purge_audit(&self) -> Result<()> {
        if let Some(retention) = self.audit_retention {
            let before = self.clock.now_ms() - retention.as_millis() as i64;
            while self.store.purge_audit(before, PURGE_BATCH).await? == PURGE_BATCH as usize {}
        }
        Ok(())
    }
}

fn entry(record: AuditRecord) -> AuditEntry {
    AuditEntry {
        id: record.id,
        at: view::timestamp(record.at),
        actor: record.actor,
        action: record.action,
        target: record.target,
        outcome: AuditOutcome::of_status(record.status),
        status: record.status,
    }
}
