//! Start-up, in order: bind the socket and serve the health probes and metrics, then for each
//! configured model verify (or fetch and verify) its weights, load it onto an inference thread
//! of its own, warm it up and start serving it; once every model is served, report ready. A
//! model that fails any step stops start-up with one line that names it. Tests call
//! [`Application::build`] with port 0 and read the bound address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use max_mnist_artifacts::archive::UnpackLimits;
use max_mnist_artifacts::bucket::ModelSource;
use max_mnist_artifacts::card::ModelFiles;
use max_mnist_artifacts::download::DownloadPolicy;
use max_mnist_config::metadata::{API_DESCRIPTION, API_TITLE, API_VERSION};
use max_mnist_config::settings::{ModelSpec, ServerSettings};
use max_mnist_core::LoadError;
use max_mnist_core::inference::{EngineSettings, InferenceEngine};
use max_mnist_core::wrapper::ModelWrapper;
use metrics_exporter_prometheus::PrometheusHandle;
use poem::endpoint::BoxEndpoint;
use poem::endpoint::make_sync;
use poem::middleware::{CatchPanic, Cors};
use poem::web::Html;
use poem::{EndpointExt, IntoEndpoint, Route};
use poem_openapi::OpenApiService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::auth::BearerAuth;
use crate::error::{json_error_response, panic_response};
use crate::health::HealthApi;
use crate::limits::{BodyLimit, RequestDeadline};
use crate::metrics::MetricsApi;
use crate::paths::{AllowHeader, ApiPaths, with_model_names};
use crate::routes::ModelApi;
use crate::server::ConnectionLimits;
use crate::state::{ServedModel, ServerState};
use crate::telemetry::RequestTelemetry;
use crate::torchserve::TorchServeApi;
use crate::types::{LabelsResponse, ModelMetadataResponse};
use crate::upload::UploadLimits;
use crate::v2::OpenInferenceApi;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A model's weights could not be fetched, verified or loaded.
    #[error("model `{name}`: {cause}")]
    Model {
        /// The model's name.
        name: String,
        /// What went wrong (in the message, so not a `source`).
        cause: LoadError,
    },
    /// Settings that contradict each other.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// The metrics recorder could not be installed.
    #[error("cannot set up metrics: {0}")]
    Metrics(String),
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}: {cause}")]
    Bind {
        /// The address asked for.
        address: String,
        /// The underlying error (in the message, so not a `source`).
        cause: std::io::Error,
    },
    /// A start-up or serving task stopped unexpectedly.
    #[error("the server stopped unexpectedly: {0}")]
    Crashed(String),
}

/// A server with a bound socket, not yet serving; the model is loaded by [`Application::run_until`].
pub struct Application {
    listener: TcpListener,
    app: BoxEndpoint<'static>,
    address: SocketAddr,
    state: ServerState,
    settings: ServerSettings,
}

impl Application {
    /// Checks the settings, installs the metrics recorder and binds `settings.host:settings.port`.
    pub async fn build(settings: &ServerSettings) -> Result<Application, StartupError> {
        settings.check().map_err(StartupError::Settings)?;
        let recorder = crate::metrics::recorder().map_err(StartupError::Metrics)?;
        let models: Vec<(String, String)> =
            settings.models.iter().map(|model| (model.name.clone(), model.bucket.clone())).collect();
        let default = settings.default_model_name().expect("checked: at least one model");
        let state = ServerState::new(&models, default);
        let app = routes(&state, recorder, settings);

        let address = format!("{}:{}", settings.host, settings.port);
        let bind_error = |cause| StartupError::Bind { address: address.clone(), cause };
        let listener = TcpListener::bind(address.clone()).await.map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        Ok(Application { listener, app, address, state, settings: settings.clone() })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves (health and metrics at once, each model's routes once it is loaded) until
    /// `shutdown` resolves, then reports not-ready, serves on for `SHUTDOWN_DELAY_SECS` (0 by
    /// default), stops accepting and lets in-flight requests finish, for at most
    /// `DRAIN_TIMEOUT_SECS`. Fails, after closing the socket, when a model cannot be loaded.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), StartupError> {
        let Application { listener, app, address, state, settings } = self;
        let limits = ConnectionLimits {
            header_read_timeout: settings.header_read_timeout,
            max_connections: settings.max_connections,
            drain_timeout: settings.drain_timeout,
        };
        let (abort, aborted) = oneshot::channel::<()>();
        let shutdown_delay = settings.shutdown_delay;
        let stopping = {
            let state = state.clone();
            async move {
                tokio::select! {
                    () = shutdown => {
                        state.start_draining();
                        if !shutdown_delay.is_zero() {
                            tracing::info!(delay_s = shutdown_delay.as_secs_f64(), "not ready; serving on until the shutdown delay ends");
                            tokio::time::sleep(shutdown_delay).await;
                        }
                    }
                    // Only a sent abort stops the server, not the sender's drop.
                    Ok(()) = aborted => state.start_draining(),
                }
            }
        };
        tracing::info!(%address, "listening; Swagger UI at /, ready at /health/ready once the models are loaded");
        let mut server = tokio::spawn(crate::server::serve(listener, app, limits, stopping));
        let started = Instant::now();
        tokio::select! {
            loaded = load_models(&settings, &state) => match loaded {
                Ok(()) => {
                    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "every model loaded and warmed up: ready");
                }
                Err(error) => {
                    let _ = abort.send(());
                    let _ = server.await;
                    return Err(error);
                }
            },
            // Stopped before the model was loaded.
            finished = &mut server => return finished.map_err(|error| StartupError::Crashed(error.to_string())),
        }
        server.await.map_err(|error| StartupError::Crashed(error.to_string()))
    }
}

/// Loads every configured model in turn and starts serving each as soon as it is ready.
async fn load_models(settings: &ServerSettings, state: &ServerState) -> Result<(), StartupError> {
    // libtorch's thread count is process-wide and inherited by the threads started after it.
    max_mnist_core::inference::set_torch_threads(settings.torch_threads);
    for spec in &settings.models {
        let started = Instant::now();
        let model = load_model(spec, settings).await?;
        tracing::info!(
            model = %spec.name,
            version = %model.metadata.version,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "model loaded and warmed up"
        );
        state.serve_model(model);
    }
    Ok(())
}

/// Verifies one model's weights (fetching them from its bucket when needed), starts an
/// inference engine on them and warms it up.
async fn load_model(spec: &ModelSpec, settings: &ServerSettings) -> Result<ServedModel, StartupError> {
    let failed = |cause: LoadError| StartupError::Model { name: spec.name.clone(), cause };
    let (files, network_sha512) = verified_files(spec, settings).await.map_err(failed)?;
    let engine_settings = EngineSettings {
        max_batch_size: settings.max_batch_size,
        max_batch_delay: Duration::from_micros(settings.max_batch_delay_us),
        queue_capacity: settings.queue_capacity,
        preprocess_threads: match settings.preprocess_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            threads => threads,
        },
    };
    let max_image_pixels = settings.max_image_pixels;
    let name = spec.name.clone();
    let device = max_mnist_core::best_device();
    let engine = tokio::task::spawn_blocking(move || {
        InferenceEngine::start(&name, engine_settings, move || ModelWrapper::load(&files, device, max_image_pixels))
    })
    .await
    .map_err(|error| StartupError::Crashed(error.to_string()))?
    .map_err(failed)?;
    engine.warm_up().await.map_err(|error| failed(LoadError::WarmUp(error)))?;
    let metadata = ModelMetadataResponse::new(&spec.name, engine.card(), engine.training(), &network_sha512);
    crate::metrics::record_model(&spec.name, &metadata.version, &metadata.weights_sha512);
    let labels = LabelsResponse::new(engine.card());
    Ok(ServedModel {
        name: spec.name.clone(),
        bucket: spec.bucket.clone(),
        engine,
        metadata,
        labels,
        loaded_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        on_gpu: device.is_cuda(),
    })
}

/// Makes sure the model's files are in `<assets>/<name>/`, verified against its bucket's
/// checksums, and returns which files make the model, with the SHA-512 of its network file.
async fn verified_files(spec: &ModelSpec, settings: &ServerSettings) -> Result<(ModelFiles, String), LoadError> {
    let source = ModelSource {
        bucket: spec.bucket.clone(),
        assets_dir: settings.assets_dir.join(&spec.name),
        download: DownloadPolicy {
            timeout: Duration::from_secs(settings.download_timeout_secs),
            retries: settings.download_retries,
            ..DownloadPolicy::default()
        },
        unpack: UnpackLimits::default(),
    };
    Ok(ModelFiles::verified(&source).await?)
}

/// The whole HTTP surface: Swagger UI at `/`, the spec at `/swagger.json`, the MAX model
/// routes, the Open Inference Protocol routes, health and metrics, the drawing page at `/app`,
/// and the middleware every request passes through, innermost first: the body limits, the
/// API key, the request deadline, CORS, panics and errors as JSON (with `Allow` on a 405), and
/// the request's id, log line and metrics.
fn routes(state: &ServerState, recorder: PrometheusHandle, settings: &ServerSettings) -> BoxEndpoint<'static> {
    let apis = (
        ModelApi::new(state.clone()),
        OpenInferenceApi::new(state.clone(), settings.max_images_per_request),
        TorchServeApi::new(state.clone(), settings.max_batch_size, Duration::from_micros(settings.max_batch_delay_us)),
        HealthApi::new(state.clone()),
        MetricsApi::new(recorder),
    );
    let service = OpenApiService::new(apis, API_TITLE, API_VERSION).description(API_DESCRIPTION);
    // The document lists the served models' names wherever a path takes one, so that Swagger
    // UI offers them and schemathesis calls them.
    let generated = service.spec();
    let spec = with_model_names(&generated, state.model_names());
    let swagger_ui = service.swagger_ui_html().replacen(&generated, &spec, 1);
    let paths = ApiPaths::from_spec(&spec);
    let service = std::sync::Arc::new(service.into_endpoint());
    let spec_json =
        move |_| poem::Response::builder().content_type("application/json; charset=utf-8").body(spec.clone());
    let mut routes = Route::new()
        .at("/", make_sync(move |_| Html(swagger_ui.clone())))
        .at("/swagger.json", make_sync(spec_json))
        .nest("/app", crate::app::routes());
    for prefix in ["/model", "/models", "/v2", "/health", "/metrics", "/predictions", "/ping"] {
        routes = routes.nest_no_strip(prefix, service.clone());
    }
    routes
        .data(UploadLimits { max_parts: settings.max_images_per_request })
        .with(BodyLimit::new(settings.max_body_bytes, settings.body_memory_bytes, settings.body_read_timeout))
        .with(BearerAuth::new(settings.api_key.as_ref(), settings.auth_health, settings.auth_metrics))
        .with(RequestDeadline::new(settings.request_timeout))
        .with_if(settings.cors_enable, Cors::new())
        .with(CatchPanic::new().with_handler(panic_response))
        .catch_all_error(json_error_response)
        .with(AllowHeader)
        .with(RequestTelemetry::new(paths))
        .boxed()
}
