//! Many requests at once: batched across requests with each caller getting its own answer,
//! refused with 503 when the queue is full, and served over kept-alive connections.

use std::time::Duration;

use max_mnist_api::Application;
use max_mnist_config::settings::ServerSettings;
use tokio::io::{AsyncWriteExt, BufReader};

use crate::helpers::{TestApp, connect, expect_error, predict_head, read_response, sample};

/// Samples of every kind, with their digits: MNIST digits (the shortcut), photos, a scan and
/// canvas drawings (the whole preprocessing), so that images finish preprocessing out of order.
const MIXED: [(&str, u32); 15] = [
    ("digit-0.png", 0),
    ("digit-1.png", 1),
    ("digit-2.png", 2),
    ("digit-3.png", 3),
    ("digit-4.png", 4),
    ("digit-5.png", 5),
    ("digit-6.png", 6),
    ("digit-7.png", 7),
    ("digit-8.png", 8),
    ("digit-9.png", 9),
    ("photo-4-exif.jpg", 4),
    ("photo-8-exif.jpg", 8),
    ("scan-3.jpg", 3),
    ("canvas-2-transparent.png", 2),
    ("canvas-7.png", 7),
];

/// Sends `count` requests at once, cycling through [`MIXED`], and checks every answer.
async fn every_concurrent_caller_gets_its_own_digit(app: &TestApp, count: usize) {
    let requests = (0..count).map(|index| async move {
        let (name, digit) = MIXED[index % MIXED.len()];
        (name, digit, app.predict_sample(name).await.0)
    });
    for (name, sent, predicted) in futures::future::join_all(requests).await {
        assert_eq!(predicted, sent, "{name}");
    }
}

#[tokio::test]
async fn batches_across_requests_and_answers_each_caller_with_its_own_digit() {
    // Waiting for batches to fill (5 ms), and never waiting; an odd batch size splits them.
    for delay_us in [5_000, 0] {
        let app = TestApp::spawn_with(|settings| {
            settings.max_batch_delay_us = delay_us;
            settings.max_batch_size = 7;
        })
        .await;
        every_concurrent_caller_gets_its_own_digit(&app, 300).await;
    }
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_the_server_recovers() {
    let app = TestApp::spawn_with(|settings| {
        settings.queue_capacity = 1;
        settings.max_images_per_request = 1;
        settings.preprocess_threads = 1;
    })
    .await;
    let mut refused = 0;
    for _round in 0..5 {
        let requests = (0..64).map(|_| app.predict_multipart("image", "photo.jpg", sample("photo-8-exif.jpg")));
        for response in futures::future::join_all(requests).await {
            match response.status().as_u16() {
                200 => {}
                503 => {
                    refused += 1;
                    let headers = expect_error(response, 503, "busy").await.headers;
                    let retry_after = headers.get("retry-after").expect("a Retry-After header");
                    assert_eq!(retry_after.to_str().unwrap(), "1");
                }
                other => panic!("unexpected status {other}"),
            }
        }
        if refused > 0 {
            break;
        }
    }
    assert!(refused > 0, "64 concurrent photos never filled a queue of one");
    // The refused work, and a failed image, left nothing behind: one request at a time, the
    // server answers.
    assert_eq!(app.predict_multipart("image", "notes.txt", b"not an image".to_vec()).await.status(), 400);
    for (name, digit) in MIXED {
        assert_eq!(app.predict_sample(name).await.0, digit, "{name}");
    }
}

#[tokio::test]
async fn a_form_larger_than_the_queue_is_refused_at_start_up() {
    let mut settings = ServerSettings::defaults();
    settings.port = 0;
    settings.queue_capacity = 8;
    settings.max_images_per_request = 9;
    let error = Application::build(&settings).await.err().expect("contradictory settings are refused");
    assert!(error.to_string().contains("could never be admitted"), "{error}");
}

#[tokio::test]
async fn one_kept_alive_connection_serves_request_after_request() {
    let app = TestApp::spawn().await;
    let mut connection = BufReader::new(connect(&app).await);
    for digit in [3, 1, 4, 1, 5, 9, 2, 6] {
        let image = sample(&format!("digit-{digit}.png"));
        let head = predict_head(&format!("Content-Type: image/png\r\nContent-Length: {}\r\n", image.len()));
        connection.get_mut().write_all(head.as_bytes()).await.unwrap();
        connection.get_mut().write_all(&image).await.unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), read_response(&mut connection))
            .await
            .unwrap()
            .expect("an answer before the connection closed");
        assert_eq!(response.status_line, "HTTP/1.1 200 OK");
        let headers = &response.headers;
        assert!(headers.iter().any(|header| header.starts_with("content-length:")), "{headers:?}");
        assert!(!headers.iter().any(|header| header == "connection: close"), "{headers:?}");
        let body = std::str::from_utf8(&response.body).unwrap();
        assert!(body.contains(&format!("\"prediction\":{digit},")), "{body}");
    }
}
