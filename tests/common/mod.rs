//! What the tests of the server binary share: the binary, started with no setting taken from
//! the environment of whoever runs the tests, and a running server whose logs a test reads.
//! (Each test binary uses part of it.)
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use max_mnist_config::settings::ServerSettings;

/// The repository's root.
pub fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `--model` arguments serving both committed models, `mnist` and `fashion-mnist`.
pub fn committed_models() -> Vec<String> {
    ["mnist", "fashion-mnist"]
        .iter()
        .flat_map(|name| {
            ["--model".to_owned(), format!("{name}={}", repository().join("pretrained-model").join(name).display())]
        })
        .collect()
}

/// The code blocks in `language` of the README's section that starts with `heading` (up to
/// the next heading of its level or above), in order.
pub fn readme_code(heading: &str, language: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repository().join("README.md")).unwrap();
    let level = |line: &str| {
        let hashes = line.chars().take_while(|&character| character == '#').count();
        (hashes > 0 && line[hashes..].starts_with(' ')).then_some(hashes)
    };
    let heading_level = level(heading).expect("a Markdown heading");
    let (mut found, mut in_section, mut blocks, mut fence) = (false, false, Vec::new(), None::<(bool, String)>);
    for line in readme.lines() {
        if let Some((wanted, code)) = &mut fence {
            if line.starts_with("```") {
                if *wanted {
                    blocks.push(std::mem::take(code));
                }
                fence = None;
            } else {
                code.push_str(line);
                code.push('\n');
            }
        } else if let Some(info) = line.strip_prefix("```") {
            fence = Some((in_section && info == language, String::new()));
        } else if line == heading || line.starts_with(&format!("{heading} ")) {
            (found, in_section) = (true, true);
        } else if level(line).is_some_and(|level| level <= heading_level) {
            in_section = false;
        }
    }
    assert!(found, "the README has `{heading}`");
    blocks
}

/// The server binary.
pub const SERVER: &str = env!("CARGO_BIN_EXE_max-mnist");

/// The server binary as a command whose settings come from its arguments alone: every
/// environment variable a setting reads (`API_KEY`, `MAX_BODY_BYTES`, `MODELS`, …) is
/// removed, so a variable set in the shell that runs the tests cannot change what they test.
pub fn server_command() -> Command {
    let mut command = Command::new(SERVER);
    for argument in ServerSettings::command().get_arguments() {
        if let Some(variable) = argument.get_env() {
            command.env_remove(variable);
        }
    }
    command
}

/// The server binary on 127.0.0.1 with a free port, fetching its models' files into a scratch
/// assets directory, logging JSON lines that the test can read.
pub struct Server {
    /// The server process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port it listens on.
    pub port: u16,
    logs: Arc<Mutex<Vec<String>>>,
    _assets: tempfile::TempDir,
}

impl Server {
    /// Starts the server with `args` (its models among them) and waits until it is ready.
    pub async fn start<'a>(args: impl IntoIterator<Item = &'a str>) -> Server {
        let assets = tempfile::tempdir().unwrap();
        let mut child = server_command()
            .args(["--host", "127.0.0.1", "--port", "0", "--log-format", "json"])
            .arg("--assets-dir")
            .arg(assets.path())
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_sender, address) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn({
            let logs = logs.clone();
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(address) = logged_address(&line, "listening") {
                        let _ = address_sender.send(address);
                    }
                    logs.lock().unwrap().push(line);
                }
            }
        });
        let address: String = address.recv_timeout(Duration::from_secs(30)).expect("the server logs its address");
        let port = address.rsplit(':').next().unwrap().parse().unwrap();
        let server = Server { child, url: format!("http://{address}"), port, logs, _assets: assets };
        server.wait_until_ready().await;
        server
    }

    /// Waits for the log line saying the model is ready (what `/health/ready` reports, and
    /// readable whatever the probes' API key).
    pub async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.logs.lock().unwrap().iter().any(|line| line.contains("warmed up: ready")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let logs = self.logs();
        panic!("not ready within a minute; last logs: {:?}", &logs[logs.len().saturating_sub(20)..]);
    }

    /// Resident memory of the server process, in MiB.
    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .unwrap();
        kib / 1024.0
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// The management API's `http://HOST:PORT`, from its log line; `None` when it is off.
    pub fn management_url(&self) -> Option<String> {
        let address = self.logs().iter().find_map(|line| logged_address(line, "management API listening"))?;
        Some(format!("http://{address}"))
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `address` field of `line` when it is a JSON log line whose message starts with
/// `message`.
fn logged_address(line: &str, message: &str) -> Option<String> {
    let line: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = &line["fields"];
    fields["message"].as_str()?.starts_with(message).then(|| fields["address"].as_str().map(str::to_owned))?
}
