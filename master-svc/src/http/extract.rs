//! Extractors whose rejections are [`ApiError`]s, so malformed input gets a problem body too.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use common::TaskId;
use common::object::Object;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The one media type request bodies are read as.
const JSON: &str = "application/json";

/// A JSON body whose top level is an object ([`Object`]): every request body of this API is an
/// object, anything else is a `400`. Its `Content-Type` must be `application/json`, in UTF-8.
#[derive(Debug)]
pub(super) struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        json_content_type(request.headers(), &[JSON])?;
        let axum::Json(Object(body)) = axum::Json::from_request(request, state).await?;
        Ok(ApiJson(body))
    }
}

/// The media type of a JSON merge patch (RFC 7396).
const MERGE_PATCH: &str = "application/merge-patch+json";

/// A JSON merge patch: an object, sent as `application/merge-patch+json` (or plain
/// `application/json`, which curl users send), in UTF-8.
#[derive(Debug)]
pub(super) struct MergePatch(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for MergePatch {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        json_content_type(request.headers(), &[MERGE_PATCH, JSON])?;
        // axum reads any `+json` type as JSON.
        let axum::Json(Object(patch)) = axum::Json::from_request(request, state).await?;
        Ok(MergePatch(patch))
    }
}

/// Refuses (`415`) a body that is not of one of the `accepted` types, in UTF-8. axum alone also
/// reads `application/problem+json` (or any `+json`) and any charset as JSON, and JSON text that
/// is not UTF-8 is not JSON (RFC 8259) and would be misread.
fn json_content_type(headers: &HeaderMap, accepted: &[&str]) -> Result<(), ApiError> {
    let expected = accepted.join("` or `");
    let refused = |sent: &str| {
        ApiError::UnsupportedMediaType(format!(
            "expected `Content-Type: {expected}` (charset utf-8 if any), not `{}`",
            crate::engine::validate::echo(sent)
        ))
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "expected `Content-Type: {expected}`"
        )));
    };
    let sent = value.to_str().map_err(|_| refused("(not text)"))?;
    let mime: mime::Mime = sent.parse().map_err(|_| refused(sent))?;
    let utf8 = mime
        .get_param(mime::CHARSET)
        .is_none_or(|charset| charset.as_str().eq_ignore_ascii_case("utf-8"));
    if !accepted.contains(&mime.essence_str()) || !utf8 {
        return Err(refused(sent));
    }
    Ok(())
}

/// Path parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(super) struct ApiPath<T>(pub T);

/// A query string.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(super) struct ApiQuery<T>(pub T);

/// The `{id}` of a task's path, read by [`TaskId`]'s strict parser: axum's would take `+1` and
/// `01` as task 1.
#[derive(Debug)]
pub(super) struct TaskIdPath(pub TaskId);

impl<S: Send + Sync> FromRequestParts<S> for TaskIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let ApiPath(text) = ApiPath::<String>::from_request_parts(parts, state).await?;
        let id = text.parse().map_err(ApiError::InvalidRequest)?;
        Ok(TaskIdPath(id))
    }
}
