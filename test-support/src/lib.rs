//! What several crates' tests share: a loopback HTTP server with canned answers, so that
//! download code (model buckets, dataset mirrors) is exercised without the internet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the loopback server answers for a path.
#[derive(Clone)]
pub enum Answer {
    /// 200 with this body.
    Body(Vec<u8>),
    /// This status, with an empty body.
    Status(u16),
    /// Declares the full length but sends only half of the body, then closes.
    Truncated(Vec<u8>),
}

/// A minimal HTTP/1.1 server on 127.0.0.1 with canned answers and a request counter.
pub struct LoopbackServer {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub url: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl LoopbackServer {
    /// Starts answering on a free loopback port; `answers` maps paths (without their leading
    /// slash) to answers, anything else is a 404.
    pub async fn serve(answers: HashMap<&'static str, Answer>) -> LoopbackServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let answers: HashMap<String, Answer> =
            answers.into_iter().map(|(path, answer)| (format!("/{path}"), answer)).collect();
        let counter = hits.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = vec![0u8; 4096];
                let read = socket.read(&mut request).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..read]).lines().next().unwrap_or_default().to_owned();
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                *counter.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
                let (status, body, sent) = match answers.get(&path).cloned().unwrap_or(Answer::Status(404)) {
                    Answer::Body(body) => (200, body.clone(), body.len()),
                    Answer::Status(status) => (status, Vec::new(), 0),
                    Answer::Truncated(body) => (200, body.clone(), body.len() / 2),
                };
                let head =
                    format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body[..sent]).await;
                let _ = socket.shutdown().await;
            }
        });
        LoopbackServer { url, hits }
    }

    /// How many requests `path` (without its leading slash) has had.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(&format!("/{path}")).copied().unwrap_or(0)
    }
}
