//! Logs and per-request telemetry.
//!
//! [`init`] sets up tracing: the configured filter, as text or JSON lines, written to stderr
//! by a thread of its own (`tracing-appender`), so that a request never waits on the terminal
//! or a log collector; under a flood that outpaces the writer, lines are dropped rather than
//! requests slowed.
//!
//! [`RequestTelemetry`] wraps every request: it gives it an id (the client's `X-Request-Id`
//! when it sends a sane one, else a new UUID), returned in the `X-Request-Id` header and
//! attached to every log line written while the request is handled; it logs one line per
//! response and records the request metrics (see `metrics`). Headers are never logged, so
//! neither is an API key.

use std::time::Instant;

use max_mnist_config::settings::LogFormat;
use metrics::SharedString;
use poem::http::{HeaderValue, Method};
use poem::{Endpoint, IntoResponse, Middleware, PathPattern, Request, Response, Result};
use tracing::Instrument;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::metrics::{HTTP_IN_FLIGHT, HTTP_REQUEST_SECONDS, HTTP_REQUESTS};
use crate::paths::ApiPaths;

/// The header carrying a request's id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The longest client-chosen request id kept; longer ones are replaced.
const MAX_REQUEST_ID_LENGTH: usize = 128;

/// Keeps the log writer running; dropping it flushes the lines still queued.
#[must_use = "logs are lost when the guard is dropped"]
pub struct LogGuard {
    _writer: WorkerGuard,
}

/// Installs the global subscriber. `filter` is a tracing directive such as `info` or
/// `max_mnist_api=debug,info`; an invalid one falls back to `info`.
pub fn init(filter: &str, format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    LogGuard { _writer: guard }
}

/// Middleware giving each request an id, a log line and its metrics.
pub struct RequestTelemetry {
    paths: ApiPaths,
}

impl RequestTelemetry {
    /// Labels requests by the documented template of `paths` they match.
    pub fn new(paths: ApiPaths) -> RequestTelemetry {
        RequestTelemetry { paths }
    }
}

impl<E: Endpoint> Middleware<E> for RequestTelemetry {
    type Output = RequestTelemetryEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RequestTelemetryEndpoint { inner, paths: self.paths.clone() }
    }
}

/// The endpoint made by [`RequestTelemetry`].
pub struct RequestTelemetryEndpoint<E> {
    inner: E,
    paths: ApiPaths,
}

impl<E: Endpoint> Endpoint for RequestTelemetryEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> Result<Response> {
        let id = request_id(&request);
        let method = method_label(request.method());
        // The documented route, left for the layers inside (`paths::AllowHeader`).
        let documented = self.paths.find(request.uri().path());
        if let Some(route) = &documented {
            request.set_data(route.clone());
        }
        let span = tracing::info_span!("request", id = %id.to_str().unwrap_or_default(), %method, path = %request.uri().path());
        let started = Instant::now();
        let _in_flight = InFlight::start();
        let mut response = match self.inner.call(request).instrument(span.clone()).await {
            Ok(response) => response.into_response(),
            Err(error) => error.into_response(),
        };
        let elapsed = started.elapsed();
        // The documented template, else the pattern the router matched (the pages), so that a
        // scan of random paths makes no new series.
        let route: SharedString = match (documented, response.data::<PathPattern>()) {
            (Some(route), _) => route.template().into(),
            (None, Some(pattern)) => pattern.0.clone().into(),
            (None, None) => SharedString::const_str("unmatched"),
        };
        let status = response.status().as_u16();
        metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status.to_string())
            .increment(1);
        metrics::histogram!(HTTP_REQUEST_SECONDS, "route" => route).record(elapsed);
        tracing::info!(parent: &span, status, elapsed_us = elapsed.as_micros() as u64, "response");
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
        Ok(response)
    }
}

/// The client's request id when it is short and plain (letters, digits, `-`, `_`, `.`, `:`),
/// else a new UUID: a log line must not be forged through a header.
fn request_id(request: &Request) -> HeaderValue {
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .filter(|value| {
            let bytes = value.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= MAX_REQUEST_ID_LENGTH
                && bytes.iter().all(|&byte| byte.is_ascii_alphanumeric() || b"-_.:".contains(&byte))
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid header value")
        })
}

/// The method as a metric label: the standard ones by name, anything else as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Counts a request in flight until dropped (also when the client hangs up mid-request).
struct InFlight;

impl InFlight {
    fn start() -> InFlight {
        metrics::gauge!(HTTP_IN_FLIGHT).increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(HTTP_IN_FLIGHT).decrement(1.0);
    }
}
