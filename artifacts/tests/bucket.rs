//! The bucket path end to end: `ensure_verified_assets` against a real HTTP server on
//! 127.0.0.1 that serves canned answers (a good archive, a 404, a truncated body, a tampered
//! or hostile archive, a redirect) and counts requests; and the bucket allow-list that
//! guards it, with real sockets, real name resolution and real files.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use max_mnist_artifacts::Error;
use max_mnist_artifacts::access::BucketAllowList;
use max_mnist_artifacts::archive::UnpackLimits;
use max_mnist_artifacts::bucket::{ModelSource, ensure_verified_assets};
use max_mnist_artifacts::checksums::{Checksums, file_digest};
use max_mnist_artifacts::download::DownloadPolicy;
use max_mnist_test_support::{Answer, LoopbackServer};
use sha2::{Digest, Sha512};

const WEIGHTS: &str = "weights.safetensors";
const WEIGHTS_BYTES: &[u8] = b"pretend these are weights";

/// A scratch directory for a model's assets.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        Workspace { dir: tempfile::tempdir().unwrap() }
    }

    fn assets(&self) -> PathBuf {
        self.dir.path().join("assets")
    }

    fn source(&self, bucket: &str) -> ModelSource {
        ModelSource {
            bucket: bucket.to_owned(),
            assets_dir: self.assets(),
            download: DownloadPolicy { retries: 1, backoff: Duration::from_millis(10), ..DownloadPolicy::default() },
            unpack: UnpackLimits::default(),
        }
    }

    /// A source whose downloads must stay within `allowed`. A retry would wait 30 s, so a
    /// refusal that is retried shows as a timeout in [`unretried`].
    fn guarded(&self, bucket: &str, allowed: &[String]) -> ModelSource {
        let allowed = Arc::new(BucketAllowList::new(allowed).unwrap());
        let download = DownloadPolicy {
            retries: 1,
            backoff: Duration::from_secs(30),
            allowed: Some(allowed),
            ..DownloadPolicy::default()
        };
        ModelSource { download, ..self.source(bucket) }
    }

    /// Files in the assets directory, scratch directories included.
    fn assets_listing(&self) -> Vec<String> {
        match std::fs::read_dir(self.assets()) {
            Ok(entries) => entries.map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// A bucket's `sha512sums.txt` listing `archive` (by its digest) as `model.tar.gz`, and the
/// good weights as `assets/weights.safetensors`.
fn checksums_for(archive: &[u8]) -> Vec<u8> {
    format!(
        "{}  {ARCHIVE}\n{}  assets/{WEIGHTS}\n",
        hex::encode(Sha512::digest(archive)),
        hex::encode(Sha512::digest(WEIGHTS_BYTES))
    )
    .into_bytes()
}

/// A loopback bucket serving `archive` and checksums listing `listed` as the archive.
async fn bucket_serving(archive: Answer, listed: &[u8]) -> LoopbackServer {
    LoopbackServer::serve(HashMap::from([(ARCHIVE, archive), ("sha512sums.txt", Answer::Body(checksums_for(listed)))]))
        .await
}

const ARCHIVE: &str = "model.tar.gz";

/// A gzipped tar whose entries are written with raw headers, so that names the `tar` crate
/// would refuse to create (`../x`, `/x`) can be tested.
fn archive(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_size(if *kind == tar::EntryType::Regular { data.len() as u64 } else { 0 });
        if *kind == tar::EntryType::Symlink {
            header.set_link_name(std::str::from_utf8(data).unwrap()).unwrap();
        }
        header.set_cksum();
        let body: &[u8] = if *kind == tar::EntryType::Regular { data } else { &[] };
        builder.append(&header, body).unwrap();
    }
    let mut gzip = builder.into_inner().unwrap();
    gzip.flush().unwrap();
    gzip.finish().unwrap()
}

fn good_archive() -> Vec<u8> {
    archive(&[(WEIGHTS, tar::EntryType::Regular, WEIGHTS_BYTES)])
}

#[tokio::test]
async fn fetches_verifies_and_then_reuses_the_assets() {
    let bucket = bucket_serving(Answer::Body(good_archive()), &good_archive()).await;
    let workspace = Workspace::new();
    let source = workspace.source(&bucket.url);

    let verified = ensure_verified_assets(&source).await.unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(std::fs::read(workspace.assets().join(WEIGHTS)).unwrap(), WEIGHTS_BYTES);
    assert_eq!(verified[0].sha512, file_digest::<Sha512>(&workspace.assets().join(WEIGHTS)).unwrap());
    assert_eq!(workspace.assets_listing(), vec![WEIGHTS.to_owned()], "no scratch left behind");
    assert_eq!(bucket.hits(ARCHIVE), 1);

    ensure_verified_assets(&source).await.unwrap();
    assert_eq!(bucket.hits(ARCHIVE), 1, "verified assets are not fetched again");
    assert_eq!(bucket.hits("sha512sums.txt"), 2, "the bucket's checksums are read at every start");
}

#[tokio::test]
async fn removes_what_a_killed_start_up_left_behind() {
    let bucket = bucket_serving(Answer::Body(good_archive()), &good_archive()).await;
    let workspace = Workspace::new();
    let leftover = workspace.assets().join(".incoming-killed");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("half.tar.gz"), b"partial").unwrap();
    ensure_verified_assets(&workspace.source(&bucket.url)).await.unwrap();
    assert_eq!(workspace.assets_listing(), vec![WEIGHTS.to_owned()]);
}

#[tokio::test]
async fn replaces_a_tampered_asset_with_the_verified_one() {
    let bucket = bucket_serving(Answer::Body(good_archive()), &good_archive()).await;
    let workspace = Workspace::new();
    std::fs::create_dir_all(workspace.assets()).unwrap();
    std::fs::write(workspace.assets().join(WEIGHTS), b"tampered").unwrap();
    ensure_verified_assets(&workspace.source(&bucket.url)).await.unwrap();
    assert_eq!(std::fs::read(workspace.assets().join(WEIGHTS)).unwrap(), WEIGHTS_BYTES);
    assert_eq!(bucket.hits(ARCHIVE), 1);
}

#[tokio::test]
async fn a_404_fails_with_the_url_and_status_and_removes_unverified_files() {
    let bucket = bucket_serving(Answer::Status(404), &good_archive()).await;
    let workspace = Workspace::new();
    std::fs::create_dir_all(workspace.assets()).unwrap();
    std::fs::write(workspace.assets().join(WEIGHTS), b"stale").unwrap();
    let error = ensure_verified_assets(&workspace.source(&bucket.url)).await.unwrap_err();
    assert!(matches!(error, Error::HttpStatus { status: 404, .. }), "{error}");
    assert!(error.to_string().contains(&format!("{}/{ARCHIVE}", bucket.url)), "{error}");
    assert_eq!(bucket.hits(ARCHIVE), 1, "a 404 is not retried");
    assert!(workspace.assets_listing().is_empty(), "{:?}", workspace.assets_listing());
}

#[tokio::test]
async fn a_bucket_without_checksums_is_refused_before_anything_is_fetched() {
    let bucket = LoopbackServer::serve(HashMap::from([(ARCHIVE, Answer::Body(good_archive()))])).await;
    let workspace = Workspace::new();
    let error = ensure_verified_assets(&workspace.source(&bucket.url)).await.unwrap_err();
    assert!(error.to_string().contains("sha512sums.txt"), "{error}");
    assert_eq!(bucket.hits(ARCHIVE), 0);
    assert!(workspace.assets_listing().is_empty(), "{:?}", workspace.assets_listing());
}

#[tokio::test]
async fn checksums_must_list_one_archive_and_assets_with_plain_names() {
    let digest = "0".repeat(128);
    let bad = [
        format!("{digest}  assets/{WEIGHTS}\n"),
        format!("{digest}  a.tar.gz\n{digest}  b.tar.gz\n{digest}  assets/{WEIGHTS}\n"),
        format!("{digest}  {ARCHIVE}\n"),
        format!("{digest}  {ARCHIVE}\n{digest}  assets/../escaped\n"),
        format!("{digest}  ../{ARCHIVE}\n{digest}  assets/{WEIGHTS}\n"),
        format!("{digest}  {ARCHIVE}\n{digest}  elsewhere/{WEIGHTS}\n"),
    ];
    for listing in bad {
        let answers =
            [(ARCHIVE, Answer::Body(good_archive())), ("sha512sums.txt", Answer::Body(listing.clone().into_bytes()))];
        let bucket = LoopbackServer::serve(HashMap::from(answers)).await;
        let workspace = Workspace::new();
        let error = ensure_verified_assets(&workspace.source(&bucket.url)).await.unwrap_err();
        assert!(matches!(error, Error::InvalidChecksums { .. }), "{listing}: {error}");
        assert_eq!(bucket.hits(ARCHIVE), 0, "{listing}");
    }
}

#[tokio::test]
async fn a_truncated_body_is_retried_then_refused() {
    let bucket = bucket_serving(Answer::Truncated(good_archive()), &good_archive()).await;
    let workspace = Workspace::new();
    let error = ensure_verified_assets(&workspace.source(&bucket.url)).await.unwrap_err();
    assert!(matches!(error, Error::Download { .. }), "{error}");
    assert_eq!(bucket.hits(ARCHIVE), 2, "one retry");
    assert!(workspace.assets_listing().is_empty(), "{:?}", workspace.assets_listing());
}

#[tokio::test]
async fn a_tampered_archive_is_refused_with_both_digests_before_it_is_unpacked() {
    let tampered = archive(&[(WEIGHTS, tar::EntryType::Regular, b"evil weights")]);
    let bucket = bucket_serving(Answer::Body(tampered.clone()), &good_archive()).await;
    let workspace = Workspace::new();
    let error = ensure_verified_assets(&workspace.source(&bucket.url)).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(&error, Error::ChecksumMismatch { file, .. } if file == ARCHIVE), "{message}");
    assert!(message.contains(&hex::encode(Sha512::digest(good_archive()))), "{message}");
    assert!(message.contains(&hex::encode(Sha512::digest(&tampered))), "{message}");
    assert!(workspace.assets_listing().is_empty(), "{:?}", workspace.assets_listing());
}

#[tokio::test]
async fn an_archive_listed_with_the_wrong_weights_is_refused_with_both_digests() {
    // The checksums vouch for this archive, but not for the weights inside it.
    let evil = archive(&[(WEIGHTS, tar::EntryType::Regular, b"evil weights")]);
    let bucket = bucket_serving(Answer::Body(evil.clone()), &evil).await;
    let workspace = Workspace::new();
    let error = ensure_verified_assets(&workspace.source(&bucket.url)).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::ChecksumMismatch { .. }), "{message}");
    assert!(message.contains(&hex::encode(Sha512::digest(WEIGHTS_BYTES))), "{message}");
    assert!(message.contains(&hex::encode(Sha512::digest(b"evil weights"))), "{message}");
    assert!(workspace.assets_listing().is_empty(), "{:?}", workspace.assets_listing());
}

#[tokio::test]
async fn an_archive_without_a_listed_file_is_refused() {
    let other = archive(&[("other.bin", tar::EntryType::Regular, WEIGHTS_BYTES)]);
    let bucket = bucket_serving(Answer::Body(other.clone()), &other).await;
    let workspace = Workspace::new();
    let error = ensure_verified_assets(&workspace.source(&bucket.url)).await.unwrap_err();
    assert!(matches!(error, Error::MissingAsset { .. }), "{error}");
    assert!(workspace.assets_listing().is_empty(), "{:?}", workspace.assets_listing());
}

#[tokio::test]
async fn hostile_archives_are_refused_even_when_their_digest_is_listed() {
    let regular = tar::EntryType::Regular;
    let cases: [(&str, Vec<u8>); 4] = [
        ("parent", archive(&[(WEIGHTS, regular, WEIGHTS_BYTES), ("../escaped", regular, b"x")])),
        ("absolute", archive(&[("/tmp/max-mnist-absolute", regular, b"x"), (WEIGHTS, regular, WEIGHTS_BYTES)])),
        ("symlink", archive(&[(WEIGHTS, tar::EntryType::Symlink, b"/etc/passwd")])),
        ("garbage", b"this is not a gzip file".to_vec()),
    ];
    for (name, body) in cases {
        let bucket = bucket_serving(Answer::Body(body.clone()), &body).await;
        let workspace = Workspace::new();
        let error = ensure_verified_assets(&workspace.source(&bucket.url)).await.unwrap_err();
        assert!(matches!(error, Error::HostileArchive { .. }), "{name}: {error}");
        assert!(workspace.assets_listing().is_empty(), "{name}: {:?}", workspace.assets_listing());
        assert!(!workspace.dir.path().join("escaped").exists(), "{name}");
    }
    assert!(!Path::new("/tmp/max-mnist-absolute").exists());
}

#[tokio::test]
async fn a_local_directory_or_file_url_is_a_bucket_too() {
    let workspace = Workspace::new();
    let bucket_dir = workspace.dir.path().join("bucket");
    std::fs::create_dir(&bucket_dir).unwrap();
    std::fs::write(bucket_dir.join(ARCHIVE), good_archive()).unwrap();
    std::fs::write(bucket_dir.join("sha512sums.txt"), checksums_for(&good_archive())).unwrap();
    ensure_verified_assets(&workspace.source(bucket_dir.to_str().unwrap())).await.unwrap();

    let second = Workspace::new();
    let url = format!("file://{}", bucket_dir.display());
    ensure_verified_assets(&second.source(&url)).await.unwrap();
    assert_eq!(std::fs::read(second.assets().join(WEIGHTS)).unwrap(), WEIGHTS_BYTES);

    std::fs::remove_file(bucket_dir.join(ARCHIVE)).unwrap();
    let reused = ensure_verified_assets(&second.source(&url)).await;
    assert!(reused.is_ok(), "verified assets need no archive: {reused:?}");
}

#[test]
fn publish_writes_an_archive_and_checksums_that_a_bucket_serves() {
    let workspace = Workspace::new();
    let weights = workspace.dir.path().join(WEIGHTS);
    std::fs::write(&weights, WEIGHTS_BYTES).unwrap();
    let bucket_dir = workspace.dir.path().join("published");
    let archive = max_mnist_artifacts::bucket::publish(&[&weights], &bucket_dir, ARCHIVE).unwrap();
    let listed = Checksums::read(&bucket_dir.join("sha512sums.txt")).unwrap();
    let paths: Vec<&str> = listed.entries.iter().map(|entry| entry.path.as_str()).collect();
    assert_eq!(paths, [ARCHIVE, &format!("assets/{WEIGHTS}")]);
    assert_eq!(listed.entries[0].sha512, file_digest::<Sha512>(&archive).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(ensure_verified_assets(&workspace.source(bucket_dir.to_str().unwrap()))).unwrap();
    assert!(max_mnist_artifacts::bucket::publish(&[&weights], &bucket_dir, "../x.tar.gz").is_err());
}

// The bucket allow-list.

/// `ensure_verified_assets`, failing the test if it takes long enough to have retried.
async fn unretried(
    source: &ModelSource,
) -> max_mnist_artifacts::Result<Vec<max_mnist_artifacts::bucket::VerifiedAsset>> {
    tokio::time::timeout(Duration::from_secs(10), ensure_verified_assets(source))
        .await
        .expect("a refusal is not retried")
}

/// The reason of an [`Error::Refused`], or a panic naming what came instead.
fn refusal<T: std::fmt::Debug>(result: max_mnist_artifacts::Result<T>) -> String {
    match result {
        Err(Error::Refused { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn an_allowed_loopback_bucket_is_fetched_and_verified_and_may_redirect_within_the_list() {
    let answers = [
        (ARCHIVE, Answer::Redirect("/mirror/model.tar.gz".into())),
        ("mirror/model.tar.gz", Answer::Body(good_archive())),
        ("sha512sums.txt", Answer::Body(checksums_for(&good_archive()))),
    ];
    let bucket = LoopbackServer::serve(HashMap::from(answers)).await;
    let workspace = Workspace::new();
    let source = workspace.guarded(&bucket.url, &[format!("{}/", bucket.url)]);
    let verified = unretried(&source).await.unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(std::fs::read(workspace.assets().join(WEIGHTS)).unwrap(), WEIGHTS_BYTES);
    assert_eq!((bucket.hits(ARCHIVE), bucket.hits("mirror/model.tar.gz")), (1, 1));
}

#[tokio::test]
async fn a_redirect_out_of_the_list_is_refused_unretried_and_leaves_nothing() {
    let elsewhere = bucket_serving(Answer::Body(good_archive()), &good_archive()).await;
    let targets = [
        format!("{}/{ARCHIVE}", elsewhere.url),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://localhost:1/model.tar.gz".to_owned(),
    ];
    for target in targets {
        let bucket = bucket_serving(Answer::Redirect(target.clone()), &good_archive()).await;
        let workspace = Workspace::new();
        let source = workspace.guarded(&bucket.url, &[format!("{}/", bucket.url)]);
        let reason = refusal(unretried(&source).await);
        assert!(reason.contains("left the allow-list") && reason.contains(&target), "{target}: {reason}");
        assert_eq!(bucket.hits(ARCHIVE), 1, "{target}: not retried");
        assert!(workspace.assets_listing().is_empty(), "{target}: {:?}", workspace.assets_listing());
    }
    assert_eq!(elsewhere.hits(ARCHIVE), 0, "the unlisted server is never asked");
}

#[tokio::test]
async fn a_redirect_loop_stops_after_five_redirects_unretried() {
    let bucket = bucket_serving(Answer::Redirect(format!("/{ARCHIVE}")), &good_archive()).await;
    let workspace = Workspace::new();
    let source = workspace.guarded(&bucket.url, &[format!("{}/", bucket.url)]);
    let error = unretried(&source).await.unwrap_err();
    assert!(matches!(error, Error::Download { .. }) && error.to_string().contains("more than 5 redirects"), "{error}");
    assert_eq!(bucket.hits(ARCHIVE), 6, "the first request and five redirects, once");
    assert!(workspace.assets_listing().is_empty(), "{:?}", workspace.assets_listing());
}

#[tokio::test]
async fn a_listed_host_name_that_resolves_to_loopback_is_refused() {
    let bucket = bucket_serving(Answer::Body(good_archive()), &good_archive()).await;
    let named = bucket.url.replace("127.0.0.1", "localhost");
    let workspace = Workspace::new();
    let source = workspace.guarded(&named, &[format!("{named}/")]);
    let reason = refusal(unretried(&source).await);
    assert!(reason.contains("`localhost` resolves to") && reason.contains("loopback"), "{reason}");
    assert_eq!(bucket.hits("sha512sums.txt"), 0);
    assert!(workspace.assets_listing().is_empty(), "{:?}", workspace.assets_listing());
}

#[tokio::test]
async fn a_local_bucket_must_be_a_listed_file_url_that_no_link_leads_out_of() {
    let workspace = Workspace::new();
    let root = workspace.dir.path().canonicalize().unwrap();
    let (allowed, unlisted) = (root.join("allowed"), root.join("unlisted"));
    for dir in [allowed.join("model"), unlisted.clone()] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(ARCHIVE), good_archive()).unwrap();
        std::fs::write(dir.join("sha512sums.txt"), checksums_for(&good_archive())).unwrap();
    }
    std::os::unix::fs::symlink(&unlisted, allowed.join("link")).unwrap();
    let listed = [format!("file://{}/", allowed.display())];

    for bucket in [
        format!("file://{}", unlisted.display()),
        format!("file://{}/link", allowed.display()),
        format!("file://{}/model/../../unlisted", allowed.display()),
        allowed.join("model").display().to_string(),
    ] {
        let reason = refusal(unretried(&workspace.guarded(&bucket, &listed)).await);
        assert!(!reason.is_empty(), "{bucket}");
        assert!(!workspace.assets().exists(), "{bucket}: nothing is created");
    }
    let bucket = format!("file://{}/model", allowed.display());
    unretried(&workspace.guarded(&bucket, &listed)).await.unwrap();
    assert_eq!(std::fs::read(workspace.assets().join(WEIGHTS)).unwrap(), WEIGHTS_BYTES);

    // A listed bucket whose checksums file is a link out of the list: not read.
    let linked = allowed.join("linked");
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink(unlisted.join("sha512sums.txt"), linked.join("sha512sums.txt")).unwrap();
    let other = Workspace::new();
    let reason = refusal(unretried(&other.guarded(&format!("file://{}", linked.display()), &listed)).await);
    assert!(reason.contains("symbolic link"), "{reason}");
}
