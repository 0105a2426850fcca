//! What several crates' tests share: a loopback HTTP server with canned answers, so that
//! download code (model buckets, dataset mirrors) is exercised without the internet; and
//! [`jpeg_with_orientation_6`], a photo stored the way phone cameras store one held upright.

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
    /// 302 Found to this location (absolute or relative), with an empty body.
    Redirect(String),
}

/// A minimal HTTP/1.1 server on 127.0.0.1 with canned answers and a request counter.
pub struct LoopbackServer {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub url: String,
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    /// The accept loop, stopped when the server is dropped: its port then refuses.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LoopbackServer {
    /// Starts answering on a free loopback port; `answers` maps paths (without their leading
    /// slash) to answers, anything else is a 404.
    pub async fn serve<Path: AsRef<str>>(answers: HashMap<Path, Answer>) -> LoopbackServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let answers: HashMap<String, Answer> =
            answers.into_iter().map(|(path, answer)| (format!("/{}", path.as_ref()), answer)).collect();
        let answers = Arc::new(Mutex::new(answers));
        let (counter, current) = (hits.clone(), answers.clone());
        let task = tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = vec![0u8; 4096];
                let read = socket.read(&mut request).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..read]).lines().next().unwrap_or_default().to_owned();
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                *counter.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
                let mut location = String::new();
                let answer = current.lock().unwrap().get(&path).cloned();
                let (status, body, sent) = match answer.unwrap_or(Answer::Status(404)) {
                    Answer::Body(body) => (200, body.clone(), body.len()),
                    Answer::Status(status) => (status, Vec::new(), 0),
                    Answer::Truncated(body) => (200, body.clone(), body.len() / 2),
                    Answer::Redirect(target) => {
                        location = format!("Location: {target}\r\n");
                        (302, Vec::new(), 0)
                    }
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body[..sent]).await;
                let _ = socket.shutdown().await;
            }
        });
        LoopbackServer { url, answers, hits, task }
    }

    /// From now on, answers `path` (without its leading slash) with `answer`: a bucket whose
    /// content changes.
    pub fn set(&self, path: &str, answer: Answer) {
        self.answers.lock().unwrap().insert(format!("/{path}"), answer);
    }

    /// How many requests `path` (without its leading slash) has had.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(&format!("/{path}")).copied().unwrap_or(0)
    }
}

/// `stored` as a JPEG of `quality` whose EXIF orientation is 6: the camera stored the picture
/// turned a quarter to the left, and a reader that honours the tag turns it back.
pub fn jpeg_with_orientation_6(stored: &image::RgbImage, quality: u8) -> Vec<u8> {
    let exif: Vec<u8> = [b"II*\0".as_slice(), &8u32.to_le_bytes(), &1u16.to_le_bytes(), &0x0112u16.to_le_bytes()]
        .into_iter()
        .chain([&3u16.to_le_bytes()[..], &1u32.to_le_bytes(), &6u16.to_le_bytes(), &[0, 0], &0u32.to_le_bytes()])
        .flatten()
        .copied()
        .collect();
    let mut jpeg = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality);
    image::ImageEncoder::set_exif_metadata(&mut encoder, exif).unwrap();
    image::ImageEncoder::write_image(encoder, stored, stored.width(), stored.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    jpeg
}
