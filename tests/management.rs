//! The management API on the server binary: memory after many loads and unloads, and the
//! audit lines every action leaves in the log.

mod common;

use common::{Server, committed_models, repository};

/// The admin key of these tests.
const ADMIN_KEY: &str = "admin-key-for-audit-tests";

/// The server with the committed models, the management API on and the committed buckets'
/// folder allowed.
async fn managed_server() -> Server {
    let models = committed_models();
    let allowed = format!("file://{}/", repository().join("pretrained-model").display());
    let management =
        ["--management-address", "127.0.0.1:0", "--admin-api-key", ADMIN_KEY, "--allowed-bucket", &allowed];
    Server::start(models.iter().map(String::as_str).chain(management)).await
}

/// The committed mnist bucket as a `file://` URL.
fn mnist_bucket() -> String {
    format!("file://{}", repository().join("pretrained-model/mnist").display())
}

/// Registers the mnist bucket as `name`, classifies a digit with it, and unregisters it.
async fn load_use_and_unload(client: &reqwest::Client, server: &Server, management: &str, name: &str) {
    let register = reqwest::Url::parse_with_params(
        &format!("{management}/models"),
        [("url", mnist_bucket().as_str()), ("model_name", name)],
    )
    .unwrap();
    let registered = client.post(register).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(registered.status(), 200, "{:?}", registered.text().await);
    let image = std::fs::read(repository().join("samples/digit-7.png")).unwrap();
    let answer = client.put(format!("{}/predictions/{name}", server.url)).body(image).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let unregistered = client.delete(format!("{management}/models/{name}")).bearer_auth(ADMIN_KEY).send().await;
    assert_eq!(unregistered.unwrap().status(), 200);
}

#[tokio::test]
async fn a_hundred_loads_and_unloads_leave_memory_where_it_was() {
    let server = managed_server().await;
    let management = server.management_url().unwrap();
    let client = reqwest::Client::new();
    let at_start = server.rss_mib();
    // The first load sets up what every later one shares (libtorch's allocator, oneDNN's
    // kernels for the batch sizes used): printed apart, to tell it from a leak.
    load_use_and_unload(&client, &server, &management, "extra").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let start = server.rss_mib();
    let mut peak = start;
    for _ in 0..100 {
        load_use_and_unload(&client, &server, &management, "extra").await;
        peak = peak.max(server.rss_mib());
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let end = server.rss_mib();
    println!(
        "RSS at start {at_start:.1} MiB, after the first load and unload {start:.1} MiB, after 100 more {end:.1} MiB, \
         peak {peak:.1} MiB"
    );
    assert!(end - at_start <= 10.0, "RSS grew from {at_start:.1} to {end:.1} MiB over 101 loads and unloads");
}

#[tokio::test]
async fn every_management_action_leaves_an_audit_line_without_the_key() {
    let server = managed_server().await;
    let management = server.management_url().unwrap();
    let client = reqwest::Client::new();
    load_use_and_unload(&client, &server, &management, "audited").await;
    let refused = reqwest::Url::parse_with_params(
        &format!("{management}/models"),
        [("url", "http://169.254.169.254/latest/meta-data"), ("model_name", "audited")],
    )
    .unwrap();
    let refused = client.post(refused).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(refused.status(), 403);

    // Log lines are written off the request path: wait for the third audit line.
    let audit_lines = |logs: &[String]| -> Vec<serde_json::Value> {
        logs.iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["target"] == "audit")
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while audit_lines(&server.logs()).len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let logs = server.logs();
    assert!(!logs.iter().any(|line| line.contains(ADMIN_KEY)), "a log line shows the admin key");
    let audit = audit_lines(&logs);
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|line| (line["fields"]["action"].as_str().unwrap(), line["fields"]["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("register", "ok"), ("unload", "ok"), ("register", "refused")], "{audit:?}");
    for line in &audit {
        assert_eq!(line["fields"]["model"], "audited", "{line}");
    }
    assert_eq!(audit[0]["fields"]["bucket"], mnist_bucket());
    assert_eq!(audit[0]["fields"]["sha512"].as_str().unwrap().len(), 128, "{}", audit[0]);
    assert!(audit[2]["fields"]["reason"].as_str().unwrap().contains("169.254.169.254"), "{}", audit[2]);
}
