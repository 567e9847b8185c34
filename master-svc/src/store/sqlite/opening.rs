//! What is checked before a database file is used: that its directory can hold it, that no other
//! master has it open, and that it is not damaged.
//!
//! Two masters on one file would each keep their own counts and wake only their own waiters, so
//! a second one must not start. SQLite's own locks are per transaction; the master's is an OS
//! lock on a file beside the database (`PATH.lock`), held for the life of the process and
//! released by the kernel however the process ends, so a `kill -9` leaves nothing to clean up.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::Instant;

use rusqlite::Connection;

use crate::store::StoreError;

/// Says in words why `path` cannot hold a database, before SQLite's terser "unable to open".
pub(super) fn check_directory(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let fail = |why: String| {
        Err(StoreError::unusable(format!(
            "database file {}: {why}",
            path.display()
        )))
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fail(format!("its directory {} does not exist", dir.display()))
        }
        Err(e) => fail(format!("cannot read its directory {}: {e}", dir.display())),
        Ok(meta) if !meta.is_dir() => fail(format!("{} is not a directory", dir.display())),
        Ok(_) => Ok(()),
    }
}

/// Takes the lock that makes this process the only master of the database at `path`; it is
/// held until the returned file is dropped.
pub(super) fn lock(path: &Path) -> Result<File, StoreError> {
    let lock_path = path.with_extension(match path.extension() {
        Some(ext) => format!("{}.lock", ext.to_string_lossy()),
        None => "lock".to_owned(),
    });
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => StoreError::unusable(format!(
                "database file {}: its directory is not writable",
                path.display()
            )),
            _ => StoreError::unusable_by(
                format!(
                    "database file {}: cannot create {}",
                    path.display(),
                    lock_path.display()
                ),
                e,
            ),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::unusable(format!(
            "database file {} is in use by another master (it holds {}); \
             run one master per SQLite file, or share a PostgreSQL database between masters",
            path.display(),
            lock_path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(StoreError::unusable_by(
            format!("cannot lock {}", lock_path.display()),
            e,
        )),
    }
}

/// Runs `PRAGMA quick_check` (every page and index structure; not the index contents against
/// the table) and refuses a damaged database with what to do about it. Runs before migrations, which could fail on a damaged file with a less helpful message.
pub(super) fn quick_check(path: &Path) -> Result<(), StoreError> {
    let started = Instant::now();
    let problems: Vec<String> = super::schema::open_reader(path)
        .and_then(|conn| check_pages(&conn))
        .map_err(|e| damaged(path, &e.to_string()))?;
    let elapsed = started.elapsed();
    tracing::info!(database = %path.display(), ?elapsed, "integrity check done");
    match problems.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        _ => Err(damaged(path, &problems.join("; "))),
    }
}

fn check_pages(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    conn.prepare("PRAGMA quick_check")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
}

fn damaged(path: &Path, problems: &str) -> StoreError {
    StoreError::unusable(format!(
        "database file {} is damaged ({problems}). Stop the master, keep a copy of the file, \
         and recover what SQLite can read: `sqlite3 {0} .recover | sqlite3 recovered.db`, then \
         start the master on recovered.db. --skip-integrity-check starts without this check.",
        path.display()
    ))
}
