//! The operator console at `/ui/`: a client of this API, served by the master itself. Its
//! files (`master-svc/assets/console/`: the page, its ES modules, and Preact + htm and uPlot
//! vendored by `scripts/vendor-console.sh`) are inside the binary, so the console works on an
//! air-gapped cluster, and it reaches no host but the master: its Content-Security-Policy says so
//! to the browser too.
//!
//! The files hold no data and need no token; every request the console makes for data or an
//! action is an API call with the token the operator signed in with.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::Embed;
use tower_http::compression::CompressionLayer;

use super::AppState;
use super::error::ApiError;

#[derive(Embed)]
#[folder = "assets/console/"]
struct Assets;

/// Where the page may load from and connect to: the master only. (Styles set from scripts, as
/// uPlot sizes its canvases, are not inline styles to the policy.)
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `/ui` (redirected to `/ui/`, so that the page's relative URLs resolve under it) and the
/// console's files under `/ui/`, gzipped for a browser that takes it.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(to_slash))
        .route(
            "/ui/",
            get(|headers: HeaderMap| file("index.html", headers)),
        )
        .route(
            "/ui/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                file(&path, headers).await
            }),
        )
        .layer(CompressionLayer::new().gzip(true))
}

/// Relative, so that it also works behind a proxy that serves the master under a path prefix.
async fn to_slash() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static("ui/"))],
    )
        .into_response()
}

/// A file of the console, or a `404` problem. Browsers revalidate each file on load (`no-cache` with an `ETag`), so
/// a new master's console is never mixed with an old one's cached modules, and an unchanged
/// file costs a `304`.
async fn file(path: &str, headers: HeaderMap) -> Response {
    let Some(asset) = Assets::get(path) else {
        return ApiError::NotFound(format!("the console has no file `{path}`")).into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&asset.metadata.sha256_hash()[..16]));
    let common = [
        (header::ETAG, header_value(&etag)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tags| tags.as_bytes() == etag.as_bytes());
    if unchanged {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let content_type = header_value(asset.metadata.mimetype());
    (common, [(header::CONTENT_TYPE, content_type)], asset.data).into_response()
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).expect("hashes and MIME types are valid header values")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_and_style_of_the_page_is_one_of_the_console_files() {
        let page = Assets::get("index.html").expect("the page");
        let page = std::str::from_utf8(&page.data).unwrap();
        for reference in page
            .split(['"', '\''])
            .filter(|s| s.ends_with(".js") || s.ends_with(".css"))
        {
            assert!(
                Assets::get(reference).is_some(),
                "{reference} is not embedded"
            );
        }
        assert!(
            !page.contains("http"),
            "an absolute URL in the page: {page}"
        );
    }

    #[test]
    fn the_first_load_is_at_most_300_kb_gzipped() {
        use std::io::Write;
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for path in Assets::iter().filter(|p| !p.starts_with("vendor/LICENSE")) {
            gzip.write_all(&Assets::get(&path).unwrap().data).unwrap();
        }
        let size = gzip.finish().unwrap().len();
        assert!(size <= 300_000, "{size} bytes gzipped");
    }
}
