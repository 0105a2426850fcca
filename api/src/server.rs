//! The accept loop: serves the app's endpoint over HTTP/1.1 connections, each bounded in the
//! time its headers may take, with a cap on open connections, and drains on shutdown.
//!
//! poem's own `Server` sets no header read timeout (hyper needs a timer for one), so a client
//! sending its headers a byte at a time could hold a connection forever. Here hyper gets a
//! timer and `HEADER_READ_TIMEOUT_SECS`; a client that runs past it gets a 408 with the usual
//! JSON error body, written on a duplicate of the socket since hyper has dropped its own, and
//! the connection is closed. At most `MAX_CONNECTIONS` connections are served at once; the
//! next client waits in the listen backlog until one closes.
//!
//! On the shutdown signal the listener is closed at once (new clients are refused), kept-alive
//! connections are closed once their in-flight request is answered (with `Connection: close`),
//! and the loop returns when every connection is done, or when the drain timeout has passed.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use poem::endpoint::BoxEndpoint;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint};
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
        let Some((stream, spare)) = with_spare_handle(stream) else { continue };
        let service = service_fn({
            let app = app.clone();
            move |request: hyper::Request<Incoming>| {
                let app = app.clone();
                async move {
                    let request = poem::Request::from((
                        request,
                        LocalAddr(local.map_or_else(Addr::default, Addr::SocketAddr)),
                        RemoteAddr(Addr::SocketAddr(remote)),
                        Scheme::HTTP,
                    ));
                    let response: hyper::Response<BoxBody<Bytes, std::io::Error>> =
                        app.get_response(request).await.into();
                    Ok::<_, Infallible>(response)
                }
            }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                if error.is_timeout() {
                    answer_header_timeout(spare, limits.header_read_timeout);
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

/// The stream, and a second handle on the same socket for answering after hyper has let go.
fn with_spare_handle(stream: TcpStream) -> Option<(TcpStream, std::net::TcpStream)> {
    let result = stream.into_std().and_then(|stream| {
        let spare = stream.try_clone()?;
        Ok((TcpStream::from_std(stream)?, spare))
    });
    result.inspect_err(|error| tracing::warn!(%error, "cannot set up a connection")).ok()
}

/// Writes a 408 to a client whose headers did not arrive in time; the socket closes when
/// `spare`, its last handle, is dropped.
fn answer_header_timeout(mut spare: std::net::TcpStream, timeout: Duration) {
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
    // The socket is non-blocking; a short answer fits its empty send buffer, and a client that
    // stopped reading loses nothing it was owed.
    let _ = spare.write_all(response.as_bytes());
}
