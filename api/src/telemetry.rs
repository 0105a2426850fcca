//! Logging set-up: a tracing subscriber with the configured filter, as text or JSON lines.

use max_mnist_config::settings::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `filter` is a tracing directive such as `info` or
/// `max_mnist_api=debug,info`; an invalid one falls back to `info`.
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
