//! Logging set-up: a tracing subscriber with the configured filter, as text or JSON lines.
//! Lines are written to stderr by a thread of their own (`tracing-appender`), so that a
//! request never waits on the terminal or a log collector; under a flood that outpaces the
//! writer, lines are dropped rather than requests slowed.

use max_mnist_config::settings::LogFormat;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

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
