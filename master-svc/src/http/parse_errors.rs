//! Problem bodies for the answers hyper writes itself. A request whose head hyper cannot parse
//! never reaches the router: hyper answers it `400`, `414` or `431` with an empty body and closes
//! the connection, and offers no hook to write anything else. So the connection's stream is
//! wrapped, and such an answer, recognised on its way out, is replaced by the same status with
//! the problem body every other error has.
//!
//! Recognised by its shape: one of those statuses, `content-length: 0`, nothing after the head.
//! The router never answers so (its errors are [`ApiError`]s, which always have a body), so
//! nothing else is ever replaced.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use common::problem::PROBLEM_CONTENT_TYPE;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::ApiError;

/// A connection's stream whose hyper-made error answers get problem bodies.
#[derive(Debug)]
pub(super) struct ProblemOnParseError<S> {
    inner: S,
    /// The replacement answer and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<S> ProblemOnParseError<S> {
    pub(super) fn new(inner: S) -> Self {
        ProblemOnParseError {
            inner,
            replacement: None,
        }
    }
}

impl<S: AsyncWrite + Unpin> ProblemOnParseError<S> {
    /// Writes what is left of the replacement; ready once it is all written.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.replacement {
            if *written == bytes.len() {
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ProblemOnParseError<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProblemOnParseError<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_replacement(cx))?;
        if let Some(problem) = parse_error_problem(buf) {
            // hyper is told its answer went out; the replacement goes in its place.
            self.replacement = Some((answer(&problem), 0));
            ready!(self.poll_replacement(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper's error answer is a head alone, so one slice; longer writes are never one.
        if let [only] = bufs
            && parse_error_problem(only).is_some()
        {
            return self.poll_write(cx, only);
        }
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The problem for `written` if it is an answer hyper made for a request it could not parse.
fn parse_error_problem(written: &[u8]) -> Option<ApiError> {
    let head = written.strip_prefix(b"HTTP/1.1 ")?;
    let empty = head.ends_with(b"\r\n\r\n")
        && head.windows(4).filter(|w| w == b"\r\n\r\n").count() == 1
        && head
            .to_ascii_lowercase()
            .windows(21)
            .any(|w| w == b"\r\ncontent-length: 0\r\n");
    if !empty {
        return None;
    }
    match head.get(..4)? {
        b"400 " => Some(ApiError::InvalidRequest(
            "the request is not valid HTTP/1.1".into(),
        )),
        b"414 " => Some(ApiError::UriTooLong),
        b"431 " => Some(ApiError::HeadersTooLarge),
        _ => None,
    }
}

/// `problem` as a whole HTTP/1.1 answer that closes the connection.
fn answer(problem: &ApiError) -> Vec<u8> {
    let status: StatusCode = problem.status_code();
    let body = serde_json::to_vec(&problem.problem()).expect("a problem serializes");
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {PROBLEM_CONTENT_TYPE}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    answer
}

#[cfg(test)]
mod tests {
    use super::parse_error_problem;

    #[test]
    fn hypers_empty_error_answers_are_recognised() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\
                     date: Mon, 30 Nov 2026 10:00:00 GMT\r\n\r\n";
        let problem = parse_error_problem(head).unwrap();
        assert_eq!(problem.status_code(), 431);
        let head = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_error_problem(head).unwrap().status_code(), 400);
    }

    #[test]
    fn answers_with_a_body_or_another_status_are_left_alone() {
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}";
        assert!(parse_error_problem(with_body).is_none());
        let head_only = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 20\r\n\r\n";
        assert!(parse_error_problem(head_only).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(parse_error_problem(ok).is_none());
        let not_found = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert!(parse_error_problem(not_found).is_none());
    }
}
