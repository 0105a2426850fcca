//! The accept loop: serves the app's endpoint over HTTP/1.1 connections, each bounded in the
//! time its headers may take, with a cap on open connections, and drains on shutdown.
//!
//! poem's own `Server` sets no header read timeout (hyper needs a timer for one), so a client
//! sending its headers a byte at a time could hold a connection forever. Here hyper gets a
//! timer and `HEADER_READ_TIMEOUT_SECS`. When it runs out, a client that had started a request
//! gets a 408 with the usual JSON error body (written by the loop, which shares the socket with
//! hyper through [`Connection`]); an idle kept-alive connection, which hyper times out the
//! same way, is closed without one, so that a client reusing it at that moment never reads a
//! 408 for a request it had not sent (a refusal of a request with a body closes its
//! connection, so the unread rest of that body cannot pass for a new request; a pipelined
//! request that stalls behind an answered one is closed without a 408). At most
//! `MAX_CONNECTIONS` connections are served at
//! once; the next client waits in the listen backlog until one closes.
//!
//! On the shutdown signal the listener is closed at once (new clients are refused), kept-alive
//! connections are closed once their in-flight request is answered (with `Connection: close`),
//! and the loop returns when every connection is done, or when the drain timeout has passed.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use poem::endpoint::BoxEndpoint;
use poem::http::HeaderValue;
use poem::http::header::CONNECTION;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::error::ErrorBody;

/// How connections are bounded.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Longest a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// After the shutdown signal, longest the in-flight requests may run.
    pub drain_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see the module doc).
pub async fn serve(
    listener: TcpListener,
    app: BoxEndpoint<'static>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let app = Arc::new(app);
    let local = listener.local_addr().ok();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept_within(&listener, &permits) => accepted,
        };
        let Some((stream, remote, permit)) = accepted else { continue };
        let connection = Connection::new(stream);
        let service = service_fn({
            let app = app.clone();
            move |request: hyper::Request<Incoming>| {
                let app = app.clone();
                async move {
                    let has_body = !request.body().is_end_stream();
                    let request = poem::Request::from((
                        request,
                        LocalAddr(local.map_or_else(Addr::default, Addr::SocketAddr)),
                        RemoteAddr(Addr::SocketAddr(remote)),
                        Scheme::HTTP,
                    ));
                    let mut response: hyper::Response<BoxBody<Bytes, std::io::Error>> =
                        app.get_response(request).await.into();
                    // A refusal may come before its body was read; hyper would read the rest
                    // after answering, and the connection would look like a request begun.
                    if has_body && (response.status().is_client_error() || response.status().is_server_error()) {
                        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
                    }
                    Ok::<_, Infallible>(response)
                }
            }
        });
        let served = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(connection.clone()), service);
        let served = graceful.watch(served);
        tokio::spawn(async move {
            if let Err(error) = served.await {
                if error.is_timeout() {
                    connection.answer_header_timeout(limits.header_read_timeout).await;
                } else {
                    tracing::debug!(%error, %remote, "connection ended with an error");
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(connections = graceful.count(), "shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("drained"),
        () = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!(timeout_s = limits.drain_timeout.as_secs_f64(), "drain timeout: closing the connections left");
        }
    }
}

/// The next connection, once a permit is free; `None` (after a short pause, so that running
/// out of file descriptors does not spin) when accepting failed.
async fn accept_within(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    let permit = permits.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, remote)) => Some((stream, remote, permit)),
        Err(error) => {
            tracing::warn!(%error, "accepting a connection failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// A connection's socket, shared by hyper and the accept loop, which answers a header timeout
/// after hyper has let go. It notes whether the client has sent bytes since the last response
/// was written: the start of a request still unanswered.
#[derive(Clone)]
struct Connection {
    stream: Arc<TcpStream>,
    request_started: Arc<AtomicBool>,
}

/// Longest the loop spends writing a 408 and reading what the client still sends.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

impl Connection {
    fn new(stream: TcpStream) -> Connection {
        Connection { stream: Arc::new(stream), request_started: Arc::default() }
    }

    /// Answers a client whose request headers did not arrive in time with a 408, then closes
    /// the connection; closes an idle one without a word.
    async fn answer_header_timeout(self, timeout: Duration) {
        if !self.request_started.load(Ordering::Acquire) {
            return;
        }
        let body = ErrorBody::new(format!(
            "the request headers did not arrive within {} s; the connection is closed",
            timeout.as_secs_f64()
        ));
        let body = serde_json::to_string(&body).unwrap_or_default();
        let response = format!(
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json; charset=utf-8\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let farewell = async {
            let mut unsent = response.as_bytes();
            while !unsent.is_empty() {
                self.stream.writable().await?;
                match self.stream.try_write(unsent) {
                    Ok(written) => unsent = &unsent[written..],
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(error),
                }
            }
            // Half-close, then read what the client still sends: closing a socket with unread
            // input resets the connection, which could destroy the 408 before it is read.
            socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write)?;
            let mut discarded = [0; 1024];
            loop {
                self.stream.readable().await?;
                match self.stream.try_read(&mut discarded) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(error),
                }
            }
        };
        // A client that stopped reading, or keeps sending, loses nothing it was owed.
        let _ = tokio::time::timeout(FAREWELL_TIMEOUT, farewell).await;
    }
}

impl Connection {
    /// Writes with `write` once the socket is writable.
    fn poll_write_with(
        &self,
        context: &mut Context<'_>,
        write: impl Fn(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(context))?;
            match write(&self.stream) {
                Ok(written) => {
                    // hyper writes only answers: what the client sent so far is answered.
                    self.request_started.store(false, Ordering::Release);
                    return Poll::Ready(Ok(written));
                }
                // The readiness was stale; polling again waits for the next.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(context))?;
            match self.stream.try_read_buf(buffer) {
                Ok(read) => {
                    if read > 0 {
                        self.request_started.store(true, Ordering::Release);
                    }
                    return Poll::Ready(Ok(()));
                }
                // The readiness was stale; polling again waits for the next.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_with(context, |stream| stream.try_write(data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        slices: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(context, |stream| stream.try_write_vectored(slices))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _context: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write))
    }
}
