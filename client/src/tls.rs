//! The TLS configuration every HTTP client of Leasehold starts from: rustls on ring, trusting
//! the system's CA certificates (or those `SSL_CERT_FILE` / `SSL_CERT_DIR` name).

use std::sync::{Arc, OnceLock};

/// The start of every HTTP client of the services (the worker's client of the master, its
/// sidecar handler's, the master's push client) and of their tests and benchmark: reqwest over
/// rustls, trusting the system's CA certificates, or those `SSL_CERT_FILE` or `SSL_CERT_DIR`
/// name. Without any, https fails at the handshake and plain http still works.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(tls_config())
}

/// A client from [`http_client_builder`] with reqwest's defaults.
pub fn http_client() -> reqwest::Client {
    http_client_builder()
        .build()
        .expect("a client with a preconfigured TLS backend always builds")
}

/// The TLS configuration shared by every client, the certificates read once per process.
fn tls_config() -> rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "CA certificates not loaded");
        }
        let mut roots = rustls::RootCertStore::empty();
        let (_, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::warn!(ignored, "CA certificates that do not parse are ignored");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls' default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    });
    config.clone()
}
