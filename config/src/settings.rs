//! Every setting of the server, each a CLI flag with an environment variable; `--help`
//! lists them with their defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Serve the MNIST digit classifier over HTTP, with verified weights and a Swagger UI.
#[derive(Parser, Clone, Debug)]
#[command(name = "max-mnist", version)]
pub struct ServerSettings {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 5000)]
    pub port: u16,

    /// Where the model archive is fetched from when `assets/` holds no verified model:
    /// an http(s) URL, a file:// URL or a local directory.
    #[arg(long, env = "MODEL_BUCKET", default_value = "pretrained-model")]
    pub model_bucket: String,
    /// Name of the model archive in the bucket.
    #[arg(long, env = "MODEL_FILE", default_value = "mnist-classifier.tar.gz")]
    pub model_file: String,
    /// Directory of verified model files.
    #[arg(long, env = "ASSETS_DIR", default_value = "assets")]
    pub assets_dir: PathBuf,
    /// SHA-512 checksums every file in the assets directory must match.
    #[arg(long, env = "SHA512SUMS", default_value = "sha512sums.txt")]
    pub checksums: PathBuf,
    /// Deadline in seconds for one attempt at downloading the model archive.
    #[arg(long, env = "DOWNLOAD_TIMEOUT_SECS", default_value_t = 300)]
    pub download_timeout_secs: u64,
    /// Further attempts after a failed download (with exponential backoff).
    #[arg(long, env = "DOWNLOAD_RETRIES", default_value_t = 3)]
    pub download_retries: u32,

    /// Largest request body accepted, in bytes (larger gets 413).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: u64,
    /// Largest image accepted, in pixels (width × height, checked before decoding; larger gets 413).
    #[arg(long, env = "MAX_IMAGE_PIXELS", default_value_t = 16_000_000)]
    pub max_image_pixels: u64,
    /// Most parts in one multipart request, each an image (more gets 413); at most
    /// QUEUE_CAPACITY.
    #[arg(long, env = "MAX_IMAGES_PER_REQUEST", default_value_t = 64)]
    pub max_images_per_request: usize,
    /// Most images in one forward pass.
    #[arg(long, env = "MAX_BATCH_SIZE", default_value_t = 32)]
    pub max_batch_size: usize,
    /// Longest a batch waits, in microseconds after its first image, for images still being
    /// preprocessed (0: run what is queued at once, the fastest on 2 cores; an idle server
    /// never waits).
    #[arg(long, env = "MAX_BATCH_DELAY_US", default_value_t = 0)]
    pub max_batch_delay_us: u64,
    /// Most images waiting for preprocessing, and most waiting for inference; a request whose
    /// images do not fit gets 503.
    #[arg(long, env = "QUEUE_CAPACITY", default_value_t = 1024)]
    pub queue_capacity: usize,
    /// Threads decoding and preprocessing images (0: one per CPU core).
    #[arg(long, env = "PREPROCESS_THREADS", default_value_t = 0)]
    pub preprocess_threads: usize,
    /// libtorch intra-op threads of the inference thread.
    #[arg(long, env = "TORCH_THREADS", default_value_t = 1)]
    pub torch_threads: i32,

    /// Longest a request may take, in seconds, body included; past it the client gets 503 with
    /// `Retry-After`. Must be over BODY_READ_TIMEOUT_SECS.
    #[arg(long = "request-timeout-secs", env = "REQUEST_TIMEOUT_SECS", default_value = "60", value_parser = seconds)]
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's headers, in seconds (408, and the
    /// connection is closed). Also how long an idle kept-alive connection stays open.
    #[arg(long = "header-read-timeout-secs", env = "HEADER_READ_TIMEOUT_SECS", default_value = "10", value_parser = seconds)]
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a request's body, in seconds (408).
    #[arg(long = "body-read-timeout-secs", env = "BODY_READ_TIMEOUT_SECS", default_value = "30", value_parser = seconds)]
    pub body_read_timeout: Duration,
    /// Most connections open at once; further clients wait in the listen backlog.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// After ctrl-c or SIGTERM, how long the server reports not-ready while still serving, in
    /// seconds, so that a load balancer polling readiness stops sending it requests first.
    #[arg(long = "shutdown-delay-secs", env = "SHUTDOWN_DELAY_SECS", default_value = "0", value_parser = seconds_or_zero)]
    pub shutdown_delay: Duration,
    /// After ctrl-c or SIGTERM (and the shutdown delay), how long in-flight requests may run
    /// before the server exits anyway, in seconds.
    #[arg(long = "drain-timeout-secs", env = "DRAIN_TIMEOUT_SECS", default_value = "30", value_parser = seconds)]
    pub drain_timeout: Duration,

    /// Require `Authorization: Bearer <key>` on the model routes (`/model/*`, `/v2/models/*`,
    /// `/v2`). Unset: no authentication. Never logged.
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    pub api_key: Option<ApiKey>,
    /// With an API key: require it on `/health/*` and `/v2/health/*` too (probes then need
    /// the header).
    #[arg(long, env = "AUTH_HEALTH", default_value_t = false, action = clap::ArgAction::Set)]
    pub auth_health: bool,
    /// With an API key: require it on `/metrics` too.
    #[arg(long, env = "AUTH_METRICS", default_value_t = false, action = clap::ArgAction::Set)]
    pub auth_metrics: bool,

    /// Send CORS headers allowing any origin.
    #[arg(long, env = "CORS_ENABLE", default_value_t = false, action = clap::ArgAction::Set)]
    pub cors_enable: bool,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing directive).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// A duration given in seconds, fractions allowed (`0.5`); positive.
fn seconds(value: &str) -> Result<Duration, String> {
    let duration = seconds_or_zero(value)?;
    if duration.is_zero() {
        return Err(format!("`{value}` is not a positive number of seconds"));
    }
    Ok(duration)
}

/// The longest duration a setting takes: a day (far larger ones overflow timers).
const MAX_SECONDS: f64 = 86_400.0;

/// A duration given in seconds, fractions allowed; zero to a day.
fn seconds_or_zero(value: &str) -> Result<Duration, String> {
    let seconds: f64 = value.trim().parse().map_err(|_| format!("`{value}` is not a number of seconds"))?;
    if seconds > MAX_SECONDS {
        return Err(format!("`{value}` seconds is over a day"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{value}` is not a number of seconds, 0 or more"))
}

/// A secret bearer token. Its `Debug` form is redacted, so settings can be logged safely.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The token itself, for comparing with what clients send.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ApiKey {
    type Err = String;

    /// Refuses an empty key: an empty `API_KEY` would otherwise lock every client out, or
    /// (worse, in a careless check) let every client in.
    /// Surrounding whitespace (the newline of a key file made with `echo`) is dropped: no
    /// client could send it in a header.
    fn from_str(key: &str) -> Result<ApiKey, String> {
        let key = key.trim();
        if key.is_empty() {
            return Err("the API key is empty".into());
        }
        if !key.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err("the API key has spaces or control characters, which no header can carry".into());
        }
        Ok(ApiKey(key.to_owned()))
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ApiKey(<redacted>)")
    }
}

/// How log lines are written.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl ServerSettings {
    /// The settings with every default, as `--help` shows them; tests start from here.
    pub fn defaults() -> ServerSettings {
        ServerSettings::parse_from(["max-mnist"])
    }

    /// Refuses settings that contradict each other, saying which and why.
    pub fn check(&self) -> Result<(), String> {
        if self.max_images_per_request > self.queue_capacity {
            return Err(format!(
                "MAX_IMAGES_PER_REQUEST ({}) is over QUEUE_CAPACITY ({}): a full form could never be admitted",
                self.max_images_per_request, self.queue_capacity
            ));
        }
        if self.body_read_timeout >= self.request_timeout {
            return Err(format!(
                "BODY_READ_TIMEOUT_SECS ({:?}) must be under REQUEST_TIMEOUT_SECS ({:?}): a slow body would get 503, \
                 not 408",
                self.body_read_timeout, self.request_timeout
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_port_5000_from_the_repository_bucket() {
        let settings = ServerSettings::defaults();
        assert_eq!((settings.host.as_str(), settings.port), ("0.0.0.0", 5000));
        assert_eq!(settings.model_bucket, "pretrained-model");
        assert!(!settings.cors_enable);
    }

    #[test]
    fn an_api_key_is_never_shown_and_never_empty() {
        let settings = ServerSettings::parse_from(["max-mnist", "--api-key", "s3cret-token"]);
        assert_eq!(settings.api_key.as_ref().map(ApiKey::expose), Some("s3cret-token"));
        assert!(!format!("{settings:?}").contains("s3cret"), "{settings:?}");
        assert!(ServerSettings::try_parse_from(["max-mnist", "--api-key", " "]).is_err());
        assert!(ServerSettings::try_parse_from(["max-mnist", "--api-key", "two\r\nX-Injected: 1"]).is_err());
        let from_a_file = ServerSettings::parse_from(["max-mnist", "--api-key", "s3cret-token\n"]);
        assert_eq!(from_a_file.api_key.as_ref().map(ApiKey::expose), Some("s3cret-token"));
        assert!(ServerSettings::defaults().api_key.is_none());
    }

    #[test]
    fn timeouts_are_positive_seconds_fractions_allowed() {
        let settings = ServerSettings::parse_from(["max-mnist", "--request-timeout-secs", "0.5"]);
        assert_eq!(settings.request_timeout, Duration::from_millis(500));
        assert_eq!(ServerSettings::defaults().drain_timeout, Duration::from_secs(30));
        for bad in ["0", "-1", "soon", "NaN", "1e19", "86401"] {
            assert!(ServerSettings::try_parse_from(["max-mnist", "--drain-timeout-secs", bad]).is_err(), "{bad}");
        }
        assert_eq!(ServerSettings::defaults().shutdown_delay, Duration::ZERO);
        assert!(ServerSettings::try_parse_from(["max-mnist", "--shutdown-delay-secs", "-1"]).is_err());
    }

    #[test]
    fn contradictory_settings_are_named() {
        let mut settings = ServerSettings::defaults();
        assert_eq!(settings.check(), Ok(()));
        settings.max_images_per_request = settings.queue_capacity + 1;
        assert!(settings.check().unwrap_err().contains("QUEUE_CAPACITY"));
        let mut settings = ServerSettings::defaults();
        settings.body_read_timeout = settings.request_timeout;
        assert!(settings.check().unwrap_err().contains("REQUEST_TIMEOUT_SECS"));
    }

    #[test]
    fn flags_override_defaults() {
        let settings = ServerSettings::parse_from(["max-mnist", "--port", "8080", "--cors-enable", "true"]);
        assert_eq!(settings.port, 8080);
        assert!(settings.cors_enable);
    }
}
