//! What Leasehold's tests share, as a dev-dependency of the crates whose tests use it: a free
//! port of 127.0.0.1 ([`free_port`]), the workspace's built binaries ([`binary`]), the real
//! master as a child process ([`master::Master`]) and a throwaway PostgreSQL server
//! ([`postgres::fresh_database_url`]). It depends on no service crate: the services are run as
//! the binaries cargo built.

pub mod master;
pub mod postgres;

use std::path::PathBuf;

/// A port of 127.0.0.1 that was free a moment ago, for a process that must be told its port
/// (a server started in-process binds port 0 instead).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

/// The path of the workspace binary `name` (`master-svc`, `worker-svc`) of the build these tests
/// belong to.
///
/// Cargo puts a profile's binaries in `target/<profile>/` and test executables in
/// `target/<profile>/deps/`; `CARGO_BIN_EXE_<name>` exists only for a package's own binaries,
/// and a dependency's binaries are not built for tests (artifact dependencies are unstable), so
/// the binaries are found beside the running test and must be built first:
/// `cargo build --release --workspace --bins` (as `scripts/test.sh` does).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let mut dir = exe
        .parent()
        .expect("the test executable's directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace's binaries in the tests' profile first \
         (`cargo build --release --workspace --bins`, as scripts/test.sh does)",
        path.display()
    );
    path
}
