//! The protocols' own clients against the server binary: `tritonclient`, the client most
//! KServe v2 users have, called as its documentation shows, with JSON and with the binary
//! tensor data extension (its default), and the README's tritonclient snippet as written.

mod common;

use std::path::Path;

use common::{Server, committed_models, readme_code, repository};

/// Runs the Python `script` from the project's venv in the repository root (where the
/// samples and data/mnist are) with `args`; its output, which must show success.
async fn python(script: &Path, args: &[&str]) -> String {
    let python = repository().join(".venv/bin/python");
    assert!(python.is_file(), "{} is made by `make test`", python.display());
    let output = tokio::process::Command::new(python)
        .arg(script)
        .args(args)
        .current_dir(repository())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), output).await.expect("it ends").unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{}: {stdout}\n{stderr}", script.display());
    stdout.into_owned()
}

#[tokio::test]
async fn tritonclient_passes_with_json_and_binary_data_and_agrees_with_predict() {
    let server = Server::start(committed_models().iter().map(String::as_str)).await;
    let address = format!("127.0.0.1:{}", server.port);
    let output = python(&repository().join("tests/clients/tritonclient_checks.py"), &[&address]).await;
    assert!(output.contains("checks passed"), "{output}");
    println!("{output}");
}

#[tokio::test]
async fn the_readme_tritonclient_snippet_runs_as_written() {
    let server = Server::start(committed_models().iter().map(String::as_str)).await;
    let [snippet] = <[String; 1]>::try_from(readme_code("### KServe v2", "python")).expect("one python block");
    assert!(snippet.contains("localhost:5000"), "{snippet}");
    let scratch = tempfile::tempdir().unwrap();
    let script = scratch.path().join("snippet.py");
    std::fs::write(&script, snippet.replace("localhost:5000", &format!("127.0.0.1:{}", server.port))).unwrap();
    let output = python(&script, &[]).await;
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.first(), Some(&"True True True"), "{output}");
    assert!(lines[1].contains("'name': 'pixels'") && lines[1].contains("'BYTES'"), "{output}");
    // The answers the snippet's comments promise.
    assert_eq!(&lines[2..], ["[7 2 1 0]", "[7]"], "{output}");
}

/// The admin key of the management tests.
const ADMIN_KEY: &str = "admin-key-for-client-tests";

#[tokio::test]
async fn tritonclient_lists_unloads_and_loads_through_the_repository_extension() {
    let models = committed_models();
    let management = ["--management-address", "127.0.0.1:0", "--admin-api-key", ADMIN_KEY];
    let server = Server::start(models.iter().map(String::as_str).chain(management)).await;
    let address = format!("127.0.0.1:{}", server.port);
    let management = server.management_url().expect("the management API is on");
    let management = management.trim_start_matches("http://");
    let script = repository().join("tests/clients/tritonclient_repository.py");
    let output = python(&script, &[&address, management, ADMIN_KEY]).await;
    assert!(output.contains("repository checks passed"), "{output}");
}

/// `curl ARGS`, run off the test's runtime thread; its body and status.
async fn curl(args: &[&str]) -> (serde_json::Value, u16) {
    let mut curl = std::process::Command::new("curl");
    curl.args(["-s", "--max-time", "60", "-w", "\n%{http_code}"]).args(args);
    let output = tokio::task::spawn_blocking(move || curl.output()).await.unwrap().expect("curl is installed");
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (serde_json::from_str(body).unwrap_or(serde_json::Value::Null), status.parse().unwrap())
}

#[tokio::test]
async fn torchserve_management_curl_commands_register_and_unregister_a_model() {
    let models = committed_models();
    let allowed = format!("file://{}/", repository().join("pretrained-model").display());
    let management =
        ["--management-address", "127.0.0.1:0", "--admin-api-key", ADMIN_KEY, "--allowed-bucket", &allowed];
    let server = Server::start(models.iter().map(String::as_str).chain(management)).await;
    let management = server.management_url().expect("the management API is on");
    let bearer = format!("Authorization: Bearer {ADMIN_KEY}");
    let bucket = format!("file://{}", repository().join("pretrained-model/mnist").display());

    // As TorchServe's documentation registers a model, with the key added.
    let register = format!("{management}/models?url={bucket}&model_name=digits&initial_workers=1&synchronous=true");
    let (answer, status) = curl(&["-X", "POST", &register, "-H", &bearer]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["status"].as_str().unwrap().contains("Model \"digits\" Version: "), "{answer}");
    let (described, status) = curl(&[&format!("{management}/models/digits"), "-H", &bearer]).await;
    assert_eq!((status, &described[0]["modelUrl"]), (200, &serde_json::json!(bucket)), "{described}");
    let (answer, status) = curl(&["-T", "samples/digit-7.png", &format!("{}/predictions/digits", server.url)]).await;
    assert_eq!((status, answer.as_object().unwrap().keys().next().unwrap().as_str()), (200, "7"), "{answer}");

    let (_, status) = curl(&["-X", "POST", &register]).await;
    assert_eq!(status, 401, "the key is required");
    let (_, status) = curl(&["-X", "DELETE", &format!("{management}/models/digits"), "-H", &bearer]).await;
    assert_eq!(status, 200);
    let (answer, status) = curl(&["-T", "samples/digit-7.png", &format!("{}/predictions/digits", server.url)]).await;
    assert_eq!(status, 404, "{answer}");
}
