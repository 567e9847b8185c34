//! What each role may do: a role is a set of [`Action`]s, and every guarded route names the
//! action it needs (`http::access::ROUTES`). Adding an endpoint is one line there, naming an
//! existing action or a new one added here, to the roles that should have it.

use common::Role;

/// Something a request asks the master to do. The queue a request concerns is checked apart
/// ([`super::Scope`]); an action says only what kind of thing is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `GET /whoami`: every role.
    WhoAmI,
    /// Submit tasks, one or a batch.
    Submit,
    /// Read tasks and their results (`GET /tasks`, `GET /tasks/{id}`).
    ReadTasks,
    /// Read queues' counts and settings.
    ReadQueues,
    /// Lease tasks.
    Lease,
    /// Heartbeat, report a result or release a leased task.
    Report,
    /// Register (and renew) or withdraw a push worker's own registration.
    RegisterWorker,
    /// List push workers.
    ListWorkers,
    /// Read the audit log.
    ReadAudit,
    /// Cancel a task. Audited, as are the actions below.
    Cancel,
    /// Put a failed or cancelled task back in its queue.
    Retry,
    Seal,
    Unseal,
    Pause,
    Resume,
    /// Change a queue's limits and settings (`PATCH /queues/{name}`).
    SetLimits,
    /// Take a push worker out of rotation.
    RemoveWorker,
    Bulk,
    ReadOperations,
}

use Action::*;

/// Every action, for the roles that have them all.
const ALL: &[Action] = &[
    WhoAmI,
    Submit,
    ReadTasks,
    ReadQueues,
    Lease,
    Report,
    RegisterWorker,
    ListWorkers,
    ReadAudit,
    Cancel,
    Retry,
    Seal,
    Unseal,
    Pause,
    Resume,
    SetLimits,
    RemoveWorker,
    Bulk,
    ReadOperations,
];

/// The roles table: the actions each role may take.
pub fn actions(role: Role) -> &'static [Action] {
    match role {
        Role::Producer => &[WhoAmI, Submit, ReadTasks],
        Role::Worker => &[WhoAmI, Lease, Report, RegisterWorker],
        // An operator may do everything, but only on its queues (its scope, if any).
        Role::Operator | Role::Admin => ALL,
        // Every `GET`: a dashboard or an autoscaler's view.
        Role::ReadOnly => &[
            WhoAmI,
            ReadTasks,
            ReadQueues,
            ListWorkers,
            ReadAudit,
            ReadOperations,
        ],
    }
}

/// Whether `role` may take `action`.
pub fn allows(role: Role, action: Action) -> bool {
    actions(role).contains(&action)
}

impl Action {
    /// The action's name, as the audit log and `403` problems say it.
    pub fn name(self) -> &'static str {
        match self {
            WhoAmI => "whoami",
            Submit => "submit",
            ReadTasks => "read_tasks",
            ReadQueues => "read_queues",
            Lease => "lease",
            Report => "report",
            RegisterWorker => "register_worker",
            ListWorkers => "list_workers",
            ReadAudit => "read_audit",
            Cancel => "cancel",
            Retry => "retry",
            Seal => "seal",
            Unseal => "unseal",
            Pause => "pause",
            Resume => "resume",
            SetLimits => "set_limits",
            RemoveWorker => "remove_worker",
            Bulk => "bulk",
            ReadOperations => "read_operations",
        }
    }

    /// Whether the audit log records it: the operator actions, which change what other people's
    /// tasks do.
    pub fn audited(self) -> bool {
        matches!(
            self,
            Cancel | Retry | Seal | Unseal | Pause | Resume | SetLimits | RemoveWorker | Bulk
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_takes_no_audited_action() {
        assert!(!actions(Role::ReadOnly).iter().any(|a| a.audited()));
    }

    #[test]
    fn every_role_may_ask_who_it_is() {
        for role in [
            Role::Producer,
            Role::Worker,
            Role::Operator,
            Role::ReadOnly,
            Role::Admin,
        ] {
            assert!(allows(role, WhoAmI), "{role:?}");
        }
    }
}
