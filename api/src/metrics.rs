//! Prometheus metrics at `GET /metrics`.
//!
//! The server and the inference engine record through the `metrics` facade; the first server
//! started in a process installs one Prometheus recorder for it, which `/metrics` renders.
//! Recorded here: requests by route, method and status, their duration and how many are in
//! flight (see `telemetry`), and a `max_mnist_model_info` gauge naming the weights served. The
//! engine adds decoding, queueing and inference times and batch sizes
//! ([`max_mnist_core::inference::metric`]).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use max_mnist_core::inference::metric;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem_openapi::payload::PlainText;
use poem_openapi::{OpenApi, Tags};

/// Counter: requests answered, by `route`, `method` and `status`.
pub const HTTP_REQUESTS: &str = "max_mnist_http_requests_total";
/// Histogram: seconds from a request's headers to its response, by `route`.
pub const HTTP_REQUEST_SECONDS: &str = "max_mnist_http_request_duration_seconds";
/// Gauge: requests being handled now.
pub const HTTP_IN_FLIGHT: &str = "max_mnist_http_requests_in_flight";
/// Gauge: 1, labelled with the served weights' `version` and `sha512`.
pub const MODEL_INFO: &str = "max_mnist_model_info";

/// Bucket bounds of every `_seconds` histogram: 100 µs to 30 s.
const SECONDS_BUCKETS: [f64; 17] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Bucket bounds of the batch-size histogram.
const BATCH_SIZE_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// How often histograms are folded into their buckets (the exporter leaves it to its user).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's recorder, once installed.
static RECORDER: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// The handle of the process's Prometheus recorder, installing it on first use.
pub fn recorder() -> Result<PrometheusHandle, String> {
    let mut installed = RECORDER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
        .and_then(|builder| {
            builder.set_buckets_for_metric(Matcher::Full(metric::BATCH_SIZE.into()), &BATCH_SIZE_BUCKETS)
        })
        .map_err(|error| error.to_string())?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|error| error.to_string())?;
    describe();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn({
            let handle = handle.clone();
            move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    handle.run_upkeep();
                }
            }
        })
        .map_err(|error| error.to_string())?;
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Publishes which weights are served.
pub fn record_model(model: &str, version: &str, weights_sha512: &str) {
    metrics::gauge!(
        MODEL_INFO,
        metric::MODEL_LABEL => model.to_owned(),
        "version" => version.to_owned(),
        "sha512" => weights_sha512.to_owned()
    )
    .set(1.0);
}

/// Publishes that a version is no longer served.
pub fn forget_model(model: &str, version: &str, weights_sha512: &str) {
    metrics::gauge!(
        MODEL_INFO,
        metric::MODEL_LABEL => model.to_owned(),
        "version" => version.to_owned(),
        "sha512" => weights_sha512.to_owned()
    )
    .set(0.0);
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "Requests answered, by route, method and status.");
    metrics::describe_histogram!(
        HTTP_REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "Time from a request's headers to its response, by route."
    );
    metrics::describe_gauge!(HTTP_IN_FLIGHT, "Requests being handled now.");
    metrics::describe_counter!(
        crate::management::MANAGEMENT_ACTIONS,
        "Model management actions (register, load, unload, set-default, poll), by action and outcome."
    );
    metrics::describe_gauge!(
        MODEL_INFO,
        "1 per model version served (0 once unloaded), labelled with its name and its weights' version and SHA-512."
    );
    metrics::describe_histogram!(
        metric::DECODE_SECONDS,
        metrics::Unit::Seconds,
        "Time decoding and preprocessing one uploaded image."
    );
    metrics::describe_histogram!(
        metric::QUEUE_SECONDS,
        metrics::Unit::Seconds,
        "Time one image waited for a preprocessing thread and for the inference thread."
    );
    metrics::describe_histogram!(
        metric::INFERENCE_SECONDS,
        metrics::Unit::Seconds,
        "Time of one forward pass with its post-processing."
    );
    metrics::describe_histogram!(metric::BATCH_SIZE, "Images in one forward pass.");
    metrics::describe_counter!(metric::ABANDONED_IMAGES, "Images dropped unrun because their caller had gone.");
}

#[derive(Tags)]
enum Tag {
    /// What the server is doing.
    Metrics,
}

/// The `/metrics` route.
pub struct MetricsApi {
    recorder: PrometheusHandle,
}

impl MetricsApi {
    /// The route rendering `recorder`.
    pub fn new(recorder: PrometheusHandle) -> MetricsApi {
        MetricsApi { recorder }
    }
}

#[OpenApi(tag = "Tag::Metrics")]
impl MetricsApi {
    /// Prometheus metrics
    ///
    /// Requests by route and status, request, queue, decode and inference times, batch sizes,
    /// requests in flight and the served weights, in Prometheus' text format.
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self) -> PlainText<String> {
        PlainText(self.recorder.render())
    }
}
