//! Every setting of the server, each a CLI flag with an environment variable; `--help`
//! lists them with their defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

/// Serve image classifiers over HTTP (MNIST digits and Fashion-MNIST clothes by default, or
/// the models you give), each verified before it loads, with a Swagger UI.
#[derive(Parser, Clone, Debug)]
#[command(name = "max-mnist", version)]
pub struct ServerSettings {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 5000)]
    pub port: u16,

    /// A model to serve, as NAME=BUCKET; repeat for several (env: comma-separated). BUCKET is
    /// an http(s) URL, a file:// URL or a local folder holding the model's archive and its
    /// `sha512sums.txt`; every file is verified before the model loads.
    #[arg(
        long = "model",
        env = "MODELS",
        value_name = "NAME=BUCKET",
        value_delimiter = ',',
        default_values = ["mnist=pretrained-model/mnist", "fashion-mnist=pretrained-model/fashion-mnist"]
    )]
    pub models: Vec<ModelSpec>,
    /// The model that the MAX routes (`/model/*`) and `/app` serve by default (default: the
    /// first `--model`).
    #[arg(long, env = "DEFAULT_MODEL", value_name = "NAME")]
    pub default_model: Option<String>,
    /// Folder of verified model files: each model's files go into `<ASSETS_DIR>/<NAME>/`.
    #[arg(long, env = "ASSETS_DIR", default_value = "assets")]
    pub assets_dir: PathBuf,
    /// Deadline in seconds for one attempt at downloading the model archive.
    #[arg(long, env = "DOWNLOAD_TIMEOUT_SECS", default_value_t = 300)]
    pub download_timeout_secs: u64,
    /// Further attempts after a failed download (with exponential backoff).
    #[arg(long, env = "DOWNLOAD_RETRIES", default_value_t = 3)]
    pub download_retries: u32,

    /// Largest request body accepted, in bytes (larger gets 413). Phone photos of 12-48 MP
    /// weigh 4-14 MB.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 24 * 1024 * 1024)]
    pub max_body_bytes: u64,
    /// Most bytes of request bodies held at once, all requests together; a body that would
    /// go over gets 503 with `Retry-After`. At least MAX_BODY_BYTES.
    #[arg(long, env = "BODY_MEMORY_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub body_memory_bytes: u64,
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

    /// Where the model management API listens (TorchServe's management routes and the Open
    /// Inference Protocol's repository routes), as HOST:PORT; never on the inference port.
    /// Unset: models change only with a restart. Needs ADMIN_API_KEY.
    #[arg(long, env = "MANAGEMENT_ADDRESS", value_name = "HOST:PORT")]
    pub management_address: Option<String>,
    /// The key the management API requires (`Authorization: Bearer <key>`); not the inference
    /// API_KEY. Never logged.
    #[arg(long, env = "ADMIN_API_KEY", hide_env_values = true)]
    pub admin_api_key: Option<ApiKey>,
    /// A bucket prefix the management API and `POST /models?url=` may load from (http(s) or
    /// file:// URL); repeat for several (env: comma-separated). Nothing else is fetched, no
    /// redirect may leave the list, and link-local, cloud metadata and (unless listed as an IP)
    /// loopback addresses are refused.
    #[arg(long = "allowed-bucket", env = "ALLOWED_BUCKETS", value_name = "URL_PREFIX", value_delimiter = ',')]
    pub allowed_buckets: Vec<String>,
    /// Recheck each model's bucket every so many seconds and swap to a verified new version
    /// when its `sha512sums.txt` changes (0: never).
    #[arg(long = "poll-interval", env = "POLL_INTERVAL_SECS", default_value = "0", value_parser = seconds_or_zero)]
    pub poll_interval: Duration,

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

/// One model to serve: its name in the routes and the bucket it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSpec {
    /// The name in the routes (`/models/{model}/predict`): letters, digits, `-`, `_` and `.`,
    /// starting with a letter or digit, at most 64 characters.
    pub name: String,
    /// An http(s) URL, a file:// URL or a local folder.
    pub bucket: String,
}

/// The longest model name.
const MAX_MODEL_NAME: usize = 64;

/// Refuses a model name that could not be a path segment as it is: 1 to 64 letters, digits,
/// `-`, `_` or `.`, starting with a letter or digit.
pub fn check_model_name(name: &str) -> Result<(), String> {
    let plain = name.chars().all(|character| character.is_ascii_alphanumeric() || "-_.".contains(character));
    if name.is_empty()
        || name.len() > MAX_MODEL_NAME
        || !plain
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "model name `{name}`: use 1 to {MAX_MODEL_NAME} letters, digits, `-`, `_` or `.`, starting with a letter \
             or digit"
        ));
    }
    Ok(())
}

impl std::str::FromStr for ModelSpec {
    type Err = String;

    /// Parses `NAME=BUCKET`, refusing names that could not be a path segment as they are.
    fn from_str(spec: &str) -> Result<ModelSpec, String> {
        let (name, bucket) = spec.trim().split_once('=').ok_or_else(|| format!("`{spec}` is not NAME=BUCKET"))?;
        let (name, bucket) = (name.trim(), bucket.trim());
        check_model_name(name)?;
        if bucket.is_empty() {
            return Err(format!("model `{name}` has no bucket"));
        }
        Ok(ModelSpec { name: name.to_owned(), bucket: bucket.to_owned() })
    }
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
    /// The settings with every default, as `--help` shows them, whatever the environment
    /// holds: tests start from here, and an `API_KEY` or `MAX_BODY_BYTES` set in a shell must
    /// not change what they run.
    pub fn defaults() -> ServerSettings {
        ServerSettings::from_args_ignoring_environment(["max-mnist"]).expect("the defaults parse")
    }

    /// Settings from command-line `args` alone (the first is the program's name), reading no
    /// environment variable.
    pub fn from_args_ignoring_environment<Arg>(
        args: impl IntoIterator<Item = Arg>,
    ) -> Result<ServerSettings, clap::Error>
    where
        Arg: Into<std::ffi::OsString> + Clone,
    {
        let command = ServerSettings::command().mut_args(|arg| arg.env(None));
        ServerSettings::from_arg_matches(&command.try_get_matches_from(args)?)
    }

    /// The model the MAX routes serve: `--default-model`, or the first `--model`.
    pub fn default_model_name(&self) -> Option<&str> {
        self.default_model.as_deref().or_else(|| self.models.first().map(|model| model.name.as_str()))
    }

    /// Refuses settings that contradict each other, saying which and why.
    pub fn check(&self) -> Result<(), String> {
        if self.models.is_empty() {
            return Err("no model to serve: give at least one --model NAME=BUCKET".into());
        }
        let mut names: Vec<&str> = self.models.iter().map(|model| model.name.as_str()).collect();
        names.sort_unstable();
        if let Some(twice) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(format!("model `{}` is given twice", twice[0]));
        }
        if let Some(default) = &self.default_model
            && !self.models.iter().any(|model| &model.name == default)
        {
            return Err(format!("--default-model `{default}` is not one of the --model names ({})", names.join(", ")));
        }
        if self.max_images_per_request > self.queue_capacity {
            return Err(format!(
                "MAX_IMAGES_PER_REQUEST ({}) is over QUEUE_CAPACITY ({}): a full form could never be admitted",
                self.max_images_per_request, self.queue_capacity
            ));
        }
        if self.max_body_bytes > self.body_memory_bytes {
            return Err(format!(
                "MAX_BODY_BYTES ({}) is over BODY_MEMORY_BYTES ({}): a body of the largest size could never be read",
                self.max_body_bytes, self.body_memory_bytes
            ));
        }
        if self.management_address.is_some() {
            let Some(admin_key) = &self.admin_api_key else {
                return Err(
                    "MANAGEMENT_ADDRESS needs ADMIN_API_KEY: the management API never runs unauthenticated".into()
                );
            };
            if self.api_key.as_ref() == Some(admin_key) {
                return Err("ADMIN_API_KEY must differ from API_KEY: an inference client must not manage models".into());
            }
            // Port 0 picks a free port for each.
            if self.port != 0 && self.management_address.as_deref() == Some(&format!("{}:{}", self.host, self.port)) {
                return Err("MANAGEMENT_ADDRESS must differ from the inference HOST:PORT".into());
            }
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
    fn defaults_serve_port_5000_and_both_committed_models() {
        let settings = ServerSettings::defaults();
        assert_eq!((settings.host.as_str(), settings.port), ("0.0.0.0", 5000));
        let models: Vec<(&str, &str)> =
            settings.models.iter().map(|model| (model.name.as_str(), model.bucket.as_str())).collect();
        assert_eq!(models, [("mnist", "pretrained-model/mnist"), ("fashion-mnist", "pretrained-model/fashion-mnist")]);
        assert_eq!(settings.default_model_name(), Some("mnist"));
        assert!(!settings.cors_enable);
    }

    #[test]
    fn models_are_name_equals_bucket_repeated_or_comma_separated() {
        let settings = parse(&["--model", "a=https://bucket.example/a/", "--model", "b.v2=file:///srv/b"]);
        assert_eq!(settings.models[1], ModelSpec { name: "b.v2".into(), bucket: "file:///srv/b".into() });
        assert_eq!(settings.default_model_name(), Some("a"));
        let settings = parse(&["--model", "a=x,b=y", "--default-model", "b"]);
        assert_eq!(settings.models.len(), 2);
        assert_eq!(settings.default_model_name(), Some("b"));
        assert_eq!(settings.check(), Ok(()));
        for bad in ["noequals", "=bucket", "a=", "../x=y", "a b=y", "a/b=y", "-a=y"] {
            assert!(try_parse(&["--model", bad]).is_err(), "{bad}");
        }
        assert!(parse(&["--model", "a=x", "--model", "a=y"]).check().unwrap_err().contains("twice"));
        assert!(parse(&["--model", "a=x", "--default-model", "b"]).check().unwrap_err().contains("not one of"));
    }

    #[test]
    fn the_defaults_read_no_environment_variable() {
        // SAFETY: this test binary's tests set no other variable and read these nowhere else.
        unsafe {
            std::env::set_var("MAX_BODY_BYTES", "7");
            std::env::set_var("MODELS", "only=elsewhere");
        }
        let settings = ServerSettings::defaults();
        unsafe {
            std::env::remove_var("MAX_BODY_BYTES");
            std::env::remove_var("MODELS");
        }
        assert_ne!(settings.max_body_bytes, 7);
        assert_eq!(settings.models.len(), 2);
    }

    fn try_parse(args: &[&str]) -> Result<ServerSettings, clap::Error> {
        ServerSettings::from_args_ignoring_environment(std::iter::once("max-mnist").chain(args.iter().copied()))
    }

    fn parse(args: &[&str]) -> ServerSettings {
        try_parse(args).unwrap()
    }

    #[test]
    fn an_api_key_is_never_shown_and_never_empty() {
        let settings = parse(&["--api-key", "s3cret-token"]);
        assert_eq!(settings.api_key.as_ref().map(ApiKey::expose), Some("s3cret-token"));
        assert!(!format!("{settings:?}").contains("s3cret"), "{settings:?}");
        assert!(try_parse(&["--api-key", " "]).is_err());
        assert!(try_parse(&["--api-key", "two\r\nX-Injected: 1"]).is_err());
        let from_a_file = parse(&["--api-key", "s3cret-token\n"]);
        assert_eq!(from_a_file.api_key.as_ref().map(ApiKey::expose), Some("s3cret-token"));
        assert!(ServerSettings::defaults().api_key.is_none());
    }

    #[test]
    fn timeouts_are_positive_seconds_fractions_allowed() {
        let settings = parse(&["--request-timeout-secs", "0.5"]);
        assert_eq!(settings.request_timeout, Duration::from_millis(500));
        assert_eq!(ServerSettings::defaults().drain_timeout, Duration::from_secs(30));
        for bad in ["0", "-1", "soon", "NaN", "1e19", "86401"] {
            assert!(try_parse(&["--drain-timeout-secs", bad]).is_err(), "{bad}");
        }
        assert_eq!(ServerSettings::defaults().shutdown_delay, Duration::ZERO);
        assert!(try_parse(&["--shutdown-delay-secs", "-1"]).is_err());
    }

    #[test]
    fn contradictory_settings_are_named() {
        let mut settings = ServerSettings::defaults();
        assert_eq!(settings.check(), Ok(()));
        settings.max_images_per_request = settings.queue_capacity + 1;
        assert!(settings.check().unwrap_err().contains("QUEUE_CAPACITY"));
        let mut settings = ServerSettings::defaults();
        settings.body_memory_bytes = settings.max_body_bytes - 1;
        assert!(settings.check().unwrap_err().contains("BODY_MEMORY_BYTES"));
        let mut settings = ServerSettings::defaults();
        settings.body_read_timeout = settings.request_timeout;
        assert!(settings.check().unwrap_err().contains("REQUEST_TIMEOUT_SECS"));
    }

    #[test]
    fn management_is_off_by_default_and_needs_its_own_key() {
        let settings = ServerSettings::defaults();
        assert!(settings.management_address.is_none() && settings.allowed_buckets.is_empty());
        assert_eq!(settings.poll_interval, Duration::ZERO);
        let without_key = parse(&["--management-address", "127.0.0.1:5001"]);
        assert!(without_key.check().unwrap_err().contains("ADMIN_API_KEY"));
        let same_key = parse(&["--management-address", "127.0.0.1:5001", "--admin-api-key", "k", "--api-key", "k"]);
        assert!(same_key.check().unwrap_err().contains("differ from API_KEY"));
        let same_port = parse(&["--management-address", "0.0.0.0:5000", "--admin-api-key", "k"]);
        assert!(same_port.check().unwrap_err().contains("inference HOST:PORT"));
        let settings = parse(&[
            "--management-address",
            "127.0.0.1:5001",
            "--admin-api-key",
            "admin",
            "--allowed-bucket",
            "https://a.example/models/,file:///srv/buckets/",
            "--poll-interval",
            "30",
        ]);
        assert_eq!(settings.check(), Ok(()));
        assert_eq!(settings.allowed_buckets, ["https://a.example/models/", "file:///srv/buckets/"]);
        assert_eq!(settings.poll_interval, Duration::from_secs(30));
        assert!(!format!("{settings:?}").contains("admin\""), "{settings:?}");
    }

    #[test]
    fn flags_override_defaults() {
        let settings = parse(&["--port", "8080", "--cors-enable", "true"]);
        assert_eq!(settings.port, 8080);
        assert!(settings.cors_enable);
    }
}
