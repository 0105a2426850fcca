//! Poll mode (`--poll-interval`), Triton's and W&B's "latest": every interval, each model's
//! bucket's `sha512sums.txt` is read again; when the files it lists are not those of the
//! version served, the bucket's new version is fetched, verified, loaded and warmed, then
//! swapped in (see [`ModelManager::load`]). A version that fails is never served, and is not
//! tried again until the bucket's listing changes once more.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use max_mnist_artifacts::bucket;

use super::{ModelManager, Outcome};

/// Follows every model's bucket, every `interval`, for as long as the server runs.
pub async fn follow_buckets(manager: Arc<ModelManager>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once; the models were loaded just now.
    ticks.tick().await;
    let mut refused = HashMap::new();
    loop {
        ticks.tick().await;
        manager.poll_once(&mut refused).await;
    }
}

impl ModelManager {
    /// Checks each model's bucket once, and swaps in any new version. `refused` holds, per
    /// model, the listing that failed last, so that a broken version is tried only once.
    pub async fn poll_once(&self, refused: &mut HashMap<String, Vec<String>>) {
        for entry in self.state.entries() {
            let Some(served) = self.state.model(Some(&entry.name)).ok() else { continue };
            let scratch = self.loader.versions_dir(&entry.name);
            let source = self.loader.source(&entry.bucket, entry.origin, scratch);
            let listed = match bucket::listed_digests(&source).await {
                Ok(listed) => listed,
                Err(error) => {
                    tracing::warn!(model = %entry.name, bucket = %entry.bucket, %error, "poll: cannot read the bucket");
                    continue;
                }
            };
            let mut served_digests: Vec<String> = served.files.iter().map(|file| file.sha512.clone()).collect();
            served_digests.sort_unstable();
            if listed == served_digests || refused.get(&entry.name) == Some(&listed) {
                continue;
            }
            tracing::info!(model = %entry.name, bucket = %entry.bucket, "poll: the bucket changed; loading its version");
            let _change = self.changes.lock().await;
            let result = self.swap_in(&entry.name, &entry.bucket, entry.origin).await;
            match self.finish("poll", &entry.name, Some(&entry.bucket), result) {
                Ok(Outcome::Loaded { .. } | Outcome::Unchanged { .. }) => {
                    refused.remove(&entry.name);
                }
                Ok(_) => {}
                Err(_) => {
                    refused.insert(entry.name.clone(), listed);
                }
            }
        }
    }
}
