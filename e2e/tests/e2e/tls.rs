//! https: a worker pulling from a master behind TLS, and a master pushing to a worker behind
//! TLS. A TLS-terminating proxy stands in front of the service, as an ingress or a sidecar
//! would, with a certificate from a throwaway CA that the client is told to trust through
//! `SSL_CERT_FILE`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::TaskState;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};

use crate::cluster::{Cluster, Process, free_port, payload, start_worker, wait_ready};

/// TLS for 127.0.0.1 on a port of its own, each connection forwarded to a plain-HTTP service.
struct TlsFront {
    /// `https://127.0.0.1:PORT`
    url: String,
    /// The PEM file of the CA that signed the front's certificate.
    ca_file: PathBuf,
    accepting: JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl TlsFront {
    /// Starts a front for the service on `backend_port`, its CA written to `dir/ca.pem`.
    async fn start(dir: &Path, backend_port: u16) -> TlsFront {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut backend) = TcpStream::connect(("127.0.0.1", backend_port)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
                });
            }
        });
        TlsFront {
            url,
            ca_file,
            accepting,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_pulls_from_a_master_behind_https() {
    let cluster = Cluster::start().await;
    let front = TlsFront::start(cluster.dir.path(), cluster.port()).await;
    let port = free_port();
    let args = [
        "--master",
        &front.url,
        "--id",
        "w-tls",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]
    .map(str::to_owned);
    let log = cluster.dir.path().join("w-tls.log");
    let trust = [("SSL_CERT_FILE", front.ca_file.as_path())];
    let _worker = Process::spawn("worker-svc", &args, &trust, log);
    wait_ready(&format!("http://127.0.0.1:{port}/healthz")).await;

    let task = cluster.submit(payload("over https")).await;

    let done = cluster
        .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(20))
        .await;
    assert_eq!(done.worker_id.as_deref(), Some("w-tls"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_pushes_to_a_worker_behind_https() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let master = format!("http://127.0.0.1:{port}");
    let (_worker, worker_url) = start_worker(&master, dir.path(), "w1", &["--no-pull"]).await;
    let worker_port = worker_url.rsplit(':').next().unwrap().parse().unwrap();
    let front = TlsFront::start(dir.path(), worker_port).await;
    let ca_file = front.ca_file.clone();
    let trust = [("SSL_CERT_FILE", ca_file.as_path())];
    let cluster = Cluster::start_with(dir, port, &["--push-worker", &front.url], &trust).await;

    let task = cluster.submit(payload("over https")).await;

    let done = cluster
        .wait_for_state(task.id, TaskState::Succeeded, Duration::from_secs(20))
        .await;
    assert_eq!(done.worker_id.as_deref(), Some(front.url.as_str()));
}
