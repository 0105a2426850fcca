//! The one place where errors become HTTP status codes, in one exhaustive `match` over the
//! request path's error type (a new kind of error cannot silently become a 500). Every error
//! response, whether it comes from a handler, from a limit, from the framework (unknown path,
//! wrong method, unparsable form) or from a panic, is JSON: `{"status": "error", "message": "...",
//! "error": "..."}`, the message twice: MAX clients read `message`, Open Inference Protocol
//! (KServe v2) clients read `error`.

use max_mnist_artifacts::Error as ArtifactError;
use max_mnist_core::{Error as CoreError, LoadError};
use poem::http::StatusCode;
use poem::{IntoResponse, PathPattern, Response};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object};

use crate::management::ManagementError;
use crate::state::RepositoryError;

/// The body of every error response.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[oai(example)]
pub struct ErrorBody {
    /// Always `error`.
    pub status: String,
    /// What was wrong, in words a client can act on.
    pub message: String,
    /// The same message, where the Open Inference Protocol puts it.
    pub error: String,
}

impl ErrorBody {
    /// A body saying `message`.
    pub fn new(message: impl Into<String>) -> ErrorBody {
        let message = message.into();
        ErrorBody { status: "error".into(), error: message.clone(), message }
    }
}

impl Example for ErrorBody {
    fn example() -> ErrorBody {
        ErrorBody::new("the file is not a supported image (send PNG, JPEG, GIF, BMP, WebP or TIFF)")
    }
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Errors of the model routes, each with its status code.
#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The request is malformed: no image field, or an empty, truncated or undecodable image.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No such model.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The route needs the API key: send `Authorization: Bearer <key>`.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// A bucket outside the allow-list (management API).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// The client sent the body too slowly (over the body read timeout).
    #[oai(status = 408)]
    RequestTimeout(Json<ErrorBody>),
    /// The change contradicts what is loaded: a version loaded twice, or the default version
    /// unloaded while others remain (management API).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The body is over the size limit, the image over the pixel limit, or the form has more
    /// parts than allowed.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The body is neither a multipart form nor an image.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// An unexpected fault in the server.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The server is busy (the inference queue is full, or the request ran past its
    /// deadline) or still loading the model; retry after the given number of seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
}

impl ApiError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(Json(ErrorBody::new(message)))
    }

    /// A 401 with `message`, asking for a bearer token.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::Unauthorized(Json(ErrorBody::new(message)), "Bearer".into())
    }

    /// A 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::NotFound(Json(ErrorBody::new(message)))
    }

    /// A 408 with `message`.
    pub fn request_timeout(message: impl Into<String>) -> ApiError {
        ApiError::RequestTimeout(Json(ErrorBody::new(message)))
    }

    /// A 503 with `message` and `Retry-After`.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::Unavailable(Json(ErrorBody::new(message)), RETRY_AFTER_SECONDS)
    }

    /// A 413 with `message`.
    pub fn payload_too_large(message: impl Into<String>) -> ApiError {
        ApiError::PayloadTooLarge(Json(ErrorBody::new(message)))
    }

    /// A 415 with `message`.
    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::UnsupportedMediaType(Json(ErrorBody::new(message)))
    }

    /// A 500 for a fault of the server, not of the request: `error` is logged, and the client
    /// learns nothing of the inside.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "request failed inside the server");
        ApiError::Internal(Json(ErrorBody::new("internal error")))
    }

    /// The answer to `error`, met on one image of several: the same status, its message
    /// naming the image by `origin` (`part 2 (image, "seven.png")`).
    pub fn for_image(origin: &str, error: CoreError) -> ApiError {
        ApiError::from_core(error, Some(origin))
    }

    fn from_core(error: CoreError, origin: Option<&str>) -> ApiError {
        let message = match origin {
            Some(origin) => format!("{origin}: {error}"),
            None => error.to_string(),
        };
        let body = Json(ErrorBody::new(message));
        match error {
            CoreError::EmptyImage
            | CoreError::NoDigit
            | CoreError::UnsupportedImageFormat
            | CoreError::UndecodableImage(_)
            | CoreError::InvalidPixels(_) => ApiError::BadRequest(body),
            CoreError::TooManyPixels { .. } | CoreError::SizeBeyondDecoding { .. } => ApiError::PayloadTooLarge(body),
            CoreError::Overloaded => ApiError::Unavailable(body, RETRY_AFTER_SECONDS),
            CoreError::PreprocessingFailed
            | CoreError::EncodeImage(_)
            | CoreError::InferenceFailed
            | CoreError::InferenceStopped
            | CoreError::Torch(_) => ApiError::internal(error),
        }
    }
}

impl From<ManagementError> for ApiError {
    /// A refused or failed management action: the client's request or bucket is at fault
    /// (4xx), unless the server itself failed.
    fn from(error: ManagementError) -> ApiError {
        let body = Json(ErrorBody::new(error.to_string()));
        match error {
            ManagementError::Invalid(_) => ApiError::BadRequest(body),
            ManagementError::NoBucket(_) => ApiError::NotFound(body),
            ManagementError::NotServing(_) => ApiError::Unavailable(body, RETRY_AFTER_SECONDS),
            ManagementError::Repository(refused) => match refused {
                RepositoryError::UnknownModel(_) | RepositoryError::UnknownVersion { .. } => ApiError::NotFound(body),
                RepositoryError::VersionLoaded { .. } | RepositoryError::DefaultVersion { .. } => {
                    ApiError::Conflict(body)
                }
            },
            ManagementError::Load { cause, .. } => match cause {
                LoadError::Artifact(artifact) => match artifact {
                    ArtifactError::Refused { .. } => ApiError::Forbidden(body),
                    ArtifactError::ChecksumMismatch { .. }
                    | ArtifactError::MissingAsset { .. }
                    | ArtifactError::InvalidChecksums { .. }
                    | ArtifactError::HttpStatus { .. }
                    | ArtifactError::Download { .. }
                    | ArtifactError::HostileArchive { .. }
                    | ArtifactError::InvalidArtifact { .. } => ApiError::BadRequest(body),
                    ArtifactError::Io { .. } | ArtifactError::InvalidAllowList { .. } | ArtifactError::Torch(_) => {
                        ApiError::internal(artifact)
                    }
                },
                LoadError::InvalidModel { .. }
                | LoadError::Preprocessing(_)
                | LoadError::Torch(_)
                | LoadError::WarmUp(_) => ApiError::BadRequest(body),
                LoadError::Device(_) | LoadError::CudaLibrary(_) | LoadError::EngineThreads(_) => {
                    ApiError::internal(cause)
                }
            },
            ManagementError::Record(_) | ManagementError::Interrupted(_) => ApiError::internal(error),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> ApiError {
        ApiError::from_core(error, None)
    }
}

/// The answer to a request whose handler panicked: a JSON 500, the panic logged.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send>) -> Response {
    tracing::error!("a request handler panicked");
    (StatusCode::INTERNAL_SERVER_ERROR, poem::web::Json(ErrorBody::new("internal error"))).into_response()
}

/// Turns an error that escaped the handlers into a JSON response with the same status:
/// responses built by [`ApiError`] pass through unchanged; framework errors (404, 405, 415,
/// multipart parse errors) get the JSON body. Installed once, around the whole app.
pub async fn json_error_response(error: poem::Error) -> Response {
    if error.is_from_response() {
        return error.into_response();
    }
    // The route matched, for the metrics (see `telemetry`); unset for unknown paths.
    let route = error.data::<PathPattern>().cloned();
    let status = error.status();
    let message = match status {
        StatusCode::NOT_FOUND => "no such route; see the API documentation at /".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route".to_owned(),
        _ if status.is_server_error() => {
            tracing::error!(%error, "unhandled server error");
            "internal error".to_owned()
        }
        _ => error.to_string(),
    };
    let mut response = (status, poem::web::Json(ErrorBody::new(message))).into_response();
    if let Some(route) = route {
        response.set_data(route);
    }
    response
}
