//! Start-up, in order: bind the socket (and the management address, when given) and serve
//! the health probes and metrics, then for each model verify (or fetch and verify) its
//! weights, load it onto an inference thread of its own, warm it up and start serving it; once
//! every model is served, report ready, and start following the buckets when poll mode is on.
//! A model that fails any step stops start-up with one line that names it.
//!
//! Which models: the configured ones (`--model`); with the management API on, the repository
//! record first says what was served before the restart (see `management::record`). Tests call
//! [`Application::build`] with port 0 and read the bound address.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use max_mnist_config::metadata::{API_DESCRIPTION, API_TITLE, API_VERSION};
use max_mnist_config::settings::{ApiKey, ServerSettings};
use max_mnist_core::LoadError;
use metrics_exporter_prometheus::PrometheusHandle;
use poem::endpoint::BoxEndpoint;
use poem::endpoint::make_sync;
use poem::middleware::{CatchPanic, Cors};
use poem::web::Html;
use poem::{EndpointExt, IntoEndpoint, Route};
use poem_openapi::OpenApiService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::auth::BearerAuth;
use crate::error::{json_error_response, panic_response};
use crate::health::HealthApi;
use crate::limits::{BodyLimit, RequestDeadline};
use crate::loader::ModelLoader;
use crate::management::ModelManager;
use crate::management::record::{self, ModelRecord, RECORD_FILE, RepositoryRecord};
use crate::management::routes::ManagementApi;
use crate::metrics::MetricsApi;
use crate::model_version::ModelVersionHeader;
use crate::paths::{AllowHeader, ApiPaths, with_model_names};
use crate::routes::ModelApi;
use crate::server::ConnectionLimits;
use crate::state::{Origin, Readiness, ServedModel, ServerState};
use crate::telemetry::RequestTelemetry;
use crate::torchserve::{Batching, TorchServeApi};
use crate::upload::UploadLimits;
use crate::v2::OpenInferenceApi;

/// The largest body the management routes take: their JSON is a few hundred bytes.
const MANAGEMENT_BODY_BYTES: u64 = 64 << 10;

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

/// A server with a bound socket (two, with the management API on), not yet serving; the
/// models are loaded by [`Application::run_until`].
pub struct Application {
    listener: TcpListener,
    app: BoxEndpoint<'static>,
    address: SocketAddr,
    management: Option<(TcpListener, BoxEndpoint<'static>, SocketAddr)>,
    state: ServerState,
    manager: Arc<ModelManager>,
    loader: ModelLoader,
    /// What the repository record says to serve again, when the management API is on.
    record: Option<RepositoryRecord>,
    settings: ServerSettings,
}

impl Application {
    /// Checks the settings, installs the metrics recorder, reads the repository record (with
    /// the management API on) and binds `settings.host:settings.port`, and the management
    /// address when there is one.
    pub async fn build(settings: &ServerSettings) -> Result<Application, StartupError> {
        settings.check().map_err(StartupError::Settings)?;
        let recorder = crate::metrics::recorder().map_err(StartupError::Metrics)?;
        let loader = ModelLoader::new(settings).map_err(|error| StartupError::Settings(error.to_string()))?;
        let record_path = settings.management_address.as_ref().map(|_| settings.assets_dir.join(RECORD_FILE));
        let record = match &record_path {
            Some(path) => record::read(path).map_err(|error| StartupError::Settings(error.to_string()))?,
            None => None,
        };
        let planned = planned_models(settings, record.as_ref());
        let configured_default = settings.default_model_name().expect("checked: at least one model");
        let default = match planned.iter().any(|(name, _)| name == configured_default) {
            true => configured_default,
            false => planned.first().map_or(configured_default, |(name, _)| name.as_str()),
        };
        let state = ServerState::new(&planned, default);
        let manager = ModelManager::new(state.clone(), loader.clone(), settings.models.clone(), record_path);
        let app = routes(&state, recorder, settings);

        let (listener, address) = bind(&format!("{}:{}", settings.host, settings.port)).await?;
        let management = match &settings.management_address {
            Some(management_address) => {
                let (listener, address) = bind(management_address).await?;
                let admin_key = settings.admin_api_key.as_ref().expect("checked: management needs a key");
                Some((listener, management_routes(manager.clone(), settings, admin_key), address))
            }
            None => None,
        };
        Ok(Application {
            listener,
            app,
            address,
            management,
            state,
            manager,
            loader,
            record,
            settings: settings.clone(),
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The management API's bound address, when it is on.
    pub fn management_address(&self) -> Option<SocketAddr> {
        self.management.as_ref().map(|(_, _, address)| *address)
    }

    /// Serves (health and metrics at once, each model's routes once it is loaded, the
    /// management API when on) until `shutdown` resolves, then reports not-ready, serves on
    /// for `SHUTDOWN_DELAY_SECS` (0 by default), stops accepting and lets in-flight requests
    /// finish, for at most `DRAIN_TIMEOUT_SECS`. Fails, after closing the sockets, when a model
    /// cannot be loaded.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), StartupError> {
        let Application { listener, app, address, management, state, manager, loader, record, settings } = self;
        let limits = ConnectionLimits {
            header_read_timeout: settings.header_read_timeout,
            max_connections: settings.max_connections,
            drain_timeout: settings.drain_timeout,
        };
        let (abort, aborted) = oneshot::channel::<()>();
        let (stopped, stop_watch) = watch::channel(false);
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
                let _ = stopped.send(true);
            }
        };
        tracing::info!(%address, "listening; Swagger UI at /, ready at /health/ready once the models are loaded");
        let mut server = tokio::spawn(crate::server::serve(listener, app, limits, stopping));
        let management_server = management.map(|(listener, app, management_address)| {
            tracing::info!(address = %management_address, "management API listening (needs ADMIN_API_KEY)");
            let mut stop_watch = stop_watch.clone();
            let stopping = async move {
                let _ = stop_watch.wait_for(|stopped| *stopped).await;
            };
            tokio::spawn(crate::server::serve(listener, app, limits, stopping))
        });
        let started = Instant::now();
        tokio::select! {
            loaded = load_models(&settings, &state, &loader, record) => match loaded {
                Ok(()) => {
                    state.mark_ready();
                    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "every model loaded and warmed up: ready");
                }
                Err(error) => {
                    let _ = abort.send(());
                    let _ = server.await;
                    if let Some(management_server) = management_server {
                        let _ = management_server.await;
                    }
                    return Err(error);
                }
            },
            // Stopped before the model was loaded.
            finished = &mut server => return finished.map_err(|error| StartupError::Crashed(error.to_string())),
        }
        let polling = (!settings.poll_interval.is_zero())
            .then(|| tokio::spawn(crate::management::poll::follow_buckets(manager, settings.poll_interval)));
        let served = server.await;
        if let Some(polling) = polling {
            polling.abort();
        }
        if let Some(management_server) = management_server {
            let _ = management_server.await;
        }
        served.map_err(|error| StartupError::Crashed(error.to_string()))
    }
}

/// Binds `address`, returning the listener and the address bound (with the real port when 0
/// was asked for).
async fn bind(address: &str) -> Result<(TcpListener, SocketAddr), StartupError> {
    let bind_error = |cause| StartupError::Bind { address: address.to_owned(), cause };
    let listener = TcpListener::bind(address).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// The models to serve, as name and bucket, in order: those the record holds, then the
/// configured ones it neither holds nor lists as unloaded; without a record, the configured
/// ones.
fn planned_models(settings: &ServerSettings, record: Option<&RepositoryRecord>) -> Vec<(String, String)> {
    let recorded = record.map(|record| &record.models[..]).unwrap_or_default();
    let unloaded = record.map(|record| &record.unloaded[..]).unwrap_or_default();
    let from_record = recorded.iter().map(|model| {
        let default = model.versions.iter().find(|version| version.version == model.default_version);
        (model.name.clone(), default.map(|version| version.bucket.clone()).unwrap_or_default())
    });
    let configured = settings
        .models
        .iter()
        .filter(|spec| !recorded.iter().any(|model| model.name == spec.name) && !unloaded.contains(&spec.name))
        .map(|spec| (spec.name.clone(), spec.bucket.clone()));
    from_record.chain(configured).collect()
}

/// Loads every planned model in turn and starts serving each as soon as it is ready: each
/// recorded version from its files, verified again against their recorded digests; each
/// configured model not recorded from its bucket, into `<assets>/<name>/`.
async fn load_models(
    settings: &ServerSettings,
    state: &ServerState,
    loader: &ModelLoader,
    record: Option<RepositoryRecord>,
) -> Result<(), StartupError> {
    // libtorch's thread count is process-wide and inherited by the threads started after it.
    max_mnist_core::inference::set_torch_threads(settings.torch_threads);
    if let Some(record) = &record {
        remove_unrecorded_versions(loader, &state.model_names(), &record.models);
    }
    let recorded = record.map(|record| record.models).unwrap_or_default();
    let root = loader.assets_root();
    for model in &recorded {
        let failed = |cause: LoadError| StartupError::Model { name: model.name.clone(), cause };
        let (mut default, mut others) = (None, Vec::new());
        for version in &model.versions {
            let started = Instant::now();
            let served = loader
                .restore(&model.name, &version.bucket, version.origin, version.assets_dir(root), version.assets(root))
                .await
                .map_err(failed)?;
            if served.version() != version.version {
                return Err(StartupError::Settings(format!(
                    "model `{}`: the repository record says version {}, its files make {}",
                    model.name,
                    version.version,
                    served.version()
                )));
            }
            log_loaded(&served, started);
            if version.version == model.default_version {
                default = Some(served);
            } else {
                others.push(served);
            }
        }
        // Checked when the record was read: the default version is one of those listed.
        if let Some(default) = default {
            state.serve_model(default, others);
        }
    }
    let configured =
        settings.models.iter().filter(|spec| state.model_readiness(&spec.name) == Some(Readiness::Starting));
    for spec in configured.collect::<Vec<_>>() {
        let started = Instant::now();
        let served = loader
            .fetch(&spec.name, &spec.bucket, Origin::Configured, loader.configured_dir(&spec.name))
            .await
            .map_err(|cause| StartupError::Model { name: spec.name.clone(), cause })?;
        log_loaded(&served, started);
        state.serve_model(served, Vec::new());
    }
    Ok(())
}

/// Logs a loaded version and publishes it in the metrics.
fn log_loaded(served: &ServedModel, started: Instant) {
    crate::metrics::record_model(&served.name, served.version(), &served.metadata.weights_sha512);
    tracing::info!(
        model = %served.name,
        version = %served.version(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "model loaded and warmed up"
    );
}

/// With the management API on, deletes the version folders of `names` that the record does not
/// name: left by a fetch that was killed, or by versions replaced before the record was
/// written. Runs before any model loads, so it never meets a fetch in progress.
fn remove_unrecorded_versions(loader: &ModelLoader, names: &[String], recorded: &[ModelRecord]) {
    let root = loader.assets_root();
    let kept: Vec<PathBuf> =
        recorded.iter().flat_map(|model| &model.versions).map(|version| version.assets_dir(root)).collect();
    for name in names {
        let Ok(folders) = std::fs::read_dir(loader.versions_dir(name)) else { continue };
        for folder in folders.flatten().map(|folder| folder.path()) {
            if !kept.contains(&folder) {
                tracing::info!(path = %folder.display(), "removing the files of a version no longer served");
                if let Err(error) = std::fs::remove_dir_all(&folder) {
                    tracing::warn!(path = %folder.display(), %error, "cannot remove");
                }
            }
        }
    }
}

/// The management API on its own address: every route needs the admin key; bodies are small.
fn management_routes(
    manager: Arc<ModelManager>,
    settings: &ServerSettings,
    admin_key: &ApiKey,
) -> BoxEndpoint<'static> {
    let service = OpenApiService::new(ManagementApi::new(manager, batching(settings)), API_TITLE, API_VERSION)
        .description(
            "Model management: TorchServe's management API and the Open Inference Protocol's repository extension.",
        );
    let paths = ApiPaths::from_spec(&service.spec());
    let spec = service.spec_endpoint();
    let service = Arc::new(service.into_endpoint());
    Route::new()
        .at("/swagger.json", spec)
        .nest_no_strip("/models", service.clone())
        .nest_no_strip("/v2/repository", service)
        .with(BodyLimit::new(MANAGEMENT_BODY_BYTES, settings.body_memory_bytes, settings.body_read_timeout))
        .with(BearerAuth::everywhere(admin_key))
        .with(CatchPanic::new().with_handler(panic_response))
        .catch_all_error(json_error_response)
        .with(AllowHeader)
        .with(RequestTelemetry::new(paths))
        .boxed()
}

/// How every model batches, as the settings say.
fn batching(settings: &ServerSettings) -> Batching {
    Batching {
        max_batch_size: settings.max_batch_size,
        max_batch_delay: Duration::from_micros(settings.max_batch_delay_us),
    }
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
        TorchServeApi::new(state.clone(), batching(settings)),
        HealthApi::new(state.clone()),
        MetricsApi::new(recorder),
    );
    let service = OpenApiService::new(apis, API_TITLE, API_VERSION).description(API_DESCRIPTION);
    // The document lists the served models' names wherever a path takes one, so that Swagger
    // UI offers them and schemathesis calls them; models come and go, so it is written per
    // request.
    let generated = service.spec();
    let swagger_ui = service.swagger_ui_html();
    let paths = ApiPaths::from_spec(&generated);
    let service = std::sync::Arc::new(service.into_endpoint());
    let spec_json = {
        let (state, generated) = (state.clone(), generated.clone());
        move |_| {
            let spec = with_model_names(&generated, &state.model_names());
            poem::Response::builder().content_type("application/json; charset=utf-8").body(spec)
        }
    };
    let swagger_page = {
        let state = state.clone();
        move |_| Html(swagger_ui.replacen(&generated, &with_model_names(&generated, &state.model_names()), 1))
    };
    let mut routes = Route::new()
        .at("/", make_sync(swagger_page))
        .at("/swagger.json", make_sync(spec_json))
        .nest("/app", crate::app::routes(settings.max_body_bytes));
    for prefix in ["/model", "/models", "/v2", "/health", "/metrics", "/predictions", "/ping"] {
        routes = routes.nest_no_strip(prefix, service.clone());
    }
    routes
        .data(UploadLimits { max_parts: settings.max_images_per_request })
        .with(BodyLimit::new(settings.max_body_bytes, settings.body_memory_bytes, settings.body_read_timeout))
        .with(ModelVersionHeader)
        .with(BearerAuth::new(settings.api_key.as_ref(), settings.auth_health, settings.auth_metrics))
        .with(RequestDeadline::new(settings.request_timeout))
        .with_if(settings.cors_enable, Cors::new())
        .with(CatchPanic::new().with_handler(panic_response))
        .catch_all_error(json_error_response)
        .with(AllowHeader)
        .with(RequestTelemetry::new(paths))
        .boxed()
}
