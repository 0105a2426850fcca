//! The paths the OpenAPI document declares, matched against request paths: they give a 405 its
//! `Allow` header ([`AllowHeader`]) and each request its `route` label in the metrics, the
//! template as documented (`/v2/models/{model}/infer`) even when a limit or the API key
//! answered before the router did.

use std::sync::Arc;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

/// One documented path.
struct DocumentedPath {
    /// As written in the document, `{parameters}` included.
    template: String,
    /// Split at `/`; `None` for a `{parameter}`.
    segments: Vec<Option<String>>,
    /// Its methods, `HEAD` included with `GET` (poem answers it).
    methods: HeaderValue,
}

/// The documented paths; cheap to clone.
#[derive(Clone)]
pub struct ApiPaths(Arc<Vec<DocumentedPath>>);

impl ApiPaths {
    /// The paths of `spec`, an OpenAPI document in JSON.
    pub fn from_spec(spec: &str) -> ApiPaths {
        let document: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let paths = document["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(template, operations)| {
                let mut methods: Vec<String> =
                    operations.as_object()?.keys().map(|method| method.to_ascii_uppercase()).collect();
                if methods.iter().any(|method| method == "GET") {
                    methods.push("HEAD".into());
                }
                let segments = template
                    .split('/')
                    .map(|segment| (!segment.starts_with('{')).then(|| segment.to_owned()))
                    .collect();
                Some(DocumentedPath {
                    template: template.clone(),
                    segments,
                    methods: HeaderValue::from_str(&methods.join(", ")).ok()?,
                })
            })
            .collect();
        ApiPaths(Arc::new(paths))
    }

    fn find(&self, path: &str) -> Option<&DocumentedPath> {
        let segments: Vec<&str> = path.split('/').collect();
        self.0.iter().find(|documented| {
            documented.segments.len() == segments.len()
                && documented
                    .segments
                    .iter()
                    .zip(&segments)
                    .all(|(expected, actual)| expected.as_deref().is_none_or(|expected| expected == *actual))
        })
    }

    /// The documented template `path` matches, if any.
    pub fn template(&self, path: &str) -> Option<&str> {
        self.find(path).map(|documented| documented.template.as_str())
    }
}

/// Middleware adding the `Allow` header that RFC 9110 requires on a 405, listing the methods
/// the OpenAPI document declares for the path.
#[derive(Clone)]
pub struct AllowHeader(pub ApiPaths);

impl<E: Endpoint> Middleware<E> for AllowHeader {
    type Output = AllowHeaderEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AllowHeaderEndpoint { inner, paths: self.0.clone() }
    }
}

/// The endpoint made by [`AllowHeader`].
pub struct AllowHeaderEndpoint<E> {
    inner: E,
    paths: ApiPaths,
}

impl<E: Endpoint> Endpoint for AllowHeaderEndpoint<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let path = request.uri().path().to_owned();
        let mut response = self.inner.call(request).await?.into_response();
        if response.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(documented) = self.paths.find(&path)
        {
            response.headers_mut().insert(header::ALLOW, documented.methods.clone());
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"paths": {
        "/model/predict": {"post": {}},
        "/v2/models/{model}/infer": {"post": {}},
        "/health/ready": {"get": {}}
    }}"#;

    #[test]
    fn request_paths_find_their_documented_template_and_methods() {
        let paths = ApiPaths::from_spec(SPEC);
        assert_eq!(paths.template("/v2/models/mnist/infer"), Some("/v2/models/{model}/infer"));
        assert_eq!(paths.template("/model/predict"), Some("/model/predict"));
        assert_eq!(paths.find("/health/ready").unwrap().methods, "GET, HEAD");
        for unknown in ["/model/predict/", "/v2/models/mnist", "/model", "/", "/v2/models/a/b/infer"] {
            assert_eq!(paths.template(unknown), None, "{unknown}");
        }
    }
}
