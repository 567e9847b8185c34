//! The tokens file (`--tokens-file`) and the set of tokens the master knows: each token's
//! SHA-256 digest with the caller it names. The master keeps only digests, so neither a
//! memory dump nor a `Debug` print shows a token, and no error message quotes one.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use common::Role;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Caller, Scope};

/// What the tokens file holds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

/// One token of the file: a plain `token` or its `sha256` digest (hex), never both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    token: Option<String>,
    sha256: Option<String>,
    role: Role,
    queues: Option<Vec<String>>,
}

/// Why a tokens file cannot be used. No variant holds a token.
#[derive(Debug, thiserror::Error)]
pub enum TokensFileError {
    #[error("cannot read tokens file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// serde's message names the line and column, never the value.
    #[error("tokens file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

type Sha256Digest = [u8; 32];

/// A known token: its digest and who it is.
#[derive(Debug, Clone)]
struct Known {
    digest: Sha256Digest,
    caller: Caller,
}

/// Every token the master accepts, by digest.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    known: Vec<Known>,
}

impl TokenSet {
    /// The tokens of the file at `path` (if any), then `--api-token` as `admin` named
    /// `api-token` and `--worker-token` as `worker` named `worker-token`.
    pub fn load(
        path: Option<&Path>,
        api_token: Option<&str>,
        worker_token: Option<&str>,
    ) -> Result<TokenSet, TokensFileError> {
        let mut set = match path {
            Some(path) => read(path)?,
            None => TokenSet::default(),
        };
        let legacy = [
            (api_token, "api-token", Role::Admin),
            (worker_token, "worker-token", Role::Worker),
        ];
        for (token, name, role) in legacy {
            if let Some(token) = token {
                let caller = Caller::new(name, role, Scope::all());
                set.known.push(Known {
                    digest: digest(token.as_bytes()),
                    caller,
                });
            }
        }
        Ok(set)
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// The caller `presented` names, if any. Every digest is compared, in constant time, so
    /// that the time taken says nothing about which token came close.
    pub fn identify(&self, presented: &str) -> Option<&Caller> {
        let presented = digest(presented.as_bytes());
        let mut found = None;
        for known in &self.known {
            if bool::from(known.digest.ct_eq(&presented)) {
                found = found.or(Some(&known.caller));
            }
        }
        found
    }
}

fn digest(bytes: &[u8]) -> Sha256Digest {
    Sha256::digest(bytes).into()
}

/// Reads and checks the tokens file at `path`.
fn read(path: &Path) -> Result<TokenSet, TokensFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TokensFileError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&text).map_err(|message| TokensFileError::Invalid {
        path: shown,
        message,
    })
}

/// The tokens of a file's text, or what is wrong with it (without quoting a token).
fn parse(text: &str) -> Result<TokenSet, String> {
    let file: TokensFile = serde_json::from_str(text).map_err(|e| without_value(&e))?;
    let mut names = HashSet::new();
    let mut digests = HashSet::new();
    let mut known = Vec::with_capacity(file.tokens.len());
    for (i, entry) in file.tokens.into_iter().enumerate() {
        let name = entry.name.clone();
        let at = |problem: &str| format!("tokens[{i}] (`{name}`): {problem}");
        if name.is_empty() || !names.insert(name.clone()) {
            return Err(at("names must be present and unique"));
        }
        let digest = entry_digest(&entry).map_err(|problem| at(&problem))?;
        if !digests.insert(digest) {
            return Err(at("the same token as an earlier entry"));
        }
        let scope = match entry.queues {
            None => Scope::all(),
            Some(prefixes) if prefixes.is_empty() || prefixes.iter().any(String::is_empty) => {
                return Err(at(
                    "`queues` must list non-empty prefixes (leave it out for every queue)",
                ));
            }
            Some(prefixes) => Scope::prefixes(prefixes),
        };
        let caller = Caller::new(&name, entry.role, scope);
        known.push(Known { digest, caller });
    }
    Ok(TokenSet { known })
}

/// serde's message with the value it choked on left out: it quotes that value first (`invalid
/// type: string "…"`, `unknown variant `…``), and that value may be a token in the wrong place.
fn without_value(e: &serde_json::Error) -> String {
    static QUOTED: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r#"`[^`]*`|"[^"]*""#).expect("a regex"));
    QUOTED
        .replacen(&e.to_string(), 1, "(value left out)")
        .into_owned()
}

/// The entry's digest: of its `token`, or its `sha256` as given.
fn entry_digest(entry: &TokenEntry) -> Result<Sha256Digest, String> {
    match (&entry.token, &entry.sha256) {
        (Some(token), None) if !token.is_empty() => Ok(digest(token.as_bytes())),
        (None, Some(hex_digest)) => {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(hex_digest, &mut bytes)
                .map_err(|_| "`sha256` must be 64 hexadecimal digits".to_owned())?;
            Ok(bytes)
        }
        _ => Err("give exactly one of a non-empty `token` or `sha256`".into()),
    }
}

/// The token set the master uses now, replaced as a whole on reload.
pub type Current = Arc<std::sync::RwLock<Arc<TokenSet>>>;

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret-token-value";

    #[test]
    fn a_plain_token_and_its_digest_name_the_same_caller() {
        let hex_digest = hex::encode(digest(SECRET.as_bytes()));
        let text = format!(
            r#"{{"tokens": [{{"name": "ci", "sha256": "{hex_digest}", "role": "producer",
                "queues": ["billing-"]}}]}}"#
        );
        let set = parse(&text).unwrap();
        let caller = set.identify(SECRET).expect("known");
        assert_eq!(&*caller.name, "ci");
        assert_eq!(caller.role, Role::Producer);
        assert!(caller.scope.allows("billing-eu"));
        assert!(!caller.scope.allows("reports"));
        assert!(set.identify("other").is_none());
    }

    #[test]
    fn an_invalid_file_is_refused_without_quoting_its_tokens() {
        for text in [
            format!(r#"{{"tokens": [{{"name": "a", "token": "{SECRET}", "role": "boss"}}]}}"#),
            format!(
                r#"{{"tokens": [{{"name": "a", "token": "{SECRET}", "sha256": "00", "role": "admin"}}]}}"#
            ),
            format!(
                r#"{{"tokens": [{{"name": "a", "token": "{SECRET}", "role": "admin"}},
                    {{"name": "b", "token": "{SECRET}", "role": "admin"}}]}}"#
            ),
            format!(
                r#"{{"tokens": [{{"name": "a", "token": "{SECRET}", "role": "admin", "queues": []}}]}}"#
            ),
            r#"{"tokens": [{"name": "a", "sha256": "zz", "role": "admin"}]}"#.to_owned(),
            // A token pasted into the wrong field is quoted by serde's message.
            format!(r#"{{"tokens": [{{"name": "a", "token": "x", "role": "{SECRET}"}}]}}"#),
            format!(
                r#"{{"tokens": [{{"name": "a", "token": "x", "role": "admin", "queues": "{SECRET}"}}]}}"#
            ),
        ] {
            let message = parse(&text).expect_err(&text);
            assert!(!message.contains(SECRET), "{message}");
        }
    }

    #[test]
    fn legacy_tokens_are_an_admin_and_a_worker() {
        let set = TokenSet::load(None, Some("op"), Some("wk")).unwrap();
        assert_eq!(set.identify("op").unwrap().role, Role::Admin);
        assert_eq!(&*set.identify("op").unwrap().name, "api-token");
        assert_eq!(set.identify("wk").unwrap().role, Role::Worker);
    }
}
