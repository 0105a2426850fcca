//! A cap on request bodies that also works without `Content-Length`.
//!
//! poem's `SizeLimit` trusts `Content-Length` and answers 411 without it (chunked uploads,
//! GETs), and multipart parsing has no cap of its own. [`BodyLimit`] refuses a declared
//! length over the cap at once and counts the bytes of every body as they are read, cutting
//! the stream at the cap; a request whose body ran over gets 413 whatever the handler made
//! of the cut stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use poem::http::header::CONTENT_LENGTH;
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};
use tokio::io::{AsyncRead, ReadBuf};

use crate::error::ApiError;

/// Middleware refusing bodies over `max_bytes` with 413.
pub struct BodyLimit {
    max_bytes: u64,
}

impl BodyLimit {
    /// A limit of `max_bytes` per request body.
    pub fn new(max_bytes: u64) -> BodyLimit {
        BodyLimit { max_bytes }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BodyLimitEndpoint { inner, max_bytes: self.max_bytes }
    }
}

/// The endpoint made by [`BodyLimit`].
pub struct BodyLimitEndpoint<E> {
    inner: E,
    max_bytes: u64,
}

impl<E> BodyLimitEndpoint<E> {
    fn too_large(&self) -> poem::Error {
        ApiError::payload_too_large(format!("the request body is over the limit of {} bytes", self.max_bytes)).into()
    }
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> Result<Response> {
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_bytes) {
            return Err(self.too_large());
        }
        let exceeded = Arc::new(AtomicBool::new(false));
        let body = request.take_body().into_async_read();
        request.set_body(Body::from_async_read(CappedReader {
            inner: Box::pin(body),
            remaining: self.max_bytes,
            exceeded: exceeded.clone(),
        }));
        let result = self.inner.call(request).await.map(IntoResponse::into_response);
        if exceeded.load(Ordering::Acquire) {
            return Err(self.too_large());
        }
        result
    }
}

/// Passes at most `remaining` bytes through, then fails the read and raises `exceeded`.
struct CappedReader {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    remaining: u64,
    exceeded: Arc<AtomicBool>,
}

impl AsyncRead for CappedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buffer.filled().len();
        let result = self.inner.as_mut().poll_read(context, buffer);
        let read = (buffer.filled().len() - before) as u64;
        if read > self.remaining {
            self.exceeded.store(true, Ordering::Release);
            return Poll::Ready(Err(io::Error::other("request body over the size limit")));
        }
        self.remaining -= read;
        result
    }
}
