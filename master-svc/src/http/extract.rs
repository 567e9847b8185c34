//! Extractors whose rejections are [`ApiError`]s, so malformed input gets a problem body too.

use axum::extract::{FromRequest, FromRequestParts, Request};
use common::object::Object;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body whose top level is an object ([`Object`]): every request body of this API is an
/// object, anything else is a `400`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(Object(body)) = axum::Json::from_request(request, state).await?;
        Ok(ApiJson(body))
    }
}

/// Path parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// A query string.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);
