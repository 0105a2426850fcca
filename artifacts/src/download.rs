//! Fetching a file over HTTP(S) the careful way: streamed to a temporary file beside its
//! destination, with a read timeout and an overall deadline, a size cap, retries with
//! exponential backoff for failures that may pass (connection errors, timeouts, 5xx, 429,
//! truncated bodies), progress in the log, and an atomic rename only once the body is
//! complete. A partial file never takes the destination's name. With an allow-list in the
//! policy, the URL, every redirect and every host name's addresses are judged by it first.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::access::{self, BucketAllowList};
use crate::{Error, Result};

/// The longest wait between two attempts, however many retries are allowed.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How hard to try, and how much to accept.
#[derive(Clone, Debug)]
pub struct DownloadPolicy {
    /// Deadline for one attempt, headers and body together.
    pub timeout: Duration,
    /// Longest wait for the next bytes of the body.
    pub read_timeout: Duration,
    /// Attempts after the first one.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Largest body accepted.
    pub max_bytes: u64,
    /// Where downloads may go. `None` (the default) trusts every URL: the operator's own
    /// configuration, as at start-up. `Some` for URLs that come from a caller (a management
    /// API): the URL must pass [`BucketAllowList::check`], redirects are followed only within
    /// the list, host names resolving to loopback, link-local or metadata addresses are
    /// refused, and no proxy is used. Refusals are [`Error::Refused`] and never retried.
    pub allowed: Option<Arc<BucketAllowList>>,
}

impl Default for DownloadPolicy {
    fn default() -> Self {
        DownloadPolicy {
            timeout: Duration::from_secs(300),
            read_timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(500),
            max_bytes: 512 << 20,
            allowed: None,
        }
    }
}

/// Whether an attempt's failure is worth another try.
enum Attempt {
    Retry(Error),
    GiveUp(Error),
}

/// Downloads `url` to `destination` following `policy`. The destination's directory must
/// exist; the file appears there only when the whole body has arrived.
pub async fn fetch_to_file(url: &str, destination: &Path, policy: &DownloadPolicy) -> Result<()> {
    let mut builder = reqwest::Client::builder()
        .timeout(policy.timeout)
        .read_timeout(policy.read_timeout)
        .connect_timeout(policy.read_timeout);
    if let Some(allowed) = &policy.allowed {
        allowed.check(url)?;
        builder = allowed.guard_client(builder);
    }
    let client = builder.build().map_err(|error| Error::Download { url: url.to_owned(), reason: error.to_string() })?;
    let mut attempt = 0;
    loop {
        match fetch_once(&client, url, destination, policy).await {
            Ok(()) => return Ok(()),
            Err(Attempt::GiveUp(error)) => return Err(error),
            Err(Attempt::Retry(error)) if attempt >= policy.retries => return Err(error),
            Err(Attempt::Retry(error)) => {
                let wait = (policy.backoff * 2u32.saturating_pow(attempt)).min(MAX_BACKOFF);
                attempt += 1;
                tracing::warn!(%url, %error, attempt, retries = policy.retries, ?wait, "download failed, retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

async fn fetch_once(
    client: &reqwest::Client,
    url: &str,
    destination: &Path,
    policy: &DownloadPolicy,
) -> Result<(), Attempt> {
    let failed = |reason: String| Error::Download { url: url.to_owned(), reason };
    let transient = |error: reqwest::Error| Attempt::Retry(failed(describe(&error)));
    let mut response = client.get(url).send().await.map_err(|error| {
        // A guard's refusal, or a redirect that cannot be followed, fails the same way again.
        if let Some(reason) = access::refusal_in(&error) {
            Attempt::GiveUp(Error::Refused { url: url.to_owned(), reason })
        } else if error.is_redirect() {
            Attempt::GiveUp(failed(describe(&error)))
        } else {
            transient(error)
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        let error = Error::HttpStatus { url: url.to_owned(), status: status.as_u16() };
        let may_pass = status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        return Err(if may_pass { Attempt::Retry(error) } else { Attempt::GiveUp(error) });
    }
    let expected = response.content_length();
    if let Some(length) = expected.filter(|length| *length > policy.max_bytes) {
        return Err(Attempt::GiveUp(failed(format!("{length} bytes is over the limit of {}", policy.max_bytes))));
    }
    let directory = destination.parent().unwrap_or(Path::new("."));
    let mut partial = tempfile::NamedTempFile::new_in(directory)
        .map_err(|error| Attempt::GiveUp(Error::io("cannot create a file in", directory)(error)))?;
    let mut received = 0u64;
    let mut progress = Progress::new(url, expected);
    while let Some(chunk) = response.chunk().await.map_err(transient)? {
        received += chunk.len() as u64;
        if received > policy.max_bytes {
            return Err(Attempt::GiveUp(failed(format!("the body is over the limit of {} bytes", policy.max_bytes))));
        }
        partial.write_all(&chunk).map_err(|error| Attempt::GiveUp(Error::io("cannot write", partial.path())(error)))?;
        progress.update(received);
    }
    if let Some(length) = expected.filter(|length| *length != received) {
        return Err(Attempt::Retry(failed(format!("truncated body: {received} of {length} bytes"))));
    }
    partial.as_file().sync_all().map_err(|error| Attempt::GiveUp(Error::io("cannot write", partial.path())(error)))?;
    partial
        .persist(destination)
        .map_err(|error| Attempt::GiveUp(Error::io("cannot create", destination)(error.error)))?;
    tracing::info!(%url, bytes = received, "download complete");
    Ok(())
}

/// reqwest's top-level message hides the cause ("error decoding response body"); the
/// chain says what actually happened (timeout, connection reset, incomplete message).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Logs progress at every tenth of the body (or every 8 MiB when the size is unknown).
struct Progress<'a> {
    url: &'a str,
    expected: Option<u64>,
    next_report: u64,
}

impl<'a> Progress<'a> {
    const UNKNOWN_SIZE_STEP: u64 = 8 << 20;

    fn new(url: &'a str, expected: Option<u64>) -> Self {
        let mut progress = Progress { url, expected, next_report: 0 };
        progress.next_report = progress.step();
        progress
    }

    fn step(&self) -> u64 {
        self.expected.map_or(Self::UNKNOWN_SIZE_STEP, |length| (length / 10).max(1))
    }

    fn update(&mut self, received: u64) {
        if received < self.next_report {
            return;
        }
        match self.expected {
            Some(length) => {
                let percent = received * 100 / length.max(1);
                tracing::info!(url = self.url, received, total = length, "downloading: {percent}%");
            }
            None => tracing::info!(url = self.url, received, "downloading"),
        }
        self.next_report = received + self.step();
    }
}
