//! What every route shares: the model repository (each model by name, with the versions of it
//! that are loaded and the one its name serves) and whether the server is ready.
//!
//! The socket opens before any weights are fetched and verified, so that liveness probes and
//! metrics answer during a long download. Each configured model's routes answer 503 until it
//! is loaded and warmed up ([`ServerState::serve_model`]); the server as a whole reports ready
//! once every configured model is. After a shutdown signal readiness says `draining` while
//! in-flight requests finish.
//!
//! The repository changes at run time (see `management`): versions are added, swapped and
//! removed under a short write lock. A request takes its own handle on the version it found
//! ([`ServerState::model`]), so a swap or an unload never disturbs it: it finishes on that
//! version, whose engine stops once the last such request is answered.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use max_mnist_artifacts::bucket::VerifiedAsset;
use max_mnist_core::inference::InferenceEngine;

use crate::error::ApiError;
use crate::types::{LabelsResponse, ModelMetadataResponse};

/// Where the server is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Verifying the weights, loading the models or warming them up.
    Starting,
    /// Serving predictions.
    Ready,
    /// A shutdown signal arrived: finishing in-flight requests, taking no new connections.
    Draining,
}

impl Readiness {
    /// The word health responses use: `starting`, `ready` or `draining`.
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Starting => "starting",
            Readiness::Ready => "ready",
            Readiness::Draining => "draining",
        }
    }
}

/// Who named a model's bucket, which decides whether fetching from it needs the allow-list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The operator, with `--model`: trusted as configuration is.
    Configured,
    /// A client of the management API: only buckets under `--allowed-bucket`.
    Registered,
}

/// One loaded version of a model: the engine running it and the answers about it that never
/// change.
pub struct ServedModel {
    /// The model's name in the routes.
    pub name: String,
    /// Where this version came from (a URL or a folder).
    pub bucket: String,
    /// Who named that bucket.
    pub origin: Origin,
    /// The inference engine.
    pub engine: InferenceEngine,
    /// The answer of its metadata route; `metadata.version` is the version's name.
    pub metadata: ModelMetadataResponse,
    /// The answer of its labels route.
    pub labels: LabelsResponse,
    /// When it was loaded (RFC 3339, UTC).
    pub loaded_at: String,
    /// Whether it runs on a GPU.
    pub on_gpu: bool,
    /// The folder holding its verified files.
    pub assets_dir: PathBuf,
    /// Its files, each with the SHA-512 it was verified against.
    pub files: Vec<VerifiedAsset>,
}

impl ServedModel {
    /// The version's name: the first 12 hex digits of its network file's SHA-512.
    pub fn version(&self) -> &str {
        &self.metadata.version
    }
}

/// A model's name with its loaded versions.
struct NamedModel {
    /// The bucket its name follows (for a reload and for poll mode): its default version's,
    /// or the configured one before that is loaded.
    bucket: String,
    origin: Origin,
    /// Loaded versions, oldest first.
    versions: Vec<Arc<ServedModel>>,
    /// The version the name serves; `None` until the first one is loaded.
    default_version: Option<String>,
}

impl NamedModel {
    /// Where version `version` of this model, called `name`, is among its versions.
    fn position(&self, name: &str, version: &str) -> Result<usize, RepositoryError> {
        let position = self.versions.iter().position(|served| served.version() == version);
        position.ok_or_else(|| RepositoryError::UnknownVersion { name: name.into(), version: version.into() })
    }

    fn default(&self) -> Option<&Arc<ServedModel>> {
        let default = self.default_version.as_deref()?;
        self.versions.iter().find(|served| served.version() == default)
    }
}

/// The models by name, in the order they were added, and the one the MAX routes use by
/// default.
struct Repository {
    names: Vec<String>,
    models: HashMap<String, NamedModel>,
    default: String,
}

impl Repository {
    /// The model called `name`, or a 404 naming the models served.
    fn model(&self, name: &str) -> Result<&NamedModel, ApiError> {
        self.models.get(name).ok_or_else(|| {
            ApiError::not_found(format!("no model `{name}`; this server serves {}", self.names.join(", ")))
        })
    }
}

/// The 503 for a model whose first version is not loaded yet.
fn still_loading(name: &str) -> ApiError {
    ApiError::unavailable(format!("the model `{name}` is still loading; retry shortly"))
}

/// What the repository holds for one name, as listed.
#[derive(Clone)]
pub struct ModelEntry {
    /// The model's name.
    pub name: String,
    /// The bucket its name follows.
    pub bucket: String,
    /// Who named that bucket.
    pub origin: Origin,
    /// Loaded versions, oldest first.
    pub versions: Vec<Arc<ServedModel>>,
    /// The version the name serves, once one is loaded.
    pub default_version: Option<String>,
}

/// Why a change to the repository was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    /// No model of that name.
    #[error("no model `{0}`")]
    UnknownModel(String),
    /// The model has no such version loaded.
    #[error("model `{name}` has no version `{version}` loaded")]
    UnknownVersion {
        /// The model.
        name: String,
        /// The version asked for.
        version: String,
    },
    /// That version is loaded already.
    #[error("model `{name}` already has version `{version}` loaded")]
    VersionLoaded {
        /// The model.
        name: String,
        /// The version.
        version: String,
    },
    /// The version asked to be unloaded is the one the name serves, and others are loaded.
    #[error(
        "version `{version}` is the one `{name}` serves; make another the default first, or unload the whole model"
    )]
    DefaultVersion {
        /// The model.
        name: String,
        /// The version.
        version: String,
    },
}

/// A cheap-to-clone handle on the shared state.
#[derive(Clone)]
pub struct ServerState {
    repository: Arc<RwLock<Repository>>,
    readiness: Arc<AtomicU8>,
}

impl ServerState {
    /// The state of a server that will serve `models` (name and bucket, in order, as
    /// configured), `default` being the one the MAX routes use; none is loaded yet.
    pub fn new(models: &[(String, String)], default: &str) -> ServerState {
        let named = models.iter().map(|(name, bucket)| {
            let model = NamedModel {
                bucket: bucket.clone(),
                origin: Origin::Configured,
                versions: Vec::new(),
                default_version: None,
            };
            (name.clone(), model)
        });
        let repository = Repository {
            names: models.iter().map(|(name, _)| name.clone()).collect(),
            models: named.collect(),
            default: default.to_owned(),
        };
        ServerState {
            repository: Arc::new(RwLock::new(repository)),
            readiness: Arc::new(AtomicU8::new(Readiness::Starting as u8)),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Repository> {
        // No code panics while holding the lock; should one, the data is still whole.
        self.repository.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Repository> {
        self.repository.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where the server is in its life: ready once every configured model is.
    pub fn readiness(&self) -> Readiness {
        match self.readiness.load(Ordering::Acquire) {
            state if state == Readiness::Ready as u8 => Readiness::Ready,
            state if state == Readiness::Draining as u8 => Readiness::Draining,
            _ => Readiness::Starting,
        }
    }

    /// Whether `name` serves a version and the server is not draining; `None` for an unknown
    /// model.
    pub fn model_readiness(&self, name: &str) -> Option<Readiness> {
        let loaded = self.read().models.get(name)?.default().is_some();
        Some(match self.readiness() {
            Readiness::Draining => Readiness::Draining,
            _ if loaded => Readiness::Ready,
            _ => Readiness::Starting,
        })
    }

    /// The models' names, in the order they were added.
    pub fn model_names(&self) -> Vec<String> {
        self.read().names.clone()
    }

    /// The name of the model the MAX routes serve.
    pub fn default_model_name(&self) -> String {
        self.read().default.clone()
    }

    /// Every model with its loaded versions, in order.
    pub fn entries(&self) -> Vec<ModelEntry> {
        let repository = self.read();
        let entry = |name: &String| {
            let model = &repository.models[name];
            ModelEntry {
                name: name.clone(),
                bucket: model.bucket.clone(),
                origin: model.origin,
                versions: model.versions.clone(),
                default_version: model.default_version.clone(),
            }
        };
        repository.names.iter().map(entry).collect()
    }

    /// The version that the model called `name` (the default model when `None`) serves: a 404
    /// naming the models served when there is no such model, a 503 while it is still loading.
    /// The version is recorded for the answer's `X-Model-Version` header.
    pub fn model(&self, name: Option<&str>) -> Result<Arc<ServedModel>, ApiError> {
        let repository = self.read();
        let name = name.unwrap_or(&repository.default);
        let model = repository.model(name)?;
        let served = model.default().cloned().ok_or_else(|| still_loading(name))?;
        crate::model_version::record(served.version());
        Ok(served)
    }

    /// Version `version` of the model called `name`: as [`ServerState::model`], and a 404
    /// naming the loaded versions for one that is not loaded.
    pub fn model_version(&self, name: &str, version: &str) -> Result<Arc<ServedModel>, ApiError> {
        let served = {
            let repository = self.read();
            let model = repository.model(name)?;
            if model.versions.is_empty() {
                return Err(still_loading(name));
            }
            let found = model.versions.iter().find(|served| served.version() == version).cloned();
            found.ok_or_else(|| {
                let loaded: Vec<&str> = model.versions.iter().map(|served| served.version()).collect();
                ApiError::not_found(format!(
                    "model `{name}` has no version `{version}`; it serves `{}`",
                    loaded.join("`, `")
                ))
            })?
        };
        crate::model_version::record(served.version());
        Ok(served)
    }

    /// Starts serving a model's `default` version (verified, loaded and warmed up) as at
    /// start-up, with its `others` beside it; its routes answer from now on.
    pub fn serve_model(&self, default: ServedModel, others: Vec<ServedModel>) {
        let mut repository = self.write();
        install(&mut repository, Arc::new(default), true);
        for other in others {
            install(&mut repository, Arc::new(other), false);
        }
    }

    /// Adds a version of `model.name` (a new model when the name is new), making it the
    /// default when `make_default` or when the name served nothing yet. Refuses a version that
    /// is loaded already.
    pub fn add_version(&self, model: ServedModel, make_default: bool) -> Result<(), RepositoryError> {
        let mut repository = self.write();
        if let Some(named) = repository.models.get(&model.name)
            && named.versions.iter().any(|served| served.version() == model.version())
        {
            return Err(RepositoryError::VersionLoaded { name: model.name.clone(), version: model.version().into() });
        }
        install(&mut repository, Arc::new(model), make_default);
        Ok(())
    }

    /// Makes `model` the only version its name serves, in one step: requests that found the
    /// old versions finish on them; every later one gets the new. Returns the versions it
    /// replaced.
    pub fn swap(&self, model: ServedModel) -> Vec<Arc<ServedModel>> {
        let mut repository = self.write();
        let model = Arc::new(model);
        let mut replaced = install(&mut repository, model.clone(), true);
        let named = repository.models.get_mut(&model.name).expect("just installed");
        replaced.extend(named.versions.extract_if(.., |served| !Arc::ptr_eq(served, &model)));
        replaced
    }

    /// Makes version `version` the one `name` serves.
    pub fn set_default(&self, name: &str, version: &str) -> Result<(), RepositoryError> {
        let mut repository = self.write();
        let named = repository.models.get_mut(name).ok_or_else(|| RepositoryError::UnknownModel(name.into()))?;
        let chosen = &named.versions[named.position(name, version)?];
        (named.bucket, named.origin) = (chosen.bucket.clone(), chosen.origin);
        named.default_version = Some(version.to_owned());
        Ok(())
    }

    /// Removes version `version` of `name`; the default version only when it is the last one
    /// (the name then goes too).
    pub fn remove_version(&self, name: &str, version: &str) -> Result<Arc<ServedModel>, RepositoryError> {
        let mut repository = self.write();
        let named = repository.models.get_mut(name).ok_or_else(|| RepositoryError::UnknownModel(name.into()))?;
        let position = named.position(name, version)?;
        if named.versions.len() > 1 && named.default_version.as_deref() == Some(version) {
            return Err(RepositoryError::DefaultVersion { name: name.into(), version: version.into() });
        }
        let removed = named.versions.remove(position);
        if named.versions.is_empty() {
            remove_name(&mut repository, name);
        }
        Ok(removed)
    }

    /// Removes the model called `name` with every version; returns them.
    pub fn remove_model(&self, name: &str) -> Result<Vec<Arc<ServedModel>>, RepositoryError> {
        let mut repository = self.write();
        let named = remove_name(&mut repository, name).ok_or_else(|| RepositoryError::UnknownModel(name.into()))?;
        Ok(named.versions)
    }

    /// Start-up is done: every model it had to load is served. Starting becomes Ready; Draining
    /// stays Draining.
    pub fn mark_ready(&self) {
        let _ = self.readiness.compare_exchange(
            Readiness::Starting as u8,
            Readiness::Ready as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Reports not ready from now on: the server is shutting down.
    pub fn start_draining(&self) {
        self.readiness.store(Readiness::Draining as u8, Ordering::Release);
    }
}

/// Adds `model` to its name (a new name when it has none), as the default when `make_default`
/// or when the name served nothing; returns the version of the same name that it replaced, if
/// any.
fn install(repository: &mut Repository, model: Arc<ServedModel>, make_default: bool) -> Vec<Arc<ServedModel>> {
    let name = model.name.clone();
    if !repository.models.contains_key(&name) {
        repository.names.push(name.clone());
    }
    let named = repository.models.entry(name).or_insert_with(|| NamedModel {
        bucket: model.bucket.clone(),
        origin: model.origin,
        versions: Vec::new(),
        default_version: None,
    });
    let replaced: Vec<_> = named.versions.extract_if(.., |served| served.version() == model.version()).collect();
    if make_default || named.default_version.is_none() {
        (named.bucket, named.origin) = (model.bucket.clone(), model.origin);
        named.default_version = Some(model.version().to_owned());
    }
    named.versions.push(model);
    replaced
}

/// Removes the name `name` from the repository.
fn remove_name(repository: &mut Repository, name: &str) -> Option<NamedModel> {
    let removed = repository.models.remove(name)?;
    repository.names.retain(|listed| listed != name);
    Some(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ServerState {
        ServerState::new(&[("a".into(), "bucket-a".into()), ("b".into(), "bucket-b".into())], "b")
    }

    #[test]
    fn readiness_goes_from_starting_to_ready_to_draining() {
        let state = state();
        assert_eq!(state.readiness(), Readiness::Starting);
        state.mark_ready();
        assert_eq!(state.readiness(), Readiness::Ready);
        state.start_draining();
        assert_eq!(state.readiness(), Readiness::Draining);
        assert_eq!(Readiness::Draining.as_str(), "draining");
        assert_eq!(state.model_readiness("a"), Some(Readiness::Draining));
    }

    #[test]
    fn a_model_loaded_after_a_shutdown_began_does_not_make_the_server_ready() {
        let state = state();
        state.start_draining();
        state.mark_ready();
        assert_eq!(state.readiness(), Readiness::Draining);
    }

    #[test]
    fn unknown_models_are_404s_naming_the_served_ones_and_loading_ones_503s() {
        let state = state();
        assert_eq!(state.model_names(), ["a", "b"]);
        assert_eq!(state.default_model_name(), "b");
        assert_eq!(state.entries()[0].bucket, "bucket-a");
        assert_eq!(state.model_readiness("a"), Some(Readiness::Starting));
        assert_eq!(state.model_readiness("c"), None);
        assert!(matches!(state.model(Some("c")), Err(ApiError::NotFound(body)) if body.0.message.contains("a, b")));
        assert!(matches!(state.model(None), Err(ApiError::Unavailable(body, _)) if body.0.message.contains("`b`")));
        assert!(matches!(state.model_version("a", "0123"), Err(ApiError::Unavailable(..))));
    }

    #[test]
    fn changes_to_unknown_models_and_versions_are_refused_by_name() {
        let state = state();
        assert_eq!(state.set_default("c", "v").unwrap_err(), RepositoryError::UnknownModel("c".into()));
        assert_eq!(
            state.set_default("a", "v").unwrap_err(),
            RepositoryError::UnknownVersion { name: "a".into(), version: "v".into() }
        );
        assert!(matches!(state.remove_version("a", "v"), Err(RepositoryError::UnknownVersion { .. })));
        assert_eq!(state.remove_model("a").map(|versions| versions.len()), Ok(0));
        assert_eq!(state.model_names(), ["b"]);
        assert!(matches!(state.remove_model("a"), Err(RepositoryError::UnknownModel(_))));
    }
}
