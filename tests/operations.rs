//! The server binary as an operator runs it: it drains on SIGTERM without failing a request
//! in flight and exits 0; it survives a soak of good and bad requests with no 5xx and flat
//! memory; its OpenAPI document holds under schemathesis; its Docker health check and its
//! Kubernetes probes ask routes that answer; its JSON logs carry request ids; and a bomb in
//! the bucket stops it at start-up.

mod common;

use common::{Server, committed_models, repository, server_command};

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HEALTHCHECK: &str = env!("CARGO_BIN_EXE_healthcheck");

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(repository().join("samples").join(name)).unwrap()
}

/// The server with both committed models and `args` added, ready.
async fn start(args: &[&str]) -> Server {
    let committed = committed_models();
    Server::start(committed.iter().map(String::as_str).chain(args.iter().copied())).await
}

/// A multipart form of `count` copies of the sample `name`, each an `image` part.
fn form_of(name: &str, count: usize) -> reqwest::multipart::Form {
    let bytes = sample(name);
    (0..count).fold(reqwest::multipart::Form::new(), |form, _| {
        form.part("image", reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_owned()))
    })
}

/// What happened to one request of the drain test.
struct Outcome {
    sent_before_signal: bool,
    answered_after_signal: bool,
    result: Result<u16, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_load_fails_no_request_in_flight_and_exits_0() {
    // One preprocessing thread and forms of 8 photos: each request takes tens of milliseconds,
    // so at the signal every worker has one in flight.
    let mut server = start(&["--preprocess-threads", "1", "--drain-timeout-secs", "20"]).await;
    let signalled: Arc<Mutex<Option<Instant>>> = Arc::default();
    let workers: Vec<_> = (0..12)
        .map(|_| {
            let url = format!("{}/model/predict", server.url);
            let signalled = signalled.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut outcomes = Vec::new();
                loop {
                    let sent_before_signal = signalled.lock().unwrap().is_none();
                    let response = client.post(&url).multipart(form_of("photo-8-exif.jpg", 8)).send().await;
                    let result =
                        response.map(|response| response.status().as_u16()).map_err(|error| format!("{error:?}"));
                    let refused = result.is_err();
                    let answered_after_signal = signalled.lock().unwrap().is_some();
                    outcomes.push(Outcome { sent_before_signal, answered_after_signal, result });
                    if refused {
                        return outcomes;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    *signalled.lock().unwrap() = Some(Instant::now());
    server.terminate();

    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(tokio::time::timeout(Duration::from_secs(30), worker).await.unwrap().unwrap());
    }
    let status = server.child.wait().unwrap();
    let signalled_at = signalled.lock().unwrap().unwrap();
    let failed: Vec<_> =
        outcomes.iter().filter(|outcome| outcome.sent_before_signal && outcome.result != Ok(200)).collect();
    let sent = outcomes.iter().filter(|outcome| outcome.sent_before_signal).count();
    let in_flight =
        outcomes.iter().filter(|outcome| outcome.sent_before_signal && outcome.answered_after_signal).count();
    println!("drain: {sent} requests sent before SIGTERM, {in_flight} of them in flight at the signal");
    assert!(in_flight >= 6, "requests were in flight at the signal: {in_flight}");
    assert!(
        failed.is_empty(),
        "{} of {sent} requests sent before SIGTERM failed: {:?}",
        failed.len(),
        failed.iter().map(|outcome| &outcome.result).collect::<Vec<_>>()
    );
    assert!(outcomes.iter().all(
        |outcome| outcome.result.as_ref().is_err_and(|_| !outcome.sent_before_signal) || outcome.result == Ok(200)
    ));
    assert_eq!(status.code(), Some(0), "exit status after draining");
    assert!(signalled_at.elapsed() < Duration::from_secs(20), "drained within the drain timeout");
    let logs = server.logs().join("\n");
    assert!(logs.contains("SIGTERM received") && logs.contains("\"drained\""), "{logs}");
}

/// A request of the soak: what it sends, and whether it is a good one.
struct SoakRequest {
    good: bool,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

/// The soak's mix: the MNIST digits and a canvas (good), and text posing as an image, an empty
/// body, a truncated PNG, a 50,000×50,000 PNG header, a form-urlencoded body and an unknown
/// route (bad).
fn soak_mix() -> Vec<SoakRequest> {
    let request = |good, path, content_type, body| SoakRequest { good, path, content_type, body };
    let mut mix: Vec<SoakRequest> = ["digit-0.png", "digit-3.png", "digit-7.png", "digit-9.png", "canvas-7.png"]
        .into_iter()
        .map(|name| request(true, "/model/predict", Some("image/png"), sample(name)))
        .collect();
    let png = sample("digit-5.png");
    let mut huge = png.clone();
    huge[16..20].copy_from_slice(&50_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&50_000u32.to_be_bytes());
    // The header chunk's CRC-32, over its type and data, so that only the size is wrong.
    let mut crc = flate2::Crc::new();
    crc.update(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    mix.extend([
        request(false, "/model/predict", Some("image/png"), b"seven, honestly".to_vec()),
        request(false, "/model/predict", Some("image/png"), Vec::new()),
        request(false, "/model/predict", Some("image/png"), png[..png.len() / 2].to_vec()),
        request(false, "/model/predict", Some("image/png"), huge),
        request(false, "/model/predict", Some("application/x-www-form-urlencoded"), b"image=7".to_vec()),
        request(false, "/no/such/route", None, b"x".to_vec()),
    ]);
    mix
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_soak_of_good_and_bad_requests_gets_no_5xx_and_memory_stays_flat() {
    let seconds: u64 = std::env::var("SOAK_SECS").ok().and_then(|value| value.parse().ok()).unwrap_or(60);
    let concurrency = 128;
    let server = Arc::new(start(&[]).await);
    let mix = Arc::new(soak_mix());
    let client = reqwest::Client::new();
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let rss_at_start = server.rss_mib();
    let rss_warm: Arc<Mutex<Option<f64>>> = Arc::default();
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (server, mix, client, rss_warm) = (server.clone(), mix.clone(), client.clone(), rss_warm.clone());
            tokio::spawn(async move {
                let mut statuses: BTreeMap<(bool, u16), u64> = BTreeMap::new();
                let mut next = worker;
                while Instant::now() < end {
                    let request = &mix[next % mix.len()];
                    next += 7;
                    let mut builder = client.post(format!("{}{}", server.url, request.path)).body(request.body.clone());
                    if let Some(content_type) = request.content_type {
                        builder = builder.header("content-type", content_type);
                    }
                    let status = builder.send().await.map_or(0, |response| response.status().as_u16());
                    *statuses.entry((request.good, status)).or_default() += 1;
                    if worker == 0
                        && rss_warm.lock().unwrap().is_none()
                        && started.elapsed() > Duration::from_secs(seconds / 6)
                    {
                        *rss_warm.lock().unwrap() = Some(server.rss_mib());
                    }
                }
                statuses
            })
        })
        .collect();
    let mut statuses: BTreeMap<(bool, u16), u64> = BTreeMap::new();
    for worker in workers {
        for (key, count) in worker.await.unwrap() {
            *statuses.entry(key).or_default() += count;
        }
    }
    let rss_at_end = server.rss_mib();
    let rss_warm = rss_warm.lock().unwrap().expect("measured after warm-up");
    let total: u64 = statuses.values().sum();
    println!(
        "soak: {seconds} s at c={concurrency}: {total} requests ({:.0}/s); by (good, status): {statuses:?}; \
         RSS {rss_at_start:.0} MiB at start, {rss_warm:.0} MiB after {} s, {rss_at_end:.0} MiB at the end",
        total as f64 / seconds as f64,
        seconds / 6
    );
    let good_failures: u64 =
        statuses.iter().filter(|((good, status), _)| *good && *status != 200).map(|(_, n)| n).sum();
    let server_errors: u64 =
        statuses.iter().filter(|((_, status), _)| *status >= 500 || *status == 0).map(|(_, n)| n).sum();
    assert_eq!(good_failures, 0, "every good request is answered 200: {statuses:?}");
    assert_eq!(server_errors, 0, "no 5xx and no dropped connection: {statuses:?}");
    assert!(statuses.keys().any(|(good, status)| !good && (400..500).contains(status)), "{statuses:?}");
    assert!(
        rss_at_end < rss_warm * 1.25 + 16.0,
        "memory grows under steady load: {rss_warm:.0} MiB after warm-up, {rss_at_end:.0} MiB at the end"
    );
}

#[tokio::test]
async fn schemathesis_finds_no_5xx_and_no_response_breaking_the_spec() {
    let schemathesis = repository().join(".venv/bin/schemathesis");
    assert!(schemathesis.is_file(), "{} is installed by `make test-tools`", schemathesis.display());
    let server = start(&[]).await;
    // The log lines of schemathesis' requests, not of the wait for readiness.
    let logged_before = server.logs().len();
    // Schemathesis keeps its example database in the working directory.
    let scratch = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(&schemathesis)
        .current_dir(scratch.path())
        .args(["--no-color", "--config-file"])
        .arg(repository().join("tests/schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/swagger.json", server.url))
        .args(["--url", &server.url, "--checks", "all", "--max-examples", "150", "--seed", "42", "--workers", "1"])
        .args(["--generation-database", "none", "--request-timeout", "10"])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), output).await.expect("schemathesis ends").unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{report}");
    assert!(report.contains("No issues found"), "{report}");
    let logs = &server.logs()[logged_before..];
    let requests = logs.iter().filter(|line| line.contains("\"response\"")).count();
    assert!(requests > 500, "schemathesis sent only {requests} requests");
    let server_errors: Vec<_> = logs.iter().filter(|line| line.contains("\"status\":5")).collect();
    assert!(server_errors.is_empty(), "{server_errors:?}");
}

#[tokio::test]
async fn the_docker_health_check_says_ready_only_when_the_server_is() {
    let server = start(&[]).await;
    let check = |port: u16| Command::new(HEALTHCHECK).env("PORT", port.to_string()).output().unwrap();
    let ready = check(server.port);
    assert!(ready.status.success(), "{}", String::from_utf8_lossy(&ready.stderr));
    let unused_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nobody = check(unused_port);
    assert_eq!(nobody.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("cannot connect"));
}

#[tokio::test]
async fn the_docker_health_check_sends_the_servers_key_when_probes_need_it() {
    let server = start(&["--api-key", "probe-key", "--auth-health", "true"]).await;
    let check = |key: Option<&str>| {
        let mut command = Command::new(HEALTHCHECK);
        command.env("PORT", server.port.to_string()).env_remove("API_KEY");
        if let Some(key) = key {
            command.env("API_KEY", key);
        }
        command.output().unwrap()
    };
    assert!(check(Some("probe-key")).status.success());
    let without = check(None);
    assert_eq!(without.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&without.stderr).contains("401"), "{}", String::from_utf8_lossy(&without.stderr));
}

#[tokio::test]
async fn a_shutdown_delay_reports_draining_while_still_serving_then_exits_0() {
    let mut server = start(&["--shutdown-delay-secs", "2"]).await;
    let client = reqwest::Client::new();
    let signalled = Instant::now();
    server.terminate();
    let deadline = Instant::now() + Duration::from_secs(1);
    let readiness = loop {
        let response = client.get(format!("{}/health/ready", server.url)).send().await.unwrap();
        if response.status() == 503 || Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(readiness.status(), 503);
    assert_eq!(readiness.json::<serde_json::Value>().await.unwrap()["status"], "draining");
    let prediction = client
        .post(format!("{}/model/predict", server.url))
        .header("content-type", "image/png")
        .body(sample("digit-7.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(prediction.status(), 200, "requests are still served during the delay");
    assert!(signalled.elapsed() < Duration::from_secs(2), "the checks ran within the delay");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(signalled.elapsed() >= Duration::from_secs(2), "served on for the delay: {:?}", signalled.elapsed());
    assert!(reqwest::get(format!("{}/health/live", server.url)).await.is_err(), "the socket is closed after");
}

/// Every `path:` of an HTTP probe, and every container port, in the manifests under `deploy/`.
fn manifest_probes_and_ports() -> (Vec<String>, Vec<u16>) {
    let mut manifests = vec![repository().join("deploy")];
    let (mut paths, mut ports) = (Vec::new(), Vec::new());
    while let Some(path) = manifests.pop() {
        if path.is_dir() {
            manifests.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|extension| extension != "yaml") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines().map(str::trim) {
            if let Some(value) = line.strip_prefix("path:").or_else(|| line.strip_prefix("prometheus.io/path:")) {
                paths.push(value.trim().trim_matches('"').to_owned());
            }
            if let Some(value) =
                line.strip_prefix("containerPort:").or_else(|| line.strip_prefix("prometheus.io/port:"))
            {
                ports.push(value.trim().trim_matches('"').parse().unwrap());
            }
        }
    }
    (paths, ports)
}

#[tokio::test]
async fn the_kubernetes_probes_and_scrape_ask_routes_that_answer_on_the_default_port() {
    let (paths, ports) = manifest_probes_and_ports();
    for expected in ["/health/ready", "/health/live", "/v2/health/ready", "/v2/health/live", "/metrics"] {
        assert!(paths.iter().any(|path| path == expected), "{expected} in deploy/: {paths:?}");
    }
    let default_port = max_mnist_config::settings::ServerSettings::defaults().port;
    assert!(!ports.is_empty() && ports.iter().all(|&port| port == default_port), "{ports:?}");
    let server = start(&[]).await;
    for path in paths {
        let response = reqwest::get(format!("{}{path}", server.url)).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn every_log_line_of_a_request_carries_its_id() {
    let server = start(&[]).await;
    let response = reqwest::Client::new()
        .post(format!("{}/model/predict", server.url))
        .header("x-request-id", "trace-me-42")
        .header("content-type", "image/png")
        .body(b"not a png".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let logs = server.logs();
        if let Some(line) = logs.iter().find(|line| line.contains("trace-me-42")) {
            break line.clone();
        }
        assert!(Instant::now() < deadline, "no log line with the request id: {logs:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["span"]["id"], "trace-me-42", "{line}");
    assert_eq!(line["fields"]["status"], 400, "{line}");
}

/// A bucket in a scratch directory whose model archive holds `entries` (name, size in bytes
/// of zeros), gzipped, with a `sha512sums.txt` that vouches for the archive itself: what a
/// compromised publisher would serve.
fn bucket_with_archive(scratch: &Path, entries: &[(String, u64)]) -> PathBuf {
    let bucket = scratch.join("bucket");
    std::fs::create_dir(&bucket).unwrap();
    let archive = std::fs::File::create(bucket.join("mnist-classifier.tar.gz")).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(archive, flate2::Compression::fast()));
    for (name, size) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(*size);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, std::io::repeat(0).take(*size)).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
    let digest = |bytes: &[u8]| hex::encode(<sha2::Sha512 as sha2::Digest>::digest(bytes));
    let archive = std::fs::read(bucket.join("mnist-classifier.tar.gz")).unwrap();
    let listing = format!(
        "{}  mnist-classifier.tar.gz\n{}  assets/mnist-classifier.safetensors\n",
        digest(&archive),
        digest(b"")
    );
    std::fs::write(bucket.join("sha512sums.txt"), listing).unwrap();
    bucket
}

/// Runs the server on `bucket` with an empty assets directory; returns its stderr after it
/// exits (it must exit, with status 1) and whether the model's folder in assets/ is still empty.
fn start_up_failure(scratch: &Path, bucket: &Path) -> (String, bool) {
    let assets = scratch.join("assets");
    let output = server_command()
        .args(["--host", "127.0.0.1", "--port", "0", "--download-retries", "0"])
        .arg("--model")
        .arg(format!("mnist={}", bucket.display()))
        .arg("--assets-dir")
        .arg(&assets)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let empty = std::fs::read_dir(assets.join("mnist")).map(|entries| entries.count() == 0).unwrap_or(true);
    (String::from_utf8_lossy(&output.stderr).into_owned(), empty)
}

#[test]
fn a_gzip_bomb_in_the_bucket_stops_start_up() {
    let scratch = tempfile::tempdir().unwrap();
    // 300 MiB of zeros: a few hundred KiB gzipped, over the 256 MiB a file may unpack to.
    let bucket = bucket_with_archive(scratch.path(), &[("mnist-classifier.safetensors".into(), 300 << 20)]);
    assert!(std::fs::metadata(bucket.join("mnist-classifier.tar.gz")).unwrap().len() < 2 << 20);
    let (stderr, assets_empty) = start_up_failure(scratch.path(), &bucket);
    assert!(stderr.contains("refused archive"), "{stderr}");
    assert!(assets_empty, "nothing of the bomb is left in assets/");
}

#[test]
fn a_tar_bomb_of_many_entries_in_the_bucket_stops_start_up() {
    let scratch = tempfile::tempdir().unwrap();
    let entries: Vec<(String, u64)> = (0..10_000).map(|index| (format!("file-{index}"), 0)).collect();
    let bucket = bucket_with_archive(scratch.path(), &entries);
    let (stderr, assets_empty) = start_up_failure(scratch.path(), &bucket);
    assert!(stderr.contains("refused archive"), "{stderr}");
    assert!(assets_empty);
}
