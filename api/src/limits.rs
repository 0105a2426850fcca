//! Limits on what one request may cost: its body's size and how long it takes to arrive
//! ([`BodyLimit`]), and how long the whole request may take ([`RequestDeadline`]); and on
//! what all requests' bodies may hold together ([`BodyLimit`]'s memory). The header read
//! timeout and the cap on connections are the server loop's (`server`).
//!
//! poem's `SizeLimit` trusts `Content-Length` and answers 411 without it (chunked uploads,
//! GETs), and multipart parsing has no cap of its own. [`BodyLimit`] refuses a declared
//! length over the cap at once and counts the bytes of every body as they are read, cutting
//! the stream at the cap, or at the read timeout; a request whose body ran over gets 413, one
//! whose body came too slowly 408, whatever the handler made of the cut stream. A body shorter
//! than its `Content-Length` is a truncated body: hyper fails the read and the request gets
//! 400 from whatever parses it, or 408 if the client then stalls.
//!
//! Every byte read also takes a permit from one semaphore shared by all requests, the body
//! memory, held until the request is answered (its parts and images live until then). A body
//! that would take more than is left gets 503 with `Retry-After`: however many clients upload
//! at once, the bodies held never exceed the memory's size.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::header::CONTENT_LENGTH;
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;

/// Middleware refusing bodies over `max_bytes` with 413, bodies still arriving after
/// `read_timeout` with 408, and bodies that would take the bytes held by all requests' bodies
/// over `memory_bytes` with 503.
#[derive(Clone)]
pub struct BodyLimit {
    max_bytes: u64,
    read_timeout: Duration,
    memory: Arc<Semaphore>,
    memory_bytes: u64,
}

impl BodyLimit {
    /// A limit of `max_bytes` per request body, to arrive within `read_timeout`, and of
    /// `memory_bytes` for all bodies held at once.
    pub fn new(max_bytes: u64, memory_bytes: u64, read_timeout: Duration) -> BodyLimit {
        let permits = usize::try_from(memory_bytes).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
        BodyLimit { max_bytes, read_timeout, memory: Arc::new(Semaphore::new(permits)), memory_bytes }
    }

    fn too_large(&self) -> poem::Error {
        ApiError::payload_too_large(format!("the request body is over the limit of {} bytes", self.max_bytes)).into()
    }

    fn too_slow(&self) -> poem::Error {
        ApiError::request_timeout(format!(
            "the request body did not arrive within {} s; send it faster",
            self.read_timeout.as_secs_f64()
        ))
        .into()
    }

    fn out_of_memory(&self) -> poem::Error {
        ApiError::unavailable(format!(
            "the server holds as many request bodies as it may ({} bytes, BODY_MEMORY_BYTES); retry shortly",
            self.memory_bytes
        ))
        .into()
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BodyLimitEndpoint { inner, limit: self.clone() }
    }
}

/// The endpoint made by [`BodyLimit`].
pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: BodyLimit,
}

/// Why a [`CappedReader`] cut its body.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Cut {
    No,
    TooLarge,
    TooSlow,
    OutOfMemory,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> Result<Response> {
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.limit.max_bytes) {
            return Err(self.limit.too_large());
        }
        let cut = Arc::new(AtomicU8::new(Cut::No as u8));
        // Held until the answer is made, whatever the handler keeps of the body meanwhile.
        let held = Arc::new(Mutex::new(None));
        let body = request.take_body().into_async_read();
        request.set_body(Body::from_async_read(CappedReader {
            inner: Box::pin(body),
            remaining: self.limit.max_bytes,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + self.limit.read_timeout)),
            cut: cut.clone(),
            memory: self.limit.memory.clone(),
            held: held.clone(),
        }));
        let result = self.inner.call(request).await.map(IntoResponse::into_response);
        drop(held);
        match cut.load(Ordering::Acquire) {
            reason if reason == Cut::TooLarge as u8 => Err(self.limit.too_large()),
            reason if reason == Cut::TooSlow as u8 => Err(self.limit.too_slow()),
            reason if reason == Cut::OutOfMemory as u8 => Err(self.limit.out_of_memory()),
            _ => result,
        }
    }
}

/// Passes at most `remaining` bytes through until `deadline`, each with a permit of `memory`
/// kept in `held`, then fails the read and says why in `cut`.
struct CappedReader {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    remaining: u64,
    deadline: Pin<Box<Sleep>>,
    cut: Arc<AtomicU8>,
    memory: Arc<Semaphore>,
    held: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
}

impl CappedReader {
    fn cut(&self, reason: Cut, message: &str) -> Poll<io::Result<()>> {
        self.cut.store(reason as u8, Ordering::Release);
        Poll::Ready(Err(io::Error::other(message.to_owned())))
    }
}

impl AsyncRead for CappedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.deadline.as_mut().poll(context).is_ready() {
            return self.cut(Cut::TooSlow, "request body read timed out");
        }
        let before = buffer.filled().len();
        let result = self.inner.as_mut().poll_read(context, buffer);
        let read = (buffer.filled().len() - before) as u64;
        if read > self.remaining {
            return self.cut(Cut::TooLarge, "request body over the size limit");
        }
        self.remaining -= read;
        if read > 0 {
            // `read` is at most `max_bytes`, which is at most the memory's size.
            let permits = u32::try_from(read).unwrap_or(u32::MAX);
            let Ok(permit) = self.memory.clone().try_acquire_many_owned(permits) else {
                return self.cut(Cut::OutOfMemory, "request bodies over the memory limit");
            };
            let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match held.as_mut() {
                Some(held) => held.merge(permit),
                None => *held = Some(permit),
            }
        }
        result
    }
}

/// Middleware answering 503 (with `Retry-After`) to a request still unanswered after
/// `timeout`; its work is dropped (an image not yet run is skipped by the inference thread).
#[derive(Clone, Copy)]
pub struct RequestDeadline {
    timeout: Duration,
}

impl RequestDeadline {
    /// A deadline of `timeout` per request.
    pub fn new(timeout: Duration) -> RequestDeadline {
        RequestDeadline { timeout }
    }
}

impl<E: Endpoint> Middleware<E> for RequestDeadline {
    type Output = RequestDeadlineEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RequestDeadlineEndpoint { inner, timeout: self.timeout }
    }
}

/// The endpoint made by [`RequestDeadline`].
pub struct RequestDeadlineEndpoint<E> {
    inner: E,
    timeout: Duration,
}

impl<E: Endpoint> Endpoint for RequestDeadlineEndpoint<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> Result<Response> {
        match tokio::time::timeout(self.timeout, self.inner.call(request)).await {
            Ok(result) => result.map(IntoResponse::into_response),
            Err(_) => Err(ApiError::unavailable(format!(
                "the request did not finish within {} s; retry shortly",
                self.timeout.as_secs_f64()
            ))
            .into()),
        }
    }
}
