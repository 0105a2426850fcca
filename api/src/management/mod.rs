//! Changing the served models at run time: load a model or a new version of one, swap the
//! version a name serves, unload, and follow a bucket (poll mode).
//!
//! [`ModelManager`] is the one place such changes happen, whichever API asked
//! ([`routes`]: TorchServe's management API and the Open Inference Protocol's repository
//! extension, on their own address) or the poll loop ([`poll`]). Changes are made one at a
//! time. Each:
//! - fetches and verifies a new version into a folder of its own, loads it and warms it up,
//!   before any request can reach it (a failure leaves the served versions and the disk as
//!   they were);
//! - then changes the repository in one step (see `state`): requests already holding the old
//!   version finish on it, and its engine stops after the last one;
//! - writes an audit line (action, model, version, SHA-512, bucket, outcome; never a key) and
//!   counts the action in the metrics;
//! - and, when the management API is on, records the repository ([`record`]) so that a restart
//!   serves the same versions, verified again.

pub mod poll;
pub mod record;
pub mod routes;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use max_mnist_config::settings::{ModelSpec, check_model_name};
use max_mnist_core::LoadError;
use tokio::sync::Mutex;

use crate::loader::ModelLoader;
use crate::state::{Origin, Readiness, RepositoryError, ServedModel, ServerState};

/// The metric counting management actions, by action and outcome.
pub const MANAGEMENT_ACTIONS: &str = "max_mnist_management_actions_total";

/// Why a management action was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// The request itself is wrong (a bad name).
    #[error("{0}")]
    Invalid(String),
    /// A load by name of a model that is neither served nor configured, without a URL.
    #[error("no model `{0}` is served or configured: give its bucket as `parameters.url`")]
    NoBucket(String),
    /// The server is still loading its models, or shutting down: no change now.
    #[error("the server is {0}: models can be changed once it is ready")]
    NotServing(&'static str),
    /// The repository refused the change.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    /// The new version could not be fetched, verified or loaded; what was served goes on.
    #[error("model `{name}` was not loaded: {cause}")]
    Load {
        /// The model.
        name: String,
        /// Why (in the message, so not a `source`).
        cause: LoadError,
    },
    /// The repository could not be recorded on disk; the change was made in memory, and the
    /// files of the versions it replaced are kept for the record still on disk.
    #[error("the change was made, but could not be recorded for the next start: {0}")]
    Record(String),
    /// The action stopped unexpectedly (a bug); what was served goes on.
    #[error("the action stopped unexpectedly: {0}")]
    Interrupted(String),
}

/// What an action did, for its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A version was loaded and is served under its name (as the default, or beside it).
    Loaded {
        /// The version.
        version: String,
        /// Whether the name now serves it.
        default: bool,
    },
    /// The bucket holds the version already served: nothing changed.
    Unchanged {
        /// The version.
        version: String,
    },
    /// Versions were unloaded.
    Unloaded {
        /// The versions.
        versions: Vec<String>,
    },
    /// The name now serves another of its loaded versions.
    DefaultSet {
        /// The version.
        version: String,
    },
}

/// What an action did, with the versions it took out of service (retired once the change is
/// recorded).
struct Done {
    outcome: Outcome,
    retired: Vec<Arc<ServedModel>>,
}

impl From<Outcome> for Done {
    fn from(outcome: Outcome) -> Done {
        Done { outcome, retired: Vec::new() }
    }
}

/// Makes every change to the served models.
pub struct ModelManager {
    state: ServerState,
    loader: ModelLoader,
    /// The configured models, for loading one again by name after it was unloaded.
    configured: Vec<ModelSpec>,
    /// Held for the length of a change: one at a time.
    changes: Mutex<()>,
    /// Where the repository is recorded; `None` when the management API is off.
    record_path: Option<PathBuf>,
}

impl ModelManager {
    /// A manager of `state`'s models, loading with `loader`; `record_path` is where each change
    /// is recorded (the management API on), or `None`.
    pub fn new(
        state: ServerState,
        loader: ModelLoader,
        configured: Vec<ModelSpec>,
        record_path: Option<PathBuf>,
    ) -> Arc<ModelManager> {
        Arc::new(ModelManager { state, loader, configured, changes: Mutex::new(()), record_path })
    }

    /// The repository this manager changes.
    pub fn state(&self) -> &ServerState {
        &self.state
    }

    /// TorchServe's register: loads the model in the bucket at `url` as a version of `name`.
    /// A new name serves it at once; a name that has versions keeps serving its default until
    /// `set-default`. A registered URL must be under `--allowed-bucket`.
    pub async fn register(self: &Arc<Self>, name: &str, url: &str) -> Result<Outcome, ManagementError> {
        let (name, url) = (name.to_owned(), url.to_owned());
        self.detached("register", name.clone(), Some(url.clone()), move |manager| async move {
            check_model_name(&name).map_err(ManagementError::Invalid)?;
            let served = manager.fetch(&name, &url, Origin::Registered).await?;
            let version = served.version().to_owned();
            let make_default = manager.state.model_readiness(&name).is_none();
            let folder = served.assets_dir.clone();
            manager.state.add_version(served, make_default).inspect_err(|_| manager.remove_dir(&folder))?;
            Ok(Outcome::Loaded { version, default: make_default }.into())
        })
        .await
    }

    /// The repository extension's load: loads `name` again from `url` (a registered bucket), or
    /// from the bucket its name follows (or its `--model` bucket, once unloaded), and makes it
    /// the only version the name serves. A bucket that holds the version already served
    /// changes nothing.
    pub async fn load(self: &Arc<Self>, name: &str, url: Option<&str>) -> Result<Outcome, ManagementError> {
        let (name, url) = (name.to_owned(), url.map(str::to_owned));
        self.detached("load", name.clone(), url.clone(), move |manager| async move {
            check_model_name(&name).map_err(ManagementError::Invalid)?;
            let (bucket, origin) = match url {
                Some(url) => (url, Origin::Registered),
                None => manager.bucket_of(&name)?,
            };
            manager.swap_in(&name, &bucket, origin).await
        })
        .await
    }

    /// Unloads version `version` of `name`, or the whole model when `None`. Requests already
    /// on it finish; later ones get 404.
    pub async fn unload(self: &Arc<Self>, name: &str, version: Option<&str>) -> Result<Outcome, ManagementError> {
        let (name, version) = (name.to_owned(), version.map(str::to_owned));
        self.detached("unload", name.clone(), None, move |manager| async move {
            let removed = match version {
                Some(version) => vec![manager.state.remove_version(&name, &version)?],
                None => manager.state.remove_model(&name)?,
            };
            let versions = removed.iter().map(|served| served.version().to_owned()).collect();
            Ok(Done { outcome: Outcome::Unloaded { versions }, retired: removed })
        })
        .await
    }

    /// Makes `name` serve its loaded version `version`.
    pub async fn set_default(self: &Arc<Self>, name: &str, version: &str) -> Result<Outcome, ManagementError> {
        let (name, version) = (name.to_owned(), version.to_owned());
        self.detached("set-default", name.clone(), None, move |manager| async move {
            manager.state.set_default(&name, &version)?;
            Ok(Outcome::DefaultSet { version }.into())
        })
        .await
    }

    /// Runs `action` as a change: on a task of its own, so that a client hanging up cannot cut
    /// it short between a fetch and its clean-up; one change at a time; only while the server
    /// serves; then audited, counted, recorded, and the versions it replaced retired.
    async fn detached<Action, Running>(
        self: &Arc<Self>,
        name_of_action: &'static str,
        model: String,
        url: Option<String>,
        action: Action,
    ) -> Result<Outcome, ManagementError>
    where
        Action: FnOnce(Arc<ModelManager>) -> Running + Send + 'static,
        Running: Future<Output = Result<Done, ManagementError>> + Send + 'static,
    {
        let manager = self.clone();
        let change = tokio::spawn(async move {
            let _change = manager.changes.lock().await;
            let result = match manager.state.readiness() {
                Readiness::Ready => action(manager.clone()).await,
                other => Err(ManagementError::NotServing(other.as_str())),
            };
            manager.finish(name_of_action, &model, url.as_deref(), result)
        });
        change.await.unwrap_or_else(|error| Err(ManagementError::Interrupted(error.to_string())))
    }

    /// The bucket a reload of `name` fetches: the one its name follows, or its `--model`
    /// bucket once it was unloaded.
    fn bucket_of(&self, name: &str) -> Result<(String, Origin), ManagementError> {
        if let Some(entry) = self.state.entries().into_iter().find(|entry| entry.name == name) {
            return Ok((entry.bucket, entry.origin));
        }
        let configured = self.configured.iter().find(|spec| spec.name == name);
        configured
            .map(|spec| (spec.bucket.clone(), Origin::Configured))
            .ok_or_else(|| ManagementError::NoBucket(name.to_owned()))
    }

    /// Loads `bucket` as the only version of `name`, unless it holds the version served.
    async fn swap_in(&self, name: &str, bucket: &str, origin: Origin) -> Result<Done, ManagementError> {
        let served = self.fetch(name, bucket, origin).await?;
        let version = served.version().to_owned();
        let current = self.state.model(Some(name)).ok();
        if current.is_some_and(|current| current.version() == version && current.bucket == bucket) {
            self.remove_dir(&served.assets_dir);
            return Ok(Outcome::Unchanged { version }.into());
        }
        let retired = self.state.swap(served);
        Ok(Done { outcome: Outcome::Loaded { version, default: true }, retired })
    }

    /// Fetches, verifies, loads and warms `bucket` into a new folder of its own; on failure the
    /// folder is gone.
    async fn fetch(&self, name: &str, bucket: &str, origin: Origin) -> Result<ServedModel, ManagementError> {
        let dir = self.loader.new_version_dir(name);
        match self.loader.fetch(name, bucket, origin, dir.clone()).await {
            Ok(served) => Ok(served),
            Err(cause) => {
                self.remove_dir(&dir);
                Err(ManagementError::Load { name: name.to_owned(), cause })
            }
        }
    }

    /// Takes versions out of service for good: their metrics say so (unless the name serves
    /// the same version again), and their own folders go (their engines stop once the
    /// requests holding them are answered).
    fn retire(&self, retired: &[Arc<ServedModel>]) {
        let entries = self.state.entries();
        for served in retired {
            let entry = entries.iter().find(|entry| entry.name == served.name);
            let still_served =
                entry.is_some_and(|entry| entry.versions.iter().any(|other| other.version() == served.version()));
            if !still_served {
                crate::metrics::forget_model(&served.name, served.version(), &served.metadata.weights_sha512);
            }
            if self.loader.is_version_dir(&served.name, &served.assets_dir) {
                self.remove_dir(&served.assets_dir);
            }
        }
    }

    fn remove_dir(&self, dir: &Path) {
        if let Err(error) = std::fs::remove_dir_all(dir)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %dir.display(), %error, "cannot remove a version's folder");
        }
    }

    /// Audits and counts an action, records the repository when it changed, and only then
    /// retires the versions it replaced (a record that could not be written still names them,
    /// so their files stay). The audit line names the version acted on (for a refusal, the one
    /// that goes on serving), its weights' SHA-512 and its bucket.
    fn finish(
        &self,
        action: &'static str,
        name: &str,
        url: Option<&str>,
        result: Result<Done, ManagementError>,
    ) -> Result<Outcome, ManagementError> {
        let entry = self.state.entries().into_iter().find(|entry| entry.name == name);
        let mut known: Vec<Arc<ServedModel>> = entry.as_ref().map(|entry| entry.versions.clone()).unwrap_or_default();
        let version = match &result {
            Ok(Done { outcome: Outcome::Loaded { version, .. } | Outcome::Unchanged { version }, .. })
            | Ok(Done { outcome: Outcome::DefaultSet { version }, .. }) => version.clone(),
            Ok(Done { outcome: Outcome::Unloaded { versions }, retired }) => {
                known.extend(retired.iter().cloned());
                versions.join(",")
            }
            Err(_) => entry.as_ref().and_then(|entry| entry.default_version.clone()).unwrap_or_default(),
        };
        let acted_on = known.iter().find(|served| served.version() == version);
        let sha512 = acted_on.map(|served| served.metadata.weights_sha512.clone()).unwrap_or_default();
        let bucket =
            url.map(str::to_owned).or_else(|| acted_on.map(|served| served.bucket.clone())).unwrap_or_default();
        let outcome = match &result {
            Ok(Done { outcome: Outcome::Unchanged { .. }, .. }) => "unchanged",
            Ok(_) => "ok",
            Err(_) => "refused",
        };
        metrics::counter!(MANAGEMENT_ACTIONS, "action" => action, "outcome" => outcome).increment(1);
        match &result {
            Ok(_) => tracing::info!(
                target: "audit", action, model = name, version = %version, sha512 = %sha512, bucket = %bucket, outcome,
                "model management"
            ),
            Err(error) => tracing::warn!(
                target: "audit", action, model = name, version = %version, sha512 = %sha512, bucket = %bucket, outcome,
                reason = %error, "model management"
            ),
        }
        let Done { outcome, retired } = result?;
        if let Outcome::Loaded { .. } = outcome
            && let Some(served) = acted_on
        {
            crate::metrics::record_model(&served.name, served.version(), &served.metadata.weights_sha512);
        }
        if matches!(outcome, Outcome::Loaded { .. } | Outcome::Unloaded { .. } | Outcome::DefaultSet { .. })
            && let Some(path) = &self.record_path
        {
            let unloaded = self.unloaded_configured();
            record::write(path, &self.state, &unloaded, self.loader.assets_root())
                .map_err(|error| ManagementError::Record(error.to_string()))?;
        }
        self.retire(&retired);
        Ok(outcome)
    }

    /// The configured models that are not served (unloaded through the API): a restart must
    /// not bring them back.
    pub fn unloaded_configured(&self) -> Vec<String> {
        let served = self.state.model_names();
        self.configured.iter().filter(|spec| !served.contains(&spec.name)).map(|spec| spec.name.clone()).collect()
    }
}
