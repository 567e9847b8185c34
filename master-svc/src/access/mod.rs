//! Who may do what: the tokens the master knows ([`tokens`]), each naming a caller with a role
//! and a queue scope, and what each role may do ([`roles`]). The HTTP layer identifies the
//! caller of each request and checks its route's action against these; the handlers check the
//! queues a request concerns against the caller's [`Scope`].

pub mod reload;
pub mod roles;
pub mod tokens;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use common::{Role, WhoAmI};

pub use roles::Action;
use tokens::{TokenSet, TokensFileError};

/// Queue-name prefixes a token is limited to, or every queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(Option<Vec<String>>);

impl Scope {
    /// Every queue.
    pub fn all() -> Scope {
        Scope(None)
    }

    /// Queues whose name starts with one of `prefixes`.
    pub fn prefixes(prefixes: Vec<String>) -> Scope {
        Scope(Some(prefixes))
    }

    pub fn allows(&self, queue: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|prefixes| prefixes.iter().any(|p| queue.starts_with(p.as_str())))
    }

    /// Whether the scope is every queue.
    pub fn is_all(&self) -> bool {
        self.0.is_none()
    }

    pub fn prefixes_list(&self) -> Option<&[String]> {
        self.0.as_deref()
    }
}

/// Who asked: a token's name, its role and its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Shared, as every request of a token carries it.
    pub name: Arc<str>,
    pub role: Role,
    pub scope: Scope,
}

impl Caller {
    pub fn new(name: &str, role: Role, scope: Scope) -> Caller {
        Caller {
            name: name.into(),
            role,
            scope,
        }
    }

    /// Whoever calls a master without tokens: may do everything.
    pub fn anonymous() -> Caller {
        Caller::new("anonymous", Role::Admin, Scope::all())
    }

    pub fn may(&self, action: Action) -> bool {
        roles::allows(self.role, action)
    }

    pub fn whoami(&self) -> WhoAmI {
        WhoAmI {
            name: self.name.to_string(),
            role: self.role,
            queues: self.scope.prefixes_list().map(<[String]>::to_vec),
        }
    }
}

/// Where the tokens come from, and the set read from there last.
#[derive(Debug)]
pub struct Access {
    file: Option<PathBuf>,
    api_token: Option<String>,
    worker_token: Option<String>,
    current: RwLock<Arc<TokenSet>>,
}

impl Access {
    /// Reads the tokens file (if any) and the legacy tokens; an unusable file is an error.
    pub fn load(
        file: Option<PathBuf>,
        api_token: Option<String>,
        worker_token: Option<String>,
    ) -> Result<Access, TokensFileError> {
        let set = TokenSet::load(
            file.as_deref(),
            api_token.as_deref(),
            worker_token.as_deref(),
        )?;
        Ok(Access {
            file,
            api_token,
            worker_token,
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// Reads the tokens file again; on success its tokens replace the old ones, on failure the
    /// old ones stay. Returns how many tokens there now are.
    pub fn reload(&self) -> Result<usize, TokensFileError> {
        let set = TokenSet::load(
            self.file.as_deref(),
            self.api_token.as_deref(),
            self.worker_token.as_deref(),
        )?;
        let count = set.len();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        Ok(count)
    }

    /// The tokens file, if the master has one.
    pub fn file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }

    /// The caller a request with `presented` (its bearer token, if any) is made by, for an
    /// action the `worker` role has (`for_workers`) or not; `None` if it needs a token it did
    /// not present.
    ///
    /// A master without any token is open: everyone is [`Caller::anonymous`]. As before roles
    /// existed, a master whose only token is `--worker-token` keeps every action but the
    /// workers' open.
    pub fn identify(&self, presented: Option<&str>, for_workers: bool) -> Option<Caller> {
        // A std lock, held for a lookup with no await: cheaper than Tokio's, and a reload
        // swaps one pointer.
        let set = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(caller) = presented.and_then(|token| set.identify(token)) {
            return Some(caller.clone());
        }
        let only_workers_guarded = self.file.is_none() && self.api_token.is_none();
        let open = set.is_empty() || only_workers_guarded && !for_workers;
        open.then(Caller::anonymous)
    }
}
