//! The management API on its own address: TorchServe's management routes and the Open
//! Inference Protocol's repository extension, with the admin key and the bucket allow-list;
//! swaps under load, unloads with requests in flight, hostile buckets, poll mode and the
//! repository record across a restart. Buckets are served on loopback from the committed
//! ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use max_mnist_api::types::PredictResponse;
use max_mnist_config::settings::ServerSettings;
use max_mnist_test_support::{Answer, LoopbackServer};

use crate::helpers::{TestApp, committed_bucket, expect_error, model, sample};
use crate::operations::loading_app;

const ADMIN_KEY: &str = "admin-key-for-tests";

/// A committed bucket's two files: its `sha512sums.txt` and its archive, by name.
fn bucket_files(committed: &str) -> Vec<(String, Vec<u8>)> {
    let folder = committed_bucket(committed);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap()))
        .collect();
    files.sort();
    files
}

/// The answers serving `committed`'s bucket under `prefix/`, its archive changed by `spoil`.
fn bucket_answers(prefix: &str, committed: &str, spoil: impl Fn(Vec<u8>) -> Answer) -> Vec<(String, Answer)> {
    bucket_files(committed)
        .into_iter()
        .map(|(name, bytes)| {
            let answer = if name.ends_with(".tar.gz") { spoil(bytes) } else { Answer::Body(bytes) };
            (format!("{prefix}/{name}"), answer)
        })
        .collect()
}

/// The bucket served whole.
fn whole(bytes: Vec<u8>) -> Answer {
    Answer::Body(bytes)
}

/// A loopback server holding `mnist/` and `fashion/` (the committed buckets), a tampered and
/// a truncated copy of mnist's, and `moved/`, whose checksums redirect to `elsewhere`.
async fn buckets(elsewhere: &str) -> LoopbackServer {
    let mut answers: Vec<(String, Answer)> = Vec::new();
    answers.extend(bucket_answers("mnist", "mnist", whole));
    answers.extend(bucket_answers("fashion", "fashion-mnist", whole));
    answers.extend(bucket_answers("tampered", "mnist", |mut bytes| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        Answer::Body(bytes)
    }));
    answers.extend(bucket_answers("truncated", "mnist", Answer::Truncated));
    answers.push(("moved/sha512sums.txt".into(), Answer::Redirect(format!("{elsewhere}/mnist/sha512sums.txt"))));
    LoopbackServer::serve(answers.into_iter().collect::<HashMap<_, _>>()).await
}

/// A server serving the committed models, with the management API on a free loopback port,
/// the admin key, and `allowed` as its allow-list.
async fn managed(allowed: Vec<String>, configure: impl FnOnce(&mut ServerSettings)) -> TestApp {
    TestApp::spawn_with(|settings| {
        settings.management_address = Some("127.0.0.1:0".into());
        settings.admin_api_key = Some(ADMIN_KEY.parse().unwrap());
        settings.allowed_buckets = allowed;
        settings.download_retries = 0;
        configure(settings);
    })
    .await
}

/// A request to the management API, with the admin key.
fn admin(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    let url = format!("{}{path}", app.management_url.as_ref().expect("the management API is on"));
    app.client.request(method, url).bearer_auth(ADMIN_KEY)
}

/// `base` + `path` with `query` encoded.
fn with_query(base: &str, path: &str, query: &[(&str, &str)]) -> reqwest::Url {
    reqwest::Url::parse_with_params(&format!("{base}{path}"), query).unwrap()
}

/// Registers the bucket at `url` as a version of `name` (TorchServe's `POST /models`).
async fn register(app: &TestApp, name: &str, url: &str) -> reqwest::Response {
    let target = with_query(app.management_url.as_ref().unwrap(), "/models", &[("url", url), ("model_name", name)]);
    app.client.post(target).bearer_auth(ADMIN_KEY).send().await.unwrap()
}

/// Loads `name` from `url` through the repository extension, as the only version it serves.
async fn load(app: &TestApp, name: &str, url: &str) -> reqwest::Response {
    let body = serde_json::json!({"parameters": {"url": url}});
    admin(app, reqwest::Method::POST, &format!("/v2/repository/models/{name}/load")).json(&body).send().await.unwrap()
}

/// Classifies `image` with `name` and returns the status, the `X-Model-Version` header and
/// the predicted label.
async fn classify(app: &TestApp, name: &str, image: &str) -> (u16, String, String) {
    let part = reqwest::multipart::Part::bytes(sample(image)).file_name(image.to_owned());
    let form = reqwest::multipart::Form::new().part("image", part);
    let response = app.client.post(format!("{}/models/{name}/predict", app.url)).multipart(form).send().await.unwrap();
    let status = response.status().as_u16();
    let version = response.headers().get("x-model-version").map(|value| value.to_str().unwrap().to_owned());
    if status != 200 {
        return (status, version.unwrap_or_default(), String::new());
    }
    let body: PredictResponse = response.json().await.unwrap();
    (status, version.expect("an answer names its version"), body.predictions[0].label.clone())
}

/// The version a model's metadata names.
async fn served_version(app: &TestApp, name: &str) -> String {
    let response = app.client.get(format!("{}/models/{name}/metadata", app.url)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{name}");
    let body: serde_json::Value = response.json().await.unwrap();
    body["version"].as_str().unwrap().to_owned()
}

/// The folders of `name`'s further versions on disk.
fn version_folders(app: &TestApp, name: &str) -> Vec<String> {
    let folder = app.assets.join(name).join("versions");
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    entries.map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[tokio::test]
async fn management_is_off_by_default_and_never_on_the_inference_port() {
    let app = TestApp::spawn().await;
    assert!(app.management_url.is_none());
    let bucket = committed_bucket("mnist").display().to_string();
    let response = app.client.post(with_query(&app.url, "/models", &[("url", &bucket)])).send().await.unwrap();
    expect_error(response, 405, "method not allowed").await;
    let response = app.client.post(format!("{}/v2/repository/index", app.url)).send().await.unwrap();
    expect_error(response, 404, "no such route").await;

    let managed = managed(vec![], |_| {}).await;
    let response = managed.client.post(format!("{}/v2/repository/models/mnist/unload", managed.url)).send().await;
    expect_error(response.unwrap(), 404, "no such route").await;
}

#[tokio::test]
async fn the_management_api_takes_only_the_admin_key() {
    let app = managed(vec![], |settings| settings.api_key = Some("inference-key".parse().unwrap())).await;
    let url = format!("{}/models", app.management_url.as_ref().unwrap());
    expect_error(app.client.get(&url).send().await.unwrap(), 401, "API key").await;
    expect_error(app.client.get(&url).bearer_auth("inference-key").send().await.unwrap(), 401, "wrong").await;
    let spec = format!("{}/swagger.json", app.management_url.as_ref().unwrap());
    expect_error(app.client.get(&spec).send().await.unwrap(), 401, "API key").await;
    let listed = app.client.get(&url).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let listed: serde_json::Value = listed.json().await.unwrap();
    assert_eq!(listed["models"][0]["modelName"], "mnist");
    assert_eq!(listed["models"][1]["modelName"], "fashion-mnist");
}

#[tokio::test]
async fn versions_are_registered_described_made_default_and_unregistered() {
    let loopback = buckets("http://127.0.0.1:9").await;
    let app = managed(vec![format!("{}/", loopback.url)], |_| {}).await;

    let registered = register(&app, "digits", &format!("{}/mnist", loopback.url)).await;
    assert_eq!(registered.status(), 200);
    let status: serde_json::Value = registered.json().await.unwrap();
    assert!(status["status"].as_str().unwrap().contains("registered"), "{status}");
    let (code, digits_version, label) = classify(&app, "digits", "digit-7.png").await;
    assert_eq!((code, label.as_str()), (200, "7"));
    assert_eq!(digits_version, served_version(&app, "mnist").await);

    // A second version is loaded beside the first, which the name keeps serving.
    let registered = register(&app, "digits", &format!("{}/fashion", loopback.url)).await;
    assert_eq!(registered.status(), 200);
    let fashion_version = served_version(&app, "fashion-mnist").await;
    assert_eq!(classify(&app, "digits", "digit-7.png").await.1, digits_version);
    let versions = format!("{}/predictions/digits/{fashion_version}", app.url);
    let answer = app.client.put(&versions).body(sample("fashion-trouser.png")).send().await.unwrap();
    assert_eq!(answer.headers()["x-model-version"], fashion_version.as_str());
    let all: serde_json::Value =
        admin(&app, reqwest::Method::GET, "/models/digits/all").send().await.unwrap().json().await.unwrap();
    let listed: Vec<&str> =
        all.as_array().unwrap().iter().map(|version| version["modelVersion"].as_str().unwrap()).collect();
    assert_eq!(listed, [digits_version.as_str(), fashion_version.as_str()]);
    assert_eq!(all[0]["loadedAtStartup"], false);
    expect_error(register(&app, "digits", &format!("{}/fashion", loopback.url)).await, 409, "already").await;

    let path = format!("/models/digits/{fashion_version}/set-default");
    assert_eq!(admin(&app, reqwest::Method::PUT, &path).send().await.unwrap().status(), 200);
    // The Open Inference Protocol's answer names the version in its body too.
    let blank = serde_json::json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": vec![0.0; 784]}]});
    let inferred = app.client.post(format!("{}/v2/models/digits/infer", app.url)).json(&blank).send().await.unwrap();
    assert_eq!(inferred.headers()["x-model-version"], fashion_version.as_str());
    let inferred: serde_json::Value = inferred.json().await.unwrap();
    assert_eq!(inferred["model_version"], fashion_version.as_str());
    let (_, version, label) = classify(&app, "digits", "fashion-trouser.png").await;
    assert_eq!((version.as_str(), label.as_str()), (fashion_version.as_str(), "Trouser"));

    let default = admin(&app, reqwest::Method::DELETE, &format!("/models/digits/{fashion_version}")).send().await;
    expect_error(default.unwrap(), 409, "make another the default").await;
    let old = admin(&app, reqwest::Method::DELETE, &format!("/models/digits/{digits_version}")).send().await;
    assert_eq!(old.unwrap().status(), 200);
    assert_eq!(version_folders(&app, "digits").len(), 1);
    let gone = admin(&app, reqwest::Method::DELETE, "/models/digits").send().await.unwrap();
    assert_eq!(gone.status(), 200);
    expect_error(admin(&app, reqwest::Method::DELETE, "/models/digits").send().await.unwrap(), 404, "no model").await;
    assert_eq!(classify(&app, "digits", "digit-7.png").await.0, 404);
    assert!(version_folders(&app, "digits").is_empty());

    // The counters are the process's, shared with the other tests: each at least this test's.
    let metrics = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    for (action, outcome, count) in [("register", "ok", 2), ("register", "refused", 1), ("unload", "ok", 2)] {
        let series = format!("max_mnist_management_actions_total{{action=\"{action}\",outcome=\"{outcome}\"}} ");
        let counted =
            metrics.lines().find_map(|line| line.strip_prefix(&series)).map(|value| value.parse::<u64>().unwrap());
        assert!(counted >= Some(count), "{series}: {counted:?}");
    }
}

#[tokio::test]
async fn a_hostile_or_broken_bucket_is_refused_and_the_old_version_serves_on() {
    let elsewhere = buckets("http://127.0.0.1:9").await;
    let loopback = buckets(&elsewhere.url).await;
    let port = loopback.url.rsplit(':').next().unwrap().to_owned();
    // Listing a metadata or link-local address is refused at start-up (see the artifacts tests).
    let allowed = vec![format!("{}/", loopback.url), format!("http://localhost:{port}/")];
    let app = managed(allowed, |_| {}).await;
    assert_eq!(load(&app, "digits", &format!("{}/mnist", loopback.url)).await.status(), 200);
    let (_, version, _) = classify(&app, "digits", "digit-3.png").await;

    let repository = committed_bucket("mnist").display().to_string();
    let cases = [
        (format!("{}/tampered", loopback.url), 400, "checksum mismatch"),
        (format!("{}/truncated", loopback.url), 400, "truncated"),
        (format!("{}/nothing-here", loopback.url), 400, "HTTP 404"),
        (format!("{}/mnist", elsewhere.url), 403, "allow"),
        (format!("{}/moved", loopback.url), 403, "redirect"),
        (format!("http://localhost:{port}/mnist"), 403, "loopback"),
        ("http://169.254.169.254/latest/meta-data".to_owned(), 403, "169.254.169.254"),
        ("http://[fe80::1]/bucket".to_owned(), 403, "fe80::1"),
        (format!("file://{repository}"), 403, "allow"),
        (repository.clone(), 403, ""),
    ];
    for (url, status, fragment) in cases {
        for response in [load(&app, "digits", &url).await, register(&app, "digits", &url).await] {
            let refusal = expect_error(response, status, fragment).await;
            assert!(refusal.body.message.contains("digits"), "{url}: {}", refusal.body.message);
        }
        assert_eq!(classify(&app, "digits", "digit-3.png").await, (200, version.clone(), "3".into()), "{url}");
        assert_eq!(version_folders(&app, "digits").len(), 1, "{url}: only the served version's files stay");
    }
    assert_eq!(elsewhere.hits("mnist/sha512sums.txt"), 0, "nothing was fetched from outside the list");
}

/// Clients posting `digit-7.png` to `digits` until `stop`; fails on any answer that is not a
/// 200 from a known version with one of that version's labels. Returns the answers counted.
async fn post_until(app: Arc<TestApp>, stop: Arc<AtomicBool>, labels: Arc<HashMap<String, Vec<String>>>) -> usize {
    let mut answered = 0;
    while !stop.load(Ordering::Relaxed) {
        let (status, version, label) = classify(&app, "digits", "digit-7.png").await;
        assert_eq!(status, 200, "a request failed during a swap");
        let known = labels.get(&version).unwrap_or_else(|| panic!("an answer from an unknown version {version}"));
        assert!(known.contains(&label), "version {version} answered `{label}`, another version's label");
        answered += 1;
    }
    answered
}

/// The labels of the model called `name`.
async fn labels_of(app: &TestApp, name: &str) -> Vec<String> {
    let response = app.client.get(format!("{}/models/{name}/labels", app.url)).send().await.unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    body["labels"].as_array().unwrap().iter().map(|label| label["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_swaps_under_load_fail_no_request_and_each_answer_comes_from_one_version() {
    let loopback = buckets("http://127.0.0.1:9").await;
    let app = managed(vec![format!("{}/", loopback.url)], |_| {}).await;
    let buckets = [format!("{}/mnist", loopback.url), format!("{}/fashion", loopback.url)];
    assert_eq!(load(&app, "digits", &buckets[0]).await.status(), 200);
    let mnist = served_version(&app, "mnist").await;
    let fashion = served_version(&app, "fashion-mnist").await;
    // The digits version reads the 7; the clothes version can only answer a garment.
    let labels = HashMap::from([
        (mnist.clone(), vec!["7".to_owned()]),
        (fashion.clone(), labels_of(&app, "fashion-mnist").await),
    ]);
    let labels = Arc::new(labels);

    let app = Arc::new(app);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> =
        (0..64).map(|_| tokio::spawn(post_until(app.clone(), stop.clone(), labels.clone()))).collect();
    for swap in 1..=10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let response = load(&app, "digits", &buckets[swap % 2]).await;
        assert_eq!(response.status(), 200, "swap {swap}");
        let answer: serde_json::Value = response.json().await.unwrap();
        let wanted = if swap % 2 == 1 { &fashion } else { &mnist };
        assert_eq!(answer["version"].as_str(), Some(wanted.as_str()), "swap {swap}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        answered += client.await.expect("no client saw a failed or mixed answer");
    }
    assert!(answered > 64, "only {answered} answers");
    assert_eq!(served_version(&app, "digits").await, mnist);
    assert_eq!(version_folders(&app, "digits").len(), 1, "the replaced versions' files are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unload_lets_requests_in_flight_finish_and_later_ones_get_404() {
    let app = Arc::new(managed(vec![], |_| {}).await);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..32)
        .map(|_| {
            let (app, in_flight) = (app.clone(), in_flight.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..20 {
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let (status, _, label) = classify(&app, "mnist", "digit-7.png").await;
                    if status == 200 {
                        assert_eq!(label, "7");
                    }
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    while in_flight.load(Ordering::Relaxed) < 64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let unloaded = admin(&app, reqwest::Method::POST, "/v2/repository/models/mnist/unload").send().await.unwrap();
    assert_eq!(unloaded.status(), 200);
    let after = classify(&app, "mnist", "digit-7.png").await.0;
    assert_eq!(after, 404);
    let mut statuses = Vec::new();
    for client in clients {
        statuses.extend(client.await.unwrap());
    }
    assert!(statuses.iter().all(|status| [200, 404, 503].contains(status)), "{statuses:?}");
    assert!(statuses.contains(&200) && statuses.contains(&404), "{statuses:?}");
    // The default MAX routes named the unloaded model: a clear 404.
    expect_error(app.predict_multipart("image", "digit-7.png", sample("digit-7.png")).await, 404, "no model `mnist`")
        .await;
}

#[tokio::test]
async fn poll_mode_serves_a_new_version_within_two_intervals_and_never_a_broken_one() {
    let loopback = buckets("http://127.0.0.1:9").await;
    for (path, answer) in bucket_answers("followed", "mnist", whole) {
        loopback.set(&path, answer);
    }
    let interval = Duration::from_secs(1);
    let app = TestApp::spawn_with(|settings| {
        settings.models = vec![model("digits", format!("{}/followed", loopback.url))];
        settings.poll_interval = interval;
        settings.download_retries = 0;
    })
    .await;
    let first = served_version(&app, "digits").await;

    for (path, answer) in bucket_answers("followed", "fashion-mnist", whole) {
        loopback.set(&path, answer);
    }
    let changed = Instant::now();
    while served_version(&app, "digits").await == first {
        assert!(changed.elapsed() < 2 * interval, "the new version was not served within two intervals");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = served_version(&app, "digits").await;
    assert_eq!(classify(&app, "digits", "fashion-trouser.png").await, (200, second.clone(), "Trouser".into()));

    // A tampered archive under new checksums: fetched, refused, never served.
    for (path, answer) in bucket_answers("followed", "mnist", |mut bytes| {
        bytes[100] ^= 1;
        Answer::Body(bytes)
    }) {
        loopback.set(&path, answer);
    }
    let archive_hits = || loopback.hits("followed/mnist-classifier.tar.gz");
    let before = archive_hits();
    let deadline = Instant::now() + 4 * interval;
    while Instant::now() < deadline {
        assert_eq!(served_version(&app, "digits").await, second);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(archive_hits() - before, 1, "a refused version is fetched once, not at every interval");
    assert!(version_folders(&app, "digits").len() <= 1, "{:?}", version_folders(&app, "digits"));
}

#[tokio::test]
async fn a_restart_serves_the_same_versions_verified_again() {
    let loopback = buckets("http://127.0.0.1:9").await;
    let assets = tempfile::tempdir().unwrap();
    let allowed = vec![format!("{}/", loopback.url)];
    let start = |allowed: Vec<String>| {
        let assets = assets.path().to_owned();
        managed(allowed, move |settings| settings.assets_dir = assets)
    };
    let (mnist, fashion) = {
        let app = start(allowed.clone()).await;
        assert_eq!(register(&app, "digits", &format!("{}/mnist", loopback.url)).await.status(), 200);
        assert_eq!(register(&app, "digits", &format!("{}/fashion", loopback.url)).await.status(), 200);
        let fashion = served_version(&app, "fashion-mnist").await;
        let path = format!("/models/digits/{fashion}/set-default");
        assert_eq!(admin(&app, reqwest::Method::PUT, &path).send().await.unwrap().status(), 200);
        let unloaded = admin(&app, reqwest::Method::DELETE, "/models/fashion-mnist").send().await.unwrap();
        assert_eq!(unloaded.status(), 200);
        (served_version(&app, "mnist").await, fashion)
    };

    // The bucket is gone: what comes back comes from the verified files.
    drop(loopback);
    let app = start(allowed.clone()).await;
    let listed: serde_json::Value =
        admin(&app, reqwest::Method::GET, "/models").send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> =
        listed["models"].as_array().unwrap().iter().map(|model| model["modelName"].as_str().unwrap()).collect();
    assert_eq!(names, ["mnist", "digits"]);
    assert_eq!(served_version(&app, "digits").await, fashion);
    assert_eq!(classify(&app, "digits", "fashion-trouser.png").await.2, "Trouser");
    let index: serde_json::Value =
        admin(&app, reqwest::Method::POST, "/v2/repository/index").send().await.unwrap().json().await.unwrap();
    let digits: Vec<(&str, bool)> = index
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["name"] == "digits")
        .map(|entry| (entry["version"].as_str().unwrap(), entry["default"].as_bool().unwrap()))
        .collect();
    let recorded = std::fs::read_to_string(assets.path().join("repository.json")).unwrap();
    assert_eq!(digits, [(fashion.as_str(), true), (mnist.as_str(), false)], "{recorded}");
    drop(app);

    // A recorded file changed on disk: the start fails, naming the model and the mismatch.
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(assets.path().join("repository.json")).unwrap()).unwrap();
    let digits = record["models"].as_array().unwrap().iter().find(|model| model["name"] == "digits").unwrap();
    let version = &digits["versions"][0];
    let folder = assets.path().join(version["folder"].as_str().unwrap());
    let weights = folder.join(version["files"][0]["name"].as_str().unwrap());
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[200] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let mut settings = ServerSettings::defaults();
    settings.host = "127.0.0.1".into();
    settings.port = 0;
    settings.management_address = Some("127.0.0.1:0".into());
    settings.admin_api_key = Some(ADMIN_KEY.parse().unwrap());
    settings.assets_dir = assets.path().to_owned();
    let application = max_mnist_api::Application::build(&settings).await.unwrap();
    let error = application.run_until(std::future::pending()).await.unwrap_err().to_string();
    assert!(error.contains("digits") && error.contains("checksum mismatch"), "{error}");
}

#[tokio::test]
async fn no_change_is_made_while_the_server_is_still_loading_its_models() {
    let (app, _bucket) = loading_app(|settings| {
        settings.management_address = Some("127.0.0.1:0".into());
        settings.admin_api_key = Some(ADMIN_KEY.parse().unwrap());
    })
    .await;
    for (method, path) in [
        (reqwest::Method::POST, "/v2/repository/models/mnist/unload"),
        (reqwest::Method::POST, "/v2/repository/models/mnist/load"),
        (reqwest::Method::DELETE, "/models/mnist"),
    ] {
        let refusal = expect_error(admin(&app, method, path).send().await.unwrap(), 503, "starting").await;
        assert!(refusal.headers.contains_key("retry-after"), "{path}");
    }
    let index = admin(&app, reqwest::Method::POST, "/v2/repository/index").send().await.unwrap();
    assert_eq!(index.status(), 200, "reading is fine");
}
