//! Start-up, in order: verify (or fetch and verify) the weights, load the model onto its
//! inference thread, build the routes, bind the socket. Tests call [`Application::build`]
//! with port 0 and read the bound address.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use max_mnist_config::metadata::{API_DESCRIPTION, API_TITLE, API_VERSION, MODEL_CARD};
use max_mnist_config::settings::ServerSettings;
use max_mnist_core::archive::UnpackLimits;
use max_mnist_core::bucket::{self, ModelSource, VerifiedAsset};
use max_mnist_core::download::DownloadPolicy;
use max_mnist_core::inference::{EngineSettings, InferenceEngine};
use max_mnist_core::wrapper::ModelWrapper;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::middleware::{CatchPanic, Cors, Tracing};
use poem::{EndpointExt, Route, Server};
use poem_openapi::OpenApiService;

use crate::error::{json_error_response, panic_response};
use crate::limits::BodyLimit;
use crate::routes::ModelApi;
use crate::types::ModelMetadataResponse;
use crate::upload::UploadLimits;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The weights could not be fetched, verified or loaded.
    #[error(transparent)]
    Model(#[from] max_mnist_core::Error),
    /// The checksums file lists no safetensors weights.
    #[error("{0} lists no `.safetensors` weights file")]
    NoWeights(String),
    /// Settings that contradict each other.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}: {cause}")]
    Bind {
        /// The address asked for.
        address: String,
        /// The underlying error (in the message, so not a `source`).
        cause: std::io::Error,
    },
}

/// How long in-flight requests may run after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A server with verified weights loaded and a bound socket, not yet serving.
pub struct Application {
    acceptor: TcpAcceptor,
    app: poem::endpoint::BoxEndpoint<'static>,
    address: SocketAddr,
}

impl Application {
    /// Verifies the weights (fetching them from the bucket when needed), starts the
    /// inference thread and binds `settings.host:settings.port`.
    pub async fn build(settings: &ServerSettings) -> Result<Application, StartupError> {
        if settings.max_images_per_request > settings.queue_capacity {
            return Err(StartupError::Settings(format!(
                "MAX_IMAGES_PER_REQUEST ({}) is over QUEUE_CAPACITY ({}): a full form could never be admitted",
                settings.max_images_per_request, settings.queue_capacity
            )));
        }
        let weights = verified_weights(settings).await?;
        let model = ModelWrapper::load(&weights.path, max_mnist_core::best_device(), settings.max_image_pixels)?;
        let metadata = ModelMetadataResponse::new(&MODEL_CARD, model.metadata(), &weights.sha512);
        let engine = InferenceEngine::start(
            model,
            EngineSettings {
                max_batch_size: settings.max_batch_size,
                max_batch_delay: Duration::from_micros(settings.max_batch_delay_us),
                queue_capacity: settings.queue_capacity,
                preprocess_threads: match settings.preprocess_threads {
                    0 => std::thread::available_parallelism().map_or(1, usize::from),
                    threads => threads,
                },
                torch_threads: settings.torch_threads,
            },
        )?;
        let app = routes(ModelApi::new(engine, metadata), settings);

        let address = format!("{}:{}", settings.host, settings.port);
        let bind_error = |cause| StartupError::Bind { address: address.clone(), cause };
        let acceptor = TcpListener::bind(address.clone()).into_acceptor().await.map_err(bind_error)?;
        let address = acceptor
            .local_addr()
            .first()
            .and_then(|local| local.as_socket_addr().copied())
            .ok_or_else(|| bind_error(std::io::Error::other("no local address")))?;
        Ok(Application { acceptor, app, address })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish (for at most 30 s).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        tracing::info!(address = %self.address, "serving; Swagger UI at /");
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.app, shutdown, Some(DRAIN_TIMEOUT))
            .await
    }
}

async fn verified_weights(settings: &ServerSettings) -> Result<VerifiedAsset, StartupError> {
    let source = ModelSource {
        bucket: settings.model_bucket.clone(),
        file: settings.model_file.clone(),
        assets_dir: settings.assets_dir.clone(),
        checksums: settings.checksums.clone(),
        download: DownloadPolicy {
            timeout: Duration::from_secs(settings.download_timeout_secs),
            retries: settings.download_retries,
            ..DownloadPolicy::default()
        },
        unpack: UnpackLimits::default(),
    };
    bucket::ensure_verified_assets(&source)
        .await?
        .into_iter()
        .find(|asset| asset.path.extension().is_some_and(|extension| extension == "safetensors"))
        .ok_or_else(|| StartupError::NoWeights(Path::new(&settings.checksums).display().to_string()))
}

/// The whole HTTP surface: Swagger UI at `/`, the spec at `/swagger.json`, the model routes,
/// the drawing page at `/app`, and the middleware every request passes through.
fn routes(api: ModelApi, settings: &ServerSettings) -> poem::endpoint::BoxEndpoint<'static> {
    let service = OpenApiService::new(api, API_TITLE, API_VERSION).description(API_DESCRIPTION);
    let swagger_ui = service.swagger_ui();
    let spec = service.spec_endpoint();
    Route::new()
        .at("/", swagger_ui)
        .at("/swagger.json", spec)
        .nest_no_strip("/model", service)
        .nest("/app", crate::app::routes())
        .data(UploadLimits { max_parts: settings.max_images_per_request })
        .with(BodyLimit::new(settings.max_body_bytes))
        .with_if(settings.cors_enable, Cors::new())
        .with(CatchPanic::new().with_handler(panic_response))
        .catch_all_error(json_error_response)
        .with(Tracing)
        .boxed()
}
