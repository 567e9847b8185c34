//! The `/docs` page and its viewer, served by the master itself: the page embeds the OpenAPI
//! document, and its script is Scalar's standalone bundle, vendored at a pinned version in
//! `master-svc/assets/scalar/` (what it is and how to upgrade it: the README there). Nothing is
//! loaded from the internet, so the page works on an air-gapped cluster.

use std::io::Read;
use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use flate2::read::GzDecoder;

/// `@scalar/api-reference`'s `dist/browser/standalone.js`, gzip-compressed (1.4 MB, 4.9 MB
/// unpacked): kept compressed in the binary and sent as it is to every browser.
const SCALAR_JS_GZ: &[u8] = include_bytes!("../../assets/scalar/standalone.js.gz");

/// The vendored version; it is in the script's URL, so a browser may cache each version for good.
const SCALAR_VERSION: &str = include_str!("../../assets/scalar/VERSION").trim_ascii();

/// Where the page finds the viewer: relative, so the page also works behind a path prefix.
pub(super) const SCALAR_JS_PATH: &str = "/docs/scalar.js";

/// The page; `$spec` is replaced by the document. The `api-reference` script element is the
/// viewer's HTML API; `withDefaultFonts: false` keeps it from fetching its fonts from Scalar's
/// servers (the browser's own are used).
static TEMPLATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"<!doctype html>
<html>
<head>
  <title>Leasehold API</title>
  <meta charset="utf-8"/>
  <meta name="viewport" content="width=device-width, initial-scale=1"/>
</head>
<body>
<script id="api-reference" type="application/json" data-configuration='{{"withDefaultFonts":false}}'>
$spec
</script>
<script src="docs/scalar.js?v={SCALAR_VERSION}"></script>
</body>
</html>
"#
    )
});

/// The HTML template of the `/docs` page, for `utoipa_scalar::Scalar::custom_html`.
pub(super) fn template() -> &'static str {
    TEMPLATE.as_str()
}

/// The viewer's script, compressed unless the client says it cannot take gzip.
pub(super) async fn scalar_js(headers: HeaderMap) -> Response {
    let javascript = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ];
    if accepts_gzip(&headers) {
        let gzip = (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        (javascript, [gzip], SCALAR_JS_GZ).into_response()
    } else {
        (javascript, SCALAR_JS.as_slice()).into_response()
    }
}

/// The script unpacked, for the rare client that does not take gzip (every browser does).
static SCALAR_JS: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut js = Vec::new();
    GzDecoder::new(SCALAR_JS_GZ)
        .read_to_end(&mut js)
        .expect("the vendored bundle is valid gzip");
    js
});

/// Whether `Accept-Encoding` allows gzip. No header means anything goes (RFC 9110, 12.5.3);
/// `gzip;q=0` refuses it.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::ACCEPT_ENCODING) else {
        return true;
    };
    let value = value.to_str().unwrap_or_default();
    value.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let refused = parts.any(|p| matches!(p, "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
        matches!(name, "gzip" | "x-gzip" | "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(accept: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, accept.parse().unwrap());
        headers
    }

    #[test]
    fn gzip_is_taken_when_listed_or_when_nothing_is_said() {
        assert!(accepts_gzip(&HeaderMap::new()));
        assert!(accepts_gzip(&with("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&with("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(&with("*")));
    }

    #[test]
    fn gzip_is_not_taken_when_left_out_or_refused() {
        assert!(!accepts_gzip(&with("identity")));
        assert!(!accepts_gzip(&with("br")));
        assert!(!accepts_gzip(&with("gzip;q=0, identity")));
    }

    #[test]
    fn the_template_loads_the_vendored_viewer_and_nothing_from_elsewhere() {
        let page = template();
        assert!(page.contains(&format!("src=\"docs/scalar.js?v={SCALAR_VERSION}\"")));
        assert!(
            !page.contains("http"),
            "an absolute URL in the page: {page}"
        );
        assert_eq!(SCALAR_JS_PATH, "/docs/scalar.js");
    }
}
