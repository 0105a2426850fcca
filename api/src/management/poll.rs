//! Poll mode (`--poll-interval`), Triton's and W&B's "latest": every interval, each model's
//! bucket's `sha512sums.txt` is read again; when the files it lists are not those of the
//! version served, the bucket's new version is fetched, verified, loaded and warmed, then
//! swapped in (see [`ModelManager::load`]). A version that fails is never served, and is not
//! tried again until the bucket's listing changes once more.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use max_mnist_artifacts::bucket;

use super::{ManagementError, ModelManager};

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
    pub async fn poll_once(self: &Arc<Self>, refused: &mut HashMap<String, Vec<String>>) {
        for entry in self.state.entries() {
            let Some(default) = entry.default_version.clone() else { continue };
            let Some(served) = entry.versions.iter().find(|served| served.version() == default) else { continue };
            let source = self.loader.source(&entry.bucket, entry.origin, self.loader.versions_dir(&entry.name));
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
            let (name, bucket, origin) = (entry.name.clone(), entry.bucket.clone(), entry.origin);
            let result = self
                .detached("poll", name.clone(), Some(bucket.clone()), move |manager| async move {
                    // What the listing was read for may have changed meanwhile (an unload, a
                    // set-default, a load from elsewhere): then the change is not the poll's.
                    let now = manager.state.entries().into_iter().find(|entry| entry.name == name);
                    let unchanged = now.is_some_and(|now| {
                        (now.bucket, now.origin, now.default_version) == (bucket.clone(), origin, Some(default))
                    });
                    if !unchanged {
                        return Err(ManagementError::Invalid(format!(
                            "model `{name}` changed while its bucket was read"
                        )));
                    }
                    manager.swap_in(&name, &bucket, origin).await
                })
                .await;
            match result {
                Ok(_) => {
                    refused.remove(&entry.name);
                }
                Err(_) => {
                    refused.insert(entry.name.clone(), listed);
                }
            }
        }
    }
}
