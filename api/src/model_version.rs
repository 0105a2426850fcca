//! The `X-Model-Version` header: every answer that a model version gave names that version,
//! so that a client (and a test) can tell which one served it while versions are swapped.
//!
//! The route looks its model up through [`crate::state::ServerState::model`], which
//! [`record`]s the version it found in a slot that this middleware opens for the request's
//! task; the middleware writes it into the response.

use std::cell::RefCell;

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

/// The header naming the version that answered.
pub const MODEL_VERSION_HEADER: &str = "x-model-version";

tokio::task_local! {
    static SERVED_VERSION: RefCell<Option<String>>;
}

/// Notes that the current request is served by `version`; outside a request, nothing.
pub fn record(version: &str) {
    let _ = SERVED_VERSION.try_with(|slot| *slot.borrow_mut() = Some(version.to_owned()));
}

/// Middleware adding `X-Model-Version` to the successful answers of a version.
#[derive(Clone, Copy, Default)]
pub struct ModelVersionHeader;

impl<E: Endpoint> Middleware<E> for ModelVersionHeader {
    type Output = ModelVersionHeaderEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ModelVersionHeaderEndpoint { inner }
    }
}

/// The endpoint made by [`ModelVersionHeader`].
pub struct ModelVersionHeaderEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for ModelVersionHeaderEndpoint<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> Result<Response> {
        SERVED_VERSION
            .scope(RefCell::new(None), async {
                let mut response = self.inner.call(request).await?.into_response();
                let version = SERVED_VERSION.with(|slot| slot.borrow_mut().take());
                if let Some(value) = version.and_then(|version| HeaderValue::from_str(&version).ok()) {
                    response.headers_mut().insert(MODEL_VERSION_HEADER, value);
                }
                Ok(response)
            })
            .await
    }
}
