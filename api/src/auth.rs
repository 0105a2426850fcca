//! Optional bearer-token authentication (`--api-key` / `API_KEY`).
//!
//! Fail closed: with a key set, every path needs it except an explicit list of open ones:
//! the documentation (`/`, `/swagger.json`), the drawing page's files, and, unless configured
//! otherwise, the health probes (each model's readiness included) and `/metrics`. The key is compared through SHA-256 digests in
//! constant time, so neither its content nor its length leaks through timing.

use max_mnist_config::settings::ApiKey;
use poem::http::header::AUTHORIZATION;
use poem::{Endpoint, Middleware, Request, Result};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Paths open to anyone, always.
const OPEN_PATHS: [&str; 7] =
    ["/", "/swagger.json", "/app", "/app/", "/app/app.js", "/app/app.css", "/app/limits.json"];
/// The server's health probes, open unless `AUTH_HEALTH` is set (and so is each model's
/// readiness, see [`is_model_readiness`]).
const HEALTH_PATHS: [&str; 4] = ["/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready"];
/// The metrics route, open unless `AUTH_METRICS` is set.
const METRICS_PATH: &str = "/metrics";

/// Whether `path` is a model's readiness probe: `/v2/models/{model}/ready` or
/// `/v2/models/{model}/versions/{version}/ready`, each name one plain segment.
fn is_model_readiness(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/v2/models/") else { return false };
    let segments: Vec<&str> = rest.split('/').collect();
    let plain = |segment: &&str| !segment.is_empty() && *segment != "." && *segment != "..";
    match segments.as_slice() {
        [model, "ready"] => plain(model),
        [model, "versions", version, "ready"] => plain(model) && plain(version),
        _ => false,
    }
}

/// Middleware requiring `Authorization: Bearer <key>` when a key is set.
#[derive(Clone)]
pub struct BearerAuth {
    /// The key's SHA-256; `None`: no key, every path is open.
    key_digest: Option<[u8; 32]>,
    /// Whether the documentation and the drawing page are open.
    open_pages: bool,
    open_health: bool,
    open_metrics: bool,
}

impl BearerAuth {
    /// Requires `key`, when there is one; `protect_health` and `protect_metrics` close the
    /// probes and `/metrics` too.
    pub fn new(key: Option<&ApiKey>, protect_health: bool, protect_metrics: bool) -> BearerAuth {
        BearerAuth {
            key_digest: key.map(|key| Sha256::digest(key.expose()).into()),
            open_pages: true,
            open_health: !protect_health,
            open_metrics: !protect_metrics,
        }
    }

    /// Requires `key` on every path, with no exception (the management API).
    pub fn everywhere(key: &ApiKey) -> BearerAuth {
        BearerAuth {
            key_digest: Some(Sha256::digest(key.expose()).into()),
            open_pages: false,
            open_health: false,
            open_metrics: false,
        }
    }

    fn is_open(&self, path: &str) -> bool {
        self.key_digest.is_none()
            || (self.open_pages && OPEN_PATHS.contains(&path))
            || (self.open_health && (HEALTH_PATHS.contains(&path) || is_model_readiness(path)))
            || (self.open_metrics && path == METRICS_PATH)
    }

    fn authorised(&self, request: &Request) -> Result<(), ApiError> {
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| {
                ApiError::unauthorized("this route needs the API key: send `Authorization: Bearer <key>`")
            })?;
        let digest: [u8; 32] = Sha256::digest(token.trim()).into();
        if self.key_digest.is_some_and(|key_digest| bool::from(digest.ct_eq(&key_digest))) {
            Ok(())
        } else {
            Err(ApiError::unauthorized("the API key is wrong"))
        }
    }
}

impl<E: Endpoint> Middleware<E> for BearerAuth {
    type Output = BearerAuthEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BearerAuthEndpoint { inner, auth: self.clone() }
    }
}

/// The endpoint made by [`BearerAuth`].
pub struct BearerAuthEndpoint<E> {
    inner: E,
    auth: BearerAuth,
}

impl<E: Endpoint> Endpoint for BearerAuthEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, request: Request) -> Result<E::Output> {
        if !self.auth.is_open(request.uri().path()) {
            self.auth.authorised(&request)?;
        }
        self.inner.call(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_models_readiness_probe_is_a_health_path_and_nothing_else_is() {
        for path in ["/v2/models/mnist/ready", "/v2/models/fashion-mnist/versions/0123456789ab/ready"] {
            assert!(is_model_readiness(path), "{path}");
        }
        for path in [
            "/v2/models/mnist/infer",
            "/v2/models//ready",
            "/v2/models/../ready",
            "/v2/models/mnist/ready/",
            "/v2/models/mnist/versions/ready",
            "/v2/models/a/b/ready",
            "/model/ready",
        ] {
            assert!(!is_model_readiness(path), "{path}");
        }
    }
}
