//! Hostile clients: lying headers, decompression bombs, bodies that never end or barely move,
//! a deadline blown on purpose, a connection cap held hostage and a flood of garbage. Each gets
//! its 4xx (or 503) with the JSON error body, within a few seconds, and afterwards the server
//! still classifies a good sample. Where reqwest cannot misbehave, the tests speak HTTP/1.1 by
//! hand over a raw socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use max_mnist_api::error::ErrorBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

use crate::helpers::{
    PATIENCE, TestApp, answer, check_error_body, closes, connect, expect_error, predict_head, read_response,
    request_head, sample,
};

/// The default body limit (`MAX_BODY_BYTES`).
const DEFAULT_MAX_BODY_BYTES: usize = 24 * 1024 * 1024;

/// A GIF of a few dozen bytes whose logical screen and only frame claim `width × height`
/// pixels: a decompression bomb's header.
fn gif_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend(width.to_le_bytes());
    gif.extend(height.to_le_bytes());
    // A global colour table of two entries, background colour 0, square pixels; black, white.
    gif.extend([0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    // The image descriptor: at (0, 0), the whole screen, no local colour table.
    gif.push(0x2c);
    gif.extend([0, 0, 0, 0]);
    gif.extend(width.to_le_bytes());
    gif.extend(height.to_le_bytes());
    gif.push(0);
    // LZW minimum code size 2, one data sub-block of 2 bytes, the block terminator, the trailer.
    gif.extend([2, 2, 0x44, 0x01, 0, 0x3b]);
    gif
}

/// A committed PNG sample re-encoded as `format`.
fn sample_as(name: &str, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::load_from_memory(&sample(name)).unwrap().to_rgb8().write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

#[tokio::test]
async fn a_gif_declaring_50000_by_50000_pixels_gets_413_before_decoding() {
    let app = TestApp::spawn().await;
    let bomb = gif_claiming(50_000, 50_000);
    assert!(bomb.len() < 100, "{} bytes", bomb.len());
    for content_type in [Some("image/gif"), None] {
        let started = Instant::now();
        let response = app.predict_body(content_type, bomb.clone()).await;
        let refusal = expect_error(response, 413, "50000x50000 pixels, over the limit of 16000000 pixels").await;
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}: {}", started.elapsed(), refusal.body.message);
    }
    let started = Instant::now();
    let response = app.predict_multipart("image", "bomb.gif", bomb).await;
    expect_error(response, 413, "the image is 50000x50000 pixels").await;
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}

#[tokio::test]
async fn truncated_gifs_get_400() {
    let app = TestApp::spawn().await;
    let gif = sample_as("digit-7.png", image::ImageFormat::Gif);
    // The whole GIF is fine; only its first half is refused.
    assert_eq!(app.predict_multipart("image", "seven.gif", gif.clone()).await.status(), 200);
    let response = app.predict_body(Some("image/gif"), gif[..gif.len() / 2].to_vec()).await;
    expect_error(response, 400, "the image could not be decoded").await;
    let form = reqwest::multipart::Form::new()
        .part("image", reqwest::multipart::Part::bytes(sample("digit-1.png")).file_name("one.png"))
        .part("image", reqwest::multipart::Part::bytes(gif[..gif.len() / 2].to_vec()).file_name("half.gif"));
    let response = app.predict_form(form).await;
    expect_error(response, 400, "part 2 (image, \"half.gif\"): the image could not be decoded").await;
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}

#[tokio::test]
async fn truncated_jpegs_get_400() {
    let app = TestApp::spawn().await;
    for name in ["digit-7.jpg", "photo-8-exif.jpg", "scan-3.jpg"] {
        let jpeg = sample(name);
        let response = app.predict_body(Some("image/jpeg"), jpeg[..jpeg.len() / 2].to_vec()).await;
        assert_eq!(response.status(), 400, "the first half of {name}: {:?}", response.text().await);
        let body: ErrorBody = response.json().await.expect("a JSON error body");
        check_error_body(&body, "the image could not be decoded");
    }
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}

#[tokio::test]
async fn a_text_file_posing_as_a_png_gets_400_not_a_supported_image() {
    let app = TestApp::spawn().await;
    let text = b"Dear server, this is a seven. Honest.\n".to_vec();
    let part = reqwest::multipart::Part::bytes(text.clone()).file_name("seven.png").mime_str("image/png").unwrap();
    let response = app.predict_form(reqwest::multipart::Form::new().part("image", part)).await;
    expect_error(response, 400, "the file is not a supported image").await;
    let response = app.predict_body(Some("image/png"), text).await;
    expect_error(response, 400, "the file is not a supported image").await;
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}

#[tokio::test]
async fn empty_bodies_and_empty_parts_get_400() {
    let app = TestApp::spawn().await;
    for content_type in [Some("image/png"), Some("application/octet-stream"), None] {
        let response = app.predict_body(content_type, Vec::new()).await;
        expect_error(response, 400, "the image is empty").await;
    }
    // A part with no file name and no bytes.
    let response = app.predict_form(reqwest::multipart::Form::new().text("image", "")).await;
    expect_error(response, 400, "the image is empty").await;
    // A form with no part at all.
    let response = app.predict_body(Some("multipart/form-data; boundary=X"), "--X--\r\n").await;
    expect_error(response, 400, "no image").await;
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}

#[tokio::test]
async fn a_declared_100_mb_body_gets_413_before_it_is_sent() {
    let app = TestApp::spawn().await;
    let mut connection = BufReader::new(connect(&app).await);
    let head = predict_head("Content-Type: image/png\r\nContent-Length: 104857600\r\n");
    let started = Instant::now();
    connection.get_mut().write_all(head.as_bytes()).await.unwrap();
    connection.get_mut().write_all(&[0x89; 4096]).await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(1), read_response(&mut connection))
        .await
        .expect("an answer within a second")
        .expect("an answer");
    response.expect_error(413, &format!("over the limit of {DEFAULT_MAX_BODY_BYTES} bytes"));
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}

#[tokio::test]
async fn a_100_mb_chunked_body_gets_413_and_is_not_read_to_its_end() {
    const CHUNK: usize = 1024 * 1024;
    const CHUNKS: usize = 100;
    let app = TestApp::spawn().await;
    let (reader, mut writer) = connect(&app).await.into_split();
    let sent = Arc::new(AtomicUsize::new(0));
    let sending = tokio::spawn({
        let sent = sent.clone();
        async move {
            let head = predict_head("Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n");
            writer.write_all(head.as_bytes()).await?;
            let mut chunk = format!("{CHUNK:x}\r\n").into_bytes();
            chunk.extend(vec![0x89; CHUNK]);
            chunk.extend(b"\r\n");
            for _ in 0..CHUNKS {
                writer.write_all(&chunk).await?;
                sent.fetch_add(CHUNK, Ordering::Relaxed);
            }
            writer.write_all(b"0\r\n\r\n").await?;
            writer.flush().await
        }
    });
    let started = Instant::now();
    let response = answer(&mut BufReader::new(reader)).await;
    let answered_after = started.elapsed();
    let sent_when_answered = sent.load(Ordering::Relaxed);
    response.expect_error(413, &format!("over the limit of {DEFAULT_MAX_BODY_BYTES} bytes"));
    // The server stops reading: the client's writes soon fail, far short of 100 MB.
    let outcome = tokio::time::timeout(PATIENCE, sending).await.expect("the upload stops").unwrap();
    let sent = sent.load(Ordering::Relaxed);
    assert!(outcome.is_err(), "all {sent} bytes were accepted");
    assert!(
        sent < CHUNKS * CHUNK / 2,
        "{sent} bytes sent ({sent_when_answered} when answered after {answered_after:?})"
    );
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}

#[tokio::test]
async fn bodies_that_would_take_the_body_memory_over_its_size_get_503_until_it_is_freed() {
    const BODY: usize = 900 * 1024;
    let app = TestApp::spawn_with(|settings| {
        settings.max_body_bytes = 1024 * 1024;
        settings.body_memory_bytes = 1536 * 1024;
    })
    .await;
    // A first client sends most of its body and stalls: the server holds what it read.
    let (reader, mut writer) = connect(&app).await.into_split();
    let head = predict_head(&format!("Content-Type: image/png\r\nContent-Length: {}\r\n", BODY + 1024));
    writer.write_all(head.as_bytes()).await.unwrap();
    writer.write_all(&vec![0x89; BODY]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A second body of the same size does not fit beside it.
    let response = app.predict_body(Some("image/png"), vec![0x89; BODY]).await;
    let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
    assert_eq!(retry_after.as_deref(), Some("1"), "{response:?}");
    expect_error(response, 503, "BODY_MEMORY_BYTES").await;
    // Small requests still fit.
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
    // Once the first is answered (its bytes are no PNG), its memory is free again.
    writer.write_all(&[0x89; 1024]).await.unwrap();
    answer(&mut BufReader::new(reader)).await.expect_error(400, "");
    let response = app.predict_body(Some("image/png"), vec![0x89; BODY]).await;
    expect_error(response, 400, "").await;
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}

/// Sends `bytes` one at a time, `pause` apart, until done or the connection fails.
fn trickle(mut writer: impl AsyncWriteExt + Unpin + Send + 'static, bytes: Vec<u8>, pause: Duration) {
    tokio::spawn(async move {
        for byte in bytes {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(pause).await;
        }
        // Hold the connection open (no half-close) until the test is over.
        std::future::pending::<()>().await;
    });
}

#[tokio::test]
async fn a_body_sent_a_byte_a_second_gets_408_at_the_body_read_timeout() {
    let app = TestApp::spawn_with(|settings| {
        settings.body_read_timeout = Duration::from_secs(1);
        settings.request_timeout = Duration::from_secs(5);
    })
    .await;
    let (reader, mut writer) = connect(&app).await.into_split();
    writer.write_all(predict_head("Content-Type: image/png\r\nContent-Length: 1000\r\n").as_bytes()).await.unwrap();
    let started = Instant::now();
    trickle(writer, sample("digit-7.png").repeat(4), Duration::from_secs(1));
    let response = answer(&mut BufReader::new(reader)).await;
    response.expect_error(408, "the request body did not arrive within 1 s");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}

#[tokio::test]
async fn idle_connections_are_closed_at_the_header_timeout_without_a_408() {
    let app = TestApp::spawn_with(|settings| settings.header_read_timeout = Duration::from_secs(1)).await;
    // One that never sends a byte (a load balancer's TCP check), one kept alive after an answer.
    let mut silent = BufReader::new(connect(&app).await);
    let mut kept_alive = BufReader::new(connect(&app).await);
    kept_alive.get_mut().write_all(request_head("GET", "/health/live", "").as_bytes()).await.unwrap();
    assert_eq!(answer(&mut kept_alive).await.status, 200);
    let started = Instant::now();
    for connection in [&mut silent, &mut kept_alive] {
        let mut rest = Vec::new();
        tokio::time::timeout(PATIENCE, connection.read_to_end(&mut rest)).await.expect("closed in time").unwrap();
        assert!(rest.is_empty(), "an unasked-for answer: {:?}", String::from_utf8_lossy(&rest));
    }
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_refused_request_with_a_body_closes_its_connection_and_gets_no_408_later() {
    let app = TestApp::spawn_with(|settings| settings.header_read_timeout = Duration::from_secs(1)).await;
    let mut connection = BufReader::new(connect(&app).await);
    // Refused before its body is read: the rest of the body must not pass for a new request.
    let body = vec![b'x'; 12 * 1024];
    let head = request_head("POST", "/no/such/route", &format!("Content-Length: {}\r\n", body.len()));
    connection.get_mut().write_all(head.as_bytes()).await.unwrap();
    connection.get_mut().write_all(&body).await.unwrap();
    let response = answer(&mut connection).await;
    response.expect_error(404, "no such route");
    assert_eq!(response.header("connection"), Some("close"));
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, connection.read_to_end(&mut rest)).await.expect("closed").unwrap();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

#[tokio::test]
async fn a_kept_alive_connection_whose_next_request_stalls_gets_408() {
    let app = TestApp::spawn_with(|settings| settings.header_read_timeout = Duration::from_secs(1)).await;
    let mut connection = BufReader::new(connect(&app).await);
    connection.get_mut().write_all(request_head("GET", "/health/live", "").as_bytes()).await.unwrap();
    assert_eq!(answer(&mut connection).await.status, 200);
    connection.get_mut().write_all(b"GET /health/li").await.unwrap();
    let response = answer(&mut connection).await;
    response.expect_error(408, "the request headers did not arrive within 1 s");
    assert!(closes(&mut connection).await);
}

#[tokio::test]
async fn headers_sent_a_byte_every_200_ms_get_408_and_the_connection_is_closed() {
    let app = TestApp::spawn_with(|settings| settings.header_read_timeout = Duration::from_secs(1)).await;
    let (reader, writer) = connect(&app).await.into_split();
    let started = Instant::now();
    let head = predict_head("Content-Type: image/png\r\nContent-Length: 254\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa\r\n");
    trickle(writer, head.into_bytes(), Duration::from_millis(200));
    let mut reader = BufReader::new(reader);
    let response = answer(&mut reader).await;
    response.expect_error(408, "the request headers did not arrive within 1 s");
    assert_eq!(response.header("connection"), Some("close"));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(closes(&mut reader).await, "the connection stays open after the 408");
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_gets_408_when_the_client_stalls() {
    let app = TestApp::spawn_with(|settings| {
        settings.body_read_timeout = Duration::from_secs(1);
        settings.request_timeout = Duration::from_secs(5);
    })
    .await;
    let mut connection = BufReader::new(connect(&app).await);
    let head = predict_head("Content-Type: image/png\r\nContent-Length: 1000\r\n");
    connection.get_mut().write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    connection.get_mut().write_all(&sample("digit-7.png")[..100]).await.unwrap();
    // The connection stays open, the other 900 bytes never come.
    let response = answer(&mut connection).await;
    response.expect_error(408, "the request body did not arrive within 1 s");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}

#[tokio::test]
async fn a_body_cut_short_by_a_half_close_gets_400() {
    let app = TestApp::spawn_with(|settings| {
        settings.body_read_timeout = Duration::from_secs(1);
        settings.request_timeout = Duration::from_secs(5);
    })
    .await;
    for content_type in ["image/png", "multipart/form-data; boundary=X"] {
        let mut connection = BufReader::new(connect(&app).await);
        let head = predict_head(&format!("Content-Type: {content_type}\r\nContent-Length: 1000\r\n"));
        connection.get_mut().write_all(head.as_bytes()).await.unwrap();
        let mut body = b"--X\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n".to_vec();
        body.extend(sample("digit-7.png"));
        connection.get_mut().write_all(&body[..100]).await.unwrap();
        connection.get_mut().shutdown().await.unwrap();
        // hyper fails the body's read at the end of the stream: a truncated body, refused.
        answer(&mut connection).await.expect_error(400, "read");
        assert!(closes(&mut connection).await, "{content_type}: the connection stays open");
    }
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}

#[tokio::test]
async fn a_body_longer_than_its_content_length_is_cut_there_and_the_rest_gets_no_5xx() {
    let app = TestApp::spawn_with(|settings| settings.header_read_timeout = Duration::from_secs(1)).await;
    let mut connection = BufReader::new(connect(&app).await);
    let head = predict_head("Content-Type: image/png\r\nContent-Length: 50\r\n");
    connection.get_mut().write_all(head.as_bytes()).await.unwrap();
    connection.get_mut().write_all(&sample("digit-7.png")).await.unwrap();
    // The first 50 bytes are a truncated PNG.
    answer(&mut connection).await.expect_error(400, "the image could not be decoded");
    // The other 204 read as the next request: whatever the server makes of them, not a 5xx.
    let mut later = Vec::new();
    while let Some(response) = tokio::time::timeout(PATIENCE, read_response(&mut connection)).await.expect("an end") {
        later.push(response.status);
    }
    assert!(later.iter().all(|status| (400..500).contains(status)), "{later:?}");
    // And the server answers new connections.
    for _ in 0..3 {
        assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
    }
    let mut connection = BufReader::new(connect(&app).await);
    let image = sample("digit-7.png");
    let head = predict_head(&format!("Content-Type: image/png\r\nContent-Length: {}\r\n", image.len()));
    connection.get_mut().write_all(head.as_bytes()).await.unwrap();
    connection.get_mut().write_all(&image).await.unwrap();
    let response = answer(&mut connection).await;
    assert_eq!(response.status, 200, "{response:?}");
}

#[tokio::test]
async fn requests_past_their_deadline_get_503_and_their_abandoned_images_do_not_delay_the_next() {
    let app = TestApp::spawn_with(|settings| {
        settings.request_timeout = Duration::from_millis(500);
        settings.body_read_timeout = Duration::from_millis(250);
        settings.preprocess_threads = 1;
        settings.max_images_per_request = 64;
    })
    .await;
    // The slowest sample to preprocess, some 14 ms: 64 of them take about twice the deadline.
    let photo = sample("photo-4-exif.jpg");
    // A client that lets its forms time out, one after another.
    for _ in 0..3 {
        let form = (0..64).fold(reqwest::multipart::Form::new(), |form, index| {
            form.part("image", reqwest::multipart::Part::bytes(photo.clone()).file_name(format!("photo-{index}.jpg")))
        });
        let started = Instant::now();
        let response = app.predict_form(form).await;
        let elapsed = started.elapsed();
        let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
        assert_eq!(retry_after.as_deref(), Some("1"), "{response:?}");
        expect_error(response, 503, "the request did not finish within 0.5 s").await;
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    }
    // Nobody waits for the abandoned photos: the next request is not queued behind them.
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}

#[tokio::test]
async fn with_both_connections_held_a_third_client_waits_until_one_closes() {
    let mut app = TestApp::spawn_with(|settings| settings.max_connections = 2).await;
    // Close the connection the start-up polling left in the pool: it holds one of the two.
    app.client = reqwest::Client::builder().timeout(PATIENCE).build().unwrap();
    let ask = request_head("GET", "/health/live", "");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut connection = BufReader::new(connect(&app).await);
        connection.get_mut().write_all(ask.as_bytes()).await.unwrap();
        // Served, so accepted and holding its place; then left idle, kept alive.
        assert_eq!(answer(&mut connection).await.status, 200);
        held.push(connection);
    }
    let third = reqwest::Client::builder().timeout(Duration::from_millis(1500)).build().unwrap();
    let waited = third.get(format!("{}/health/live", app.url)).send().await;
    assert!(waited.as_ref().is_err_and(reqwest::Error::is_timeout), "answered past the cap: {waited:?}");
    // Its abandoned connection closes with it.
    drop(third);
    drop(held.pop());
    let started = Instant::now();
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    // The connection still held was never cut.
    let mut connection = held.pop().unwrap();
    connection.get_mut().write_all(ask.as_bytes()).await.unwrap();
    assert_eq!(answer(&mut connection).await.status, 200);
}

#[tokio::test]
async fn a_flood_of_bad_requests_gets_4xx_while_good_ones_among_them_get_200() {
    let app = TestApp::spawn().await;
    let png = sample("digit-1.png");
    let requests = (0..250).map(|index| {
        let (app, png) = (&app, png.clone());
        async move {
            let (expected, response) = match index % 5 {
                0 => {
                    ((400, "not a supported image"), app.predict_multipart("image", "text.png", b"text".to_vec()).await)
                }
                1 => ((400, "empty"), app.predict_body(Some("image/png"), Vec::new()).await),
                2 => (
                    (400, "could not be decoded"),
                    app.predict_body(Some("image/png"), png[..png.len() / 2].to_vec()).await,
                ),
                3 => ((415, "cannot read an image"), app.predict_body(Some("text/plain"), png).await),
                _ => {
                    let digit = index / 5 % 10;
                    let name = format!("digit-{digit}.png");
                    let response = app.predict_multipart("image", &name, sample(&name)).await;
                    assert_eq!(response.status(), 200, "request {index}");
                    let body: max_mnist_api::types::PredictResponse = response.json().await.unwrap();
                    assert_eq!(body.predictions[0].prediction as usize, digit, "request {index}");
                    return;
                }
            };
            expect_error(response, expected.0, expected.1).await;
        }
    });
    tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(requests)).await.expect("all answered");
    assert_eq!(app.predict_sample("digit-7.png").await.0, 7);
}
