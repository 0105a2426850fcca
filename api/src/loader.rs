//! From a bucket to a served version: verify the model's files (fetching them when needed),
//! load the model onto an inference engine of its own, warm it up. Start-up, the management
//! API and poll mode all load through [`ModelLoader`], so a version is served the same way
//! whoever asked for it, and nothing reaches a client before it is verified and warm.
//!
//! Where a version's files live, below the assets folder: a configured model's first version
//! in `<name>/`, as always; every other version in a folder of its own,
//! `<name>/versions/<id>/`, which goes when the version is unloaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use max_mnist_artifacts::access::BucketAllowList;
use max_mnist_artifacts::archive::UnpackLimits;
use max_mnist_artifacts::bucket::{ModelSource, VerifiedAsset};
use max_mnist_artifacts::card::{ModelFiles, VerifiedModel};
use max_mnist_artifacts::checksums::{self, ChecksumEntry};
use max_mnist_artifacts::download::DownloadPolicy;
use max_mnist_config::settings::ServerSettings;
use max_mnist_core::LoadError;
use max_mnist_core::inference::{EngineSettings, InferenceEngine};
use max_mnist_core::wrapper::ModelWrapper;

use crate::state::{Origin, ServedModel};
use crate::types::{LabelsResponse, ModelMetadataResponse};

/// The folder, inside a model's folder, holding its further versions.
const VERSIONS_DIR: &str = "versions";

/// Whether `folder`, relative to the assets folder, is one a version of `name` may live in:
/// `<name>` or `<name>/versions/<id>`, each part a plain name.
pub fn is_version_folder(name: &str, folder: &Path) -> bool {
    let parts: Vec<_> = folder.components().collect();
    let plain = |part: &std::path::Component| matches!(part, std::path::Component::Normal(_));
    let named = |part: &std::path::Component, text: &str| part.as_os_str() == text;
    match parts.as_slice() {
        [model] => named(model, name),
        [model, versions, id] => named(model, name) && named(versions, VERSIONS_DIR) && plain(id),
        _ => false,
    }
}

/// Loads model versions the way the settings say.
#[derive(Clone)]
pub struct ModelLoader {
    engine: EngineSettings,
    max_image_pixels: u64,
    download: DownloadPolicy,
    assets_root: PathBuf,
    /// The buckets a registered model may come from.
    allowed: Arc<BucketAllowList>,
}

impl ModelLoader {
    /// A loader following `settings`; fails on an `--allowed-bucket` that is not a bucket
    /// prefix.
    pub fn new(settings: &ServerSettings) -> Result<ModelLoader, max_mnist_artifacts::Error> {
        Ok(ModelLoader {
            engine: EngineSettings {
                max_batch_size: settings.max_batch_size,
                max_batch_delay: Duration::from_micros(settings.max_batch_delay_us),
                queue_capacity: settings.queue_capacity,
                preprocess_threads: match settings.preprocess_threads {
                    0 => std::thread::available_parallelism().map_or(1, usize::from),
                    threads => threads,
                },
            },
            max_image_pixels: settings.max_image_pixels,
            download: DownloadPolicy {
                timeout: Duration::from_secs(settings.download_timeout_secs),
                retries: settings.download_retries,
                ..DownloadPolicy::default()
            },
            assets_root: settings.assets_dir.clone(),
            allowed: Arc::new(BucketAllowList::new(&settings.allowed_buckets)?),
        })
    }

    /// The assets folder, which holds every version's folder.
    pub fn assets_root(&self) -> &Path {
        &self.assets_root
    }

    /// The folder of a configured model's first version: `<assets>/<name>/`.
    pub fn configured_dir(&self, name: &str) -> PathBuf {
        self.assets_root.join(name)
    }

    /// A new, unused folder for another version of `name`.
    pub fn new_version_dir(&self, name: &str) -> PathBuf {
        self.versions_dir(name).join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The folder holding the further versions of `name`.
    pub fn versions_dir(&self, name: &str) -> PathBuf {
        self.assets_root.join(name).join(VERSIONS_DIR)
    }

    /// Whether `dir` is one of `name`'s further versions' own folders (deleted with the
    /// version), not its configured folder (kept, so that the next start finds it verified).
    pub fn is_version_dir(&self, name: &str, dir: &Path) -> bool {
        dir.parent() == Some(&self.versions_dir(name))
    }

    /// Fetches (when needed) and verifies `bucket` into `assets_dir`, then loads and warms the
    /// version. A registered bucket must be under `--allowed-bucket`. On failure nothing
    /// unverified is left in `assets_dir`.
    pub async fn fetch(
        &self,
        name: &str,
        bucket: &str,
        origin: Origin,
        assets_dir: PathBuf,
    ) -> Result<ServedModel, LoadError> {
        let source = self.source(bucket, origin, assets_dir.clone());
        let verified = ModelFiles::verified(&source).await?;
        self.start(name, bucket, origin, assets_dir, verified).await
    }

    /// Serves again a version recorded earlier: its files, still in `assets_dir`, must have the
    /// recorded digests; nothing is fetched.
    pub async fn restore(
        &self,
        name: &str,
        bucket: &str,
        origin: Origin,
        assets_dir: PathBuf,
        files: Vec<VerifiedAsset>,
    ) -> Result<ServedModel, LoadError> {
        for file in &files {
            let entry = ChecksumEntry { sha512: file.sha512.clone(), path: file.path.display().to_string() };
            checksums::verify(&file.path, &entry)?;
        }
        let verified = VerifiedModel::of(files, bucket)?;
        self.start(name, bucket, origin, assets_dir, verified).await
    }

    /// Where `bucket` is and how to fetch from it: a registered one only under the allow-list.
    pub fn source(&self, bucket: &str, origin: Origin, assets_dir: PathBuf) -> ModelSource {
        let allowed = match origin {
            Origin::Configured => None,
            Origin::Registered => Some(self.allowed.clone()),
        };
        ModelSource {
            bucket: bucket.to_owned(),
            assets_dir,
            download: DownloadPolicy { allowed, ..self.download.clone() },
            unpack: UnpackLimits::default(),
        }
    }

    /// Starts an inference engine on verified files and warms it up.
    async fn start(
        &self,
        name: &str,
        bucket: &str,
        origin: Origin,
        assets_dir: PathBuf,
        verified: VerifiedModel,
    ) -> Result<ServedModel, LoadError> {
        let VerifiedModel { files, assets, network_sha512 } = verified;
        let (engine_settings, max_image_pixels) = (self.engine, self.max_image_pixels);
        let device = max_mnist_core::best_device();
        let engine_name = name.to_owned();
        let engine = tokio::task::spawn_blocking(move || {
            InferenceEngine::start(&engine_name, engine_settings, move || {
                ModelWrapper::load(&files, device, max_image_pixels)
            })
        })
        .await
        .map_err(|error| LoadError::EngineThreads(error.to_string()))??;
        engine.warm_up().await.map_err(LoadError::WarmUp)?;
        let metadata = ModelMetadataResponse::new(name, engine.card(), engine.training(), &network_sha512);
        let labels = LabelsResponse::new(engine.card());
        Ok(ServedModel {
            name: name.to_owned(),
            bucket: bucket.to_owned(),
            origin,
            engine,
            metadata,
            labels,
            loaded_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            on_gpu: device.is_cuda(),
            assets_dir,
            files: assets,
        })
    }
}
