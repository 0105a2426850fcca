//! The paths the OpenAPI document declares, matched against request paths: they give each
//! request its `route` label in the metrics, the template as documented
//! (`/v2/models/{model}/infer`) even when a limit or the API key answered before the router
//! did, and a 405 its `Allow` header ([`AllowHeader`]). A request is matched once, by the
//! outermost middleware (`telemetry`), which leaves the [`DocumentedRoute`] in the request's
//! data for the layers inside.
//!
//! [`with_model_names`] writes the served models' names into the document, as an enum
//! wherever a path takes a model's name.

use std::sync::Arc;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

/// The path parameter that names a model, under `/models` and `/v2/models` alike.
const MODEL_PARAMETER: &str = "model";

/// `spec` (an OpenAPI document in JSON) with every path parameter that names a model
/// restricted to `names`, so that Swagger UI offers them in a list and a client generated from
/// the document (or schemathesis) calls models that exist. Unparsable input is returned as is.
pub fn with_model_names(spec: &str, names: &[String]) -> String {
    let Ok(mut document) = serde_json::from_str::<serde_json::Value>(spec) else { return spec.to_owned() };
    // `get_mut`, not `[…]`: indexing a JSON object mutably would add the missing keys as null.
    let paths = document.get_mut("paths").and_then(serde_json::Value::as_object_mut);
    let parameters = paths
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|operations| operations.values_mut())
        .filter_map(|operation| operation.get_mut("parameters").and_then(serde_json::Value::as_array_mut))
        .flatten();
    for parameter in parameters {
        let names_a_model = parameter["in"] == "path" && parameter["name"] == MODEL_PARAMETER;
        if names_a_model {
            parameter["schema"] = serde_json::json!({"type": "string", "enum": names});
        }
    }
    serde_json::to_string_pretty(&document).unwrap_or_else(|_| spec.to_owned())
}

/// One documented path.
struct DocumentedPath {
    /// As written in the document, `{parameters}` included (shared, as a metric label is).
    template: Arc<str>,
    /// Split at `/`; `None` for a `{parameter}`.
    segments: Vec<Option<String>>,
    /// Its methods, `HEAD` included with `GET` (poem answers it).
    methods: HeaderValue,
}

/// The documented path a request matched; cheap to clone.
#[derive(Clone)]
pub struct DocumentedRoute(Arc<DocumentedPath>);

impl DocumentedRoute {
    /// The path as the document writes it.
    pub fn template(&self) -> Arc<str> {
        self.0.template.clone()
    }

    /// Its methods, for an `Allow` header.
    pub fn methods(&self) -> &HeaderValue {
        &self.0.methods
    }
}

/// The documented paths; cheap to clone.
#[derive(Clone)]
pub struct ApiPaths(Arc<Vec<Arc<DocumentedPath>>>);

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
                Some(Arc::new(DocumentedPath {
                    template: template.as_str().into(),
                    segments,
                    methods: HeaderValue::from_str(&methods.join(", ")).ok()?,
                }))
            })
            .collect();
        ApiPaths(Arc::new(paths))
    }

    /// The documented path that `path` matches, if any.
    pub fn find(&self, path: &str) -> Option<DocumentedRoute> {
        let length = path.split('/').count();
        let documented = self.0.iter().find(|documented| {
            documented.segments.len() == length
                && documented
                    .segments
                    .iter()
                    .zip(path.split('/'))
                    .all(|(expected, actual)| expected.as_deref().is_none_or(|expected| expected == actual))
        });
        documented.cloned().map(DocumentedRoute)
    }
}

/// Middleware adding the `Allow` header that RFC 9110 requires on a 405, listing the methods
/// the OpenAPI document declares for the path; it reads the [`DocumentedRoute`] that the
/// telemetry middleware, outside it, found.
pub struct AllowHeader;

impl<E: Endpoint> Middleware<E> for AllowHeader {
    type Output = AllowHeaderEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AllowHeaderEndpoint { inner }
    }
}

/// The endpoint made by [`AllowHeader`].
pub struct AllowHeaderEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for AllowHeaderEndpoint<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let allowed = request.data::<DocumentedRoute>().map(|route| route.methods().clone());
        let mut response = self.inner.call(request).await?.into_response();
        if response.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(methods) = allowed
        {
            response.headers_mut().insert(header::ALLOW, methods);
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
    fn model_parameters_list_the_served_names() {
        let spec = serde_json::json!({"paths": {
            "/models/{model}/predict": {"post": {"parameters": [
                {"name": "model", "in": "path", "schema": {"type": "string"}},
                {"name": "include_input", "in": "query", "schema": {"type": "boolean"}}
            ]}},
            "/v2/models/{model}/versions/{version}": {"get": {"parameters": [
                {"name": "model", "in": "path", "schema": {"type": "string"}},
                {"name": "version", "in": "path", "schema": {"type": "string"}}
            ]}}
        }});
        let names = ["mnist".to_owned(), "fashion-mnist".to_owned()];
        let patched: serde_json::Value = serde_json::from_str(&with_model_names(&spec.to_string(), &names)).unwrap();
        let listed = serde_json::json!({"type": "string", "enum": ["mnist", "fashion-mnist"]});
        let predict = &patched["paths"]["/models/{model}/predict"]["post"]["parameters"];
        assert_eq!(predict[0]["schema"], listed);
        assert_eq!(predict[1]["schema"]["type"], "boolean");
        let version = &patched["paths"]["/v2/models/{model}/versions/{version}"]["get"]["parameters"];
        assert_eq!(version[0]["schema"], listed);
        assert_eq!(version[1]["schema"], serde_json::json!({"type": "string"}));
        let untouched = serde_json::json!({"paths": {"/models": {"get": {"tags": ["Models"]}}}});
        assert_eq!(with_model_names(&untouched.to_string(), &names), serde_json::to_string_pretty(&untouched).unwrap());
    }

    #[test]
    fn request_paths_find_their_documented_template_and_methods() {
        let paths = ApiPaths::from_spec(SPEC);
        let template = |path| paths.find(path).map(|route| route.template().to_string());
        assert_eq!(template("/v2/models/mnist/infer").as_deref(), Some("/v2/models/{model}/infer"));
        assert_eq!(template("/model/predict").as_deref(), Some("/model/predict"));
        assert_eq!(paths.find("/health/ready").unwrap().methods(), "GET, HEAD");
        for unknown in ["/model/predict/", "/v2/models/mnist", "/model", "/", "/v2/models/a/b/infer"] {
            assert_eq!(template(unknown), None, "{unknown}");
        }
    }
}
