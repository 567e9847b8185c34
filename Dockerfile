# syntax=docker/dockerfile:1
#
# Leasehold images, one target per service:
#
#   docker build --target master -t registry.example.com/leasehold/master:0.1.0 .
#   docker build --target worker -t registry.example.com/leasehold/worker:0.1.0 .
#
# The dependencies are compiled in a layer of their own (cargo-chef): it is rebuilt only when
# Cargo.toml or Cargo.lock change, so a source change recompiles the workspace crates only.
# The runtime is distroless: glibc, CA certificates and tzdata, no shell, no package manager, and
# user 65532 ("nonroot"). Both binaries are built in one `cargo build`, which the two targets share.

# Debian 12 on both sides, so the binaries link against the glibc they run with.
FROM rust:1.95.0-slim-bookworm AS chef
WORKDIR /src
RUN cargo install cargo-chef --locked --version 0.1.78

# The recipe: every manifest and the lockfile, with the sources stubbed out.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# The cached layer: every dependency (rusqlite's bundled SQLite included), nothing of ours.
RUN cargo chef cook --release --locked --recipe-path recipe.json \
        --package master-svc --package worker-svc
COPY . .
# Debug info (line tables, ~40 MB) is stripped; symbol names stay, so backtraces still name
# functions.
RUN cargo build --release --locked --bin master-svc --bin worker-svc \
    && mkdir -p /out/bin /out/data \
    && cp target/release/master-svc target/release/worker-svc /out/bin/ \
    && strip --strip-debug /out/bin/*

FROM gcr.io/distroless/cc-debian12:nonroot AS master
COPY --from=builder /out/bin/master-svc /usr/local/bin/master-svc
# The SQLite file lives in /data, owned by the runtime user, so a volume mounted there (a PVC on
# Kubernetes, a named volume with `docker run -v`) is writable; nothing else is written, so the
# root filesystem can be read-only.
COPY --from=builder --chown=65532:65532 /out/data /data
ENV LEASEHOLD_DATABASE_URL=sqlite:/data/leasehold.db
# Numeric, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/master-svc"]

# The worker has no shell: an `exec:` handler needs an image of your own with the tools it runs
# (see k8s/README.md, "Handlers that run programs").
FROM gcr.io/distroless/cc-debian12:nonroot AS worker
COPY --from=builder /out/bin/worker-svc /usr/local/bin/worker-svc
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/worker-svc"]
