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
