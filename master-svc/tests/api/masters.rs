//! `GET /masters`: the store, and the masters whose heartbeat it holds. On PostgreSQL, two
//! masters on one database list each other, and each lists the workers the other one leased to.

use std::sync::Arc;
use std::time::Duration;

use common::{LeaseRequest, StoreKind, SubmitTask, WorkerRequest};
use leasehold_client::MasterClient;
use master_svc::engine::Engine;
use master_svc::{Application, Config};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::helpers::{on_postgres, spawn_app};

#[tokio::test]
async fn a_master_lists_itself_with_its_store_version_and_uptime() {
    let app = spawn_app().await;
    app.engine.beat().await.expect("heartbeat written");

    let list = app.master_list().await;

    let store = if on_postgres() {
        StoreKind::Postgres
    } else {
        StoreKind::Sqlite
    };
    assert_eq!(list.store, store);
    assert_eq!(list.masters.len(), 1, "{list:?}");
    let master = &list.masters[0];
    assert!(master.this);
    assert_eq!(master.id, app.engine.master_id());
    assert!(master.id.contains(&format!("-{}-", std::process::id())));
    assert_eq!(master.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(master.seen_at.unix_timestamp(), app.now_ms() / 1000);
    assert!(master.started_at <= master.seen_at);
}

#[tokio::test]
async fn a_master_answering_lists_itself_however_old_its_heartbeat_and_a_beat_renews_it() {
    let app = spawn_app().await;
    app.engine.beat().await.expect("heartbeat written");

    app.advance(Duration::from_secs(3600)).await;
    let stale = app.master_list().await.masters;
    app.engine.beat().await.expect("heartbeat written");
    let fresh = app.master_list().await.masters;

    assert_eq!(stale.len(), 1);
    assert!(stale[0].this);
    assert!(stale[0].uptime_secs >= 3600);
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].seen_at.unix_timestamp(), app.now_ms() / 1000);
}

/// A master started on `database_url` that a test can stop.
struct Running {
    client: MasterClient,
    engine: Arc<Engine>,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<std::io::Result<()>>,
}

async fn start(database_url: &str) -> Running {
    let mut config = Config::for_sqlite("127.0.0.1:0".parse().unwrap(), "unused".as_ref());
    config.database_url = database_url.to_owned();
    config.database_max_connections = 4;
    config.tick_ms = 3_600_000;
    let app = Application::build(config).await.expect("master starts");
    let client = MasterClient::new(&format!("http://127.0.0.1:{}", app.port()), None);
    let engine = app.engine();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    engine.beat().await.expect("heartbeat written");
    Running {
        client,
        engine,
        stop,
        serving,
    }
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.serving.await.unwrap().expect("master stops cleanly");
    }
}

#[tokio::test]
async fn two_masters_on_one_database_list_each_other_and_the_workers_either_leased_to() {
    if !on_postgres() {
        return;
    }
    let url = leasehold_testkit::postgres::fresh_database_url();
    let (a, b) = (start(&url).await, start(&url).await);

    let seen_by_a = a.client.masters().await.unwrap();
    assert_eq!(seen_by_a.store, StoreKind::Postgres);
    let ids: Vec<(&str, bool)> = seen_by_a
        .masters
        .iter()
        .map(|m| (m.id.as_str(), m.this))
        .collect();
    // Newest start first: b, then a.
    assert_eq!(
        ids,
        [(b.engine.master_id(), false), (a.engine.master_id(), true)]
    );

    for i in 0..3 {
        a.client.submit(&SubmitTask::new(json!(i))).await.unwrap();
    }
    let request = LeaseRequest {
        max_tasks: Some(2),
        ..LeaseRequest::new("w01")
    };
    assert_eq!(a.client.lease(&request).await.unwrap().tasks.len(), 2);

    let pulling = b.client.workers().await.unwrap().pull_workers;
    assert_eq!(pulling.len(), 1, "{pulling:?}");
    assert_eq!(pulling[0].id, "w01");
    assert_eq!(pulling[0].queues, ["default"]);
    assert_eq!(pulling[0].in_flight, 2);
    assert_eq!(pulling[0].last_seen, WorkerRequest::Lease);

    let b_id = b.engine.master_id().to_owned();
    b.stop().await;
    let left = a.client.masters().await.unwrap().masters;
    assert!(left.iter().all(|m| m.id != b_id), "{left:?}");
    assert_eq!(left.len(), 1);
}
