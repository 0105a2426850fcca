//! The management routes, served only on `--management-address` and only with
//! `Authorization: Bearer <ADMIN_API_KEY>` (see `startup`):
//!
//! - TorchServe's management API: `POST /models?url=…&model_name=…` (register a model or a
//!   new version of one), `GET /models`, `GET /models/{model}[/{version}|/all]`,
//!   `PUT /models/{model}/{version}/set-default`, `DELETE /models/{model}[/{version}]`;
//! - the Open Inference Protocol's repository extension: `POST /v2/repository/index`,
//!   `POST /v2/repository/models/{model}/load` (again from its bucket, or from
//!   `{"parameters": {"url": "…"}}`) and `…/unload`.
//!
//! Every change goes through [`ModelManager`].

use std::sync::Arc;

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaRequest, Registry};
use poem_openapi::types::{ParseFromJSON, ToJSON};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, Object, OpenApi, Tags};

use super::{ModelManager, Outcome};
use crate::error::ApiError;
use crate::state::ServerState;
use crate::torchserve::{Batching, DescribeBody};
use crate::types::{ModelListEntry, ModelListResponse, json_request_meta};

#[derive(Tags)]
enum Tag {
    /// TorchServe's management API.
    TorchServeManagement,
    /// The Open Inference Protocol's model repository extension.
    ModelRepository,
}

/// TorchServe's answer to a change: `{"status": "…"}`.
#[derive(Object, Debug, Clone, PartialEq, serde::Deserialize)]
pub struct StatusBody {
    /// What was done.
    pub status: String,
}

/// One entry of `POST /v2/repository/index`.
#[derive(Object, Debug, Clone, PartialEq, serde::Deserialize)]
pub struct IndexEntry {
    /// The model's name.
    pub name: String,
    /// A loaded version (empty for a model that is not loaded).
    pub version: String,
    /// `READY`, or `UNAVAILABLE` for a configured model that was unloaded.
    pub state: String,
    /// Why it is unavailable; empty when ready.
    pub reason: String,
    /// Whether the name serves this version (an extension: Triton serves one version).
    pub default: bool,
}

/// The body of `POST /v2/repository/index` (optional).
#[derive(Object, Debug, Clone, Default, serde::Deserialize)]
pub struct IndexRequest {
    /// Only the versions ready for inference, leaving out the configured models that were
    /// unloaded.
    pub ready: Option<bool>,
}

/// The body of `POST /v2/repository/models/{model}/load` (optional).
#[derive(Object, Debug, Clone, Default, serde::Deserialize)]
pub struct LoadRequest {
    /// Load parameters.
    pub parameters: Option<LoadParameters>,
}

/// The parameters of a load. Triton's others (`config`, `file:…`) are refused, not ignored.
#[derive(Object, Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadParameters {
    /// The bucket to load from (an extension); it must be under `--allowed-bucket`. Without it
    /// the model is loaded again from its own bucket.
    pub url: Option<String>,
}

/// The answer of a repository load or unload.
#[derive(Object, Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RepositoryAnswer {
    /// The model's name.
    pub name: String,
    /// The version it serves now (empty once unloaded).
    pub version: String,
    /// `READY` or `UNAVAILABLE`.
    pub state: String,
    /// What was done.
    pub status: String,
}

/// A JSON body that may be absent: Triton's clients post some of these routes empty.
pub struct OptionalJson<T>(pub T);

impl<'a, T> ApiExtractor<'a> for OptionalJson<T>
where
    T: Default + serde::de::DeserializeOwned + ParseFromJSON + ToJSON + Send,
{
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Json<T> as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        json_request_meta::<T>(false)
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _options: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<OptionalJson<T>> {
        let bytes = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        let parsed = serde_json::from_slice(&bytes)
            .map_err(|error| ApiError::bad_request(format!("the body is not the JSON this route takes: {error}")))?;
        Ok(OptionalJson(parsed))
    }
}

/// The management routes over `manager`.
pub struct ManagementApi {
    manager: Arc<ModelManager>,
    batching: Batching,
}

impl ManagementApi {
    /// The routes, describing models' batching as `batching`.
    pub fn new(manager: Arc<ModelManager>, batching: Batching) -> ManagementApi {
        ManagementApi { manager, batching }
    }

    fn state(&self) -> &ServerState {
        self.manager.state()
    }

    /// The describe answers of `name`'s versions that `wanted` picks.
    fn describe(&self, name: &str, wanted: impl Fn(&str, bool) -> bool) -> Result<Json<Vec<DescribeBody>>, ApiError> {
        let entry = self.state().entries().into_iter().find(|entry| entry.name == name);
        let entry = entry.ok_or_else(|| ApiError::not_found(format!("no model `{name}`")))?;
        let default = entry.default_version.as_deref();
        let answers: Vec<DescribeBody> = entry
            .versions
            .iter()
            .filter(|served| wanted(served.version(), Some(served.version()) == default))
            .map(|served| self.batching.describe(served))
            .collect();
        if answers.is_empty() {
            return Err(ApiError::not_found(format!("model `{name}` has no such version loaded")));
        }
        Ok(Json(answers))
    }

    fn repository_answer(&self, name: &str, outcome: &Outcome) -> Json<RepositoryAnswer> {
        let version = self.state().model(Some(name)).map(|served| served.version().to_owned()).unwrap_or_default();
        let state = if version.is_empty() { "UNAVAILABLE" } else { "READY" };
        Json(RepositoryAnswer {
            name: name.to_owned(),
            version,
            state: state.into(),
            status: status_line(name, outcome),
        })
    }
}

/// TorchServe's wording of what an action did.
fn status_line(name: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Loaded { version, default: true } => {
            format!("Model \"{name}\" Version: {version} registered with 1 initial workers, and serves")
        }
        Outcome::Loaded { version, default: false } => format!(
            "Model \"{name}\" Version: {version} registered with 1 initial workers; \
             PUT /models/{name}/{version}/set-default to serve it"
        ),
        Outcome::Unchanged { version } => format!("Model \"{name}\" already serves version {version}"),
        Outcome::Unloaded { versions } => format!("Model \"{name}\" unregistered (version {})", versions.join(", ")),
        Outcome::DefaultSet { version } => {
            format!("Default version successfully updated for model \"{name}\" to \"{version}\"")
        }
    }
}

/// The model name TorchServe derives from a URL when `model_name` is not given: the last
/// segment without `.tar.gz` or `.mar`.
fn name_from_url(url: &str) -> String {
    let last = url.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    last.trim_end_matches(".tar.gz").trim_end_matches(".mar").to_owned()
}

#[OpenApi]
impl ManagementApi {
    /// Register a model, or a new version of one
    ///
    /// Fetches the bucket at `url` (it must be under `--allowed-bucket`), verifies every file
    /// against its `sha512sums.txt`, loads the model and warms it up, and only then serves it.
    /// A new name serves it at once; a name with versions keeps its default until
    /// `set-default`. Answers when done.
    #[oai(path = "/models", method = "post", tag = "Tag::TorchServeManagement")]
    async fn register(
        &self,
        /// The model's bucket.
        url: Query<String>,
        /// The model's name (default: the URL's last segment).
        model_name: Query<Option<String>>,
    ) -> Result<Json<StatusBody>, ApiError> {
        let name = model_name.0.unwrap_or_else(|| name_from_url(&url));
        let outcome = self.manager.register(&name, &url).await?;
        Ok(Json(StatusBody { status: status_line(&name, &outcome) }))
    }

    /// List the models
    #[oai(path = "/models", method = "get", tag = "Tag::TorchServeManagement")]
    async fn list(&self) -> Json<ModelListResponse> {
        let entry =
            |entry: crate::state::ModelEntry| ModelListEntry { model_name: entry.name, model_url: entry.bucket };
        Json(ModelListResponse { models: self.state().entries().into_iter().map(entry).collect() })
    }

    /// Describe a model's default version
    #[oai(path = "/models/:model", method = "get", tag = "Tag::TorchServeManagement")]
    async fn describe_default(&self, model: Path<String>) -> Result<Json<Vec<DescribeBody>>, ApiError> {
        self.describe(&model, |_, default| default)
    }

    /// Describe a model's versions
    ///
    /// `all` lists every loaded version; a version's name, that version.
    #[oai(path = "/models/:model/:version", method = "get", tag = "Tag::TorchServeManagement")]
    async fn describe_version(
        &self,
        model: Path<String>,
        version: Path<String>,
    ) -> Result<Json<Vec<DescribeBody>>, ApiError> {
        self.describe(&model, |loaded, _| version.0 == "all" || loaded == version.0)
    }

    /// Serve another loaded version
    #[oai(path = "/models/:model/:version/set-default", method = "put", tag = "Tag::TorchServeManagement")]
    async fn set_default(&self, model: Path<String>, version: Path<String>) -> Result<Json<StatusBody>, ApiError> {
        let outcome = self.manager.set_default(&model, &version).await?;
        Ok(Json(StatusBody { status: status_line(&model, &outcome) }))
    }

    /// Unregister a model
    ///
    /// Every version. Requests already running finish; later ones get 404.
    #[oai(path = "/models/:model", method = "delete", tag = "Tag::TorchServeManagement")]
    async fn unregister(&self, model: Path<String>) -> Result<Json<StatusBody>, ApiError> {
        let outcome = self.manager.unload(&model, None).await?;
        Ok(Json(StatusBody { status: status_line(&model, &outcome) }))
    }

    /// Unregister a version
    ///
    /// Not the default while other versions are loaded.
    #[oai(path = "/models/:model/:version", method = "delete", tag = "Tag::TorchServeManagement")]
    async fn unregister_version(
        &self,
        model: Path<String>,
        version: Path<String>,
    ) -> Result<Json<StatusBody>, ApiError> {
        let outcome = self.manager.unload(&model, Some(&version)).await?;
        Ok(Json(StatusBody { status: status_line(&model, &outcome) }))
    }

    /// Repository index
    ///
    /// Every loaded version of every model, and the configured models that were unloaded
    /// (`UNAVAILABLE`); with `{"ready": true}`, the loaded ones only.
    #[oai(path = "/v2/repository/index", method = "post", tag = "Tag::ModelRepository")]
    async fn index(&self, request: OptionalJson<IndexRequest>) -> Json<Vec<IndexEntry>> {
        let loaded = self.state().entries().into_iter().flat_map(|entry| {
            let default = entry.default_version.clone();
            entry.versions.into_iter().map(move |served| IndexEntry {
                name: served.name.clone(),
                version: served.version().to_owned(),
                state: "READY".into(),
                reason: String::new(),
                default: Some(served.version()) == default.as_deref(),
            })
        });
        let unloaded = self.manager.unloaded_configured().into_iter().map(|name| IndexEntry {
            name,
            version: String::new(),
            state: "UNAVAILABLE".into(),
            reason: "unloaded".into(),
            default: false,
        });
        let only_ready = request.0.ready == Some(true);
        Json(loaded.chain(unloaded).filter(|entry| !only_ready || entry.state == "READY").collect())
    }

    /// Load or reload a model
    ///
    /// From `parameters.url` (under `--allowed-bucket`), or again from the model's own bucket.
    /// The new version is verified, loaded and warmed up, then becomes the only one the name
    /// serves; requests already running finish on the old one.
    #[oai(path = "/v2/repository/models/:model/load", method = "post", tag = "Tag::ModelRepository")]
    async fn load(
        &self,
        model: Path<String>,
        request: OptionalJson<LoadRequest>,
    ) -> Result<Json<RepositoryAnswer>, ApiError> {
        let url = request.0.parameters.and_then(|parameters| parameters.url);
        let outcome = self.manager.load(&model, url.as_deref()).await?;
        Ok(self.repository_answer(&model, &outcome))
    }

    /// Unload a model
    ///
    /// Every version. Requests already running finish; later ones get 404.
    #[oai(path = "/v2/repository/models/:model/unload", method = "post", tag = "Tag::ModelRepository")]
    async fn unload(
        &self,
        model: Path<String>,
        _request: OptionalJson<serde_json::Value>,
    ) -> Result<Json<RepositoryAnswer>, ApiError> {
        let outcome = self.manager.unload(&model, None).await?;
        Ok(self.repository_answer(&model, &outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_comes_from_the_urls_last_segment() {
        assert_eq!(name_from_url("https://bucket.example/models/mnist/"), "mnist");
        assert_eq!(name_from_url("https://bucket.example/models/squeezenet.mar"), "squeezenet");
        assert_eq!(name_from_url("file:///srv/buckets/digits.tar.gz"), "digits");
    }
}
