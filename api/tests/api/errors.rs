//! Bad input gets a 4xx with a JSON body saying what was wrong, and the server stays up.

use crate::helpers::{TestApp, expect_error, sample};

/// A small PNG whose header declares `width × height` grayscale pixels: the shape of a
/// decompression bomb, whose few bytes would decode to gigabytes.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(&b"IHDR"[..], ihdr), (b"IDAT", vec![0x78, 0x9c, 0x03, 0x00]), (b"IEND", Vec::new())] {
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(&data);
        png.extend((data.len() as u32).to_be_bytes());
        png.extend(kind);
        png.extend(&data);
        png.extend(crc.sum().to_be_bytes());
    }
    png
}

#[tokio::test]
async fn bad_images_get_400_and_the_server_stays_up() {
    let app = TestApp::spawn().await;
    let png = sample("digit-1.png");
    expect_error(app.predict_multipart("image", "empty.png", Vec::new()).await, 400, "empty").await;
    expect_error(app.predict_multipart("image", "half.png", png[..png.len() / 2].to_vec()).await, 400, "decoded").await;
    expect_error(app.predict_multipart("image", "text.png", b"just text".to_vec()).await, 400, "not a supported image")
        .await;
    expect_error(app.predict_multipart("other", "digit-1.png", png.clone()).await, 400, "`image`").await;
    let mut blank_canvas = std::io::Cursor::new(Vec::new());
    image::RgbaImage::new(280, 280).write_to(&mut blank_canvas, image::ImageFormat::Png).unwrap();
    expect_error(app.predict_multipart("image", "blank.png", blank_canvas.into_inner()).await, 400, "no digit found")
        .await;
    assert_eq!(app.predict_sample("digit-1.png").await.0, 1);
}

#[tokio::test]
async fn a_huge_declared_image_gets_413_before_decoding() {
    let app = TestApp::spawn().await;
    let response = app.predict_multipart("image", "huge.png", png_claiming(50_000, 50_000)).await;
    expect_error(response, 413, "50000x50000").await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_with_or_without_content_length() {
    let app = TestApp::spawn_with(|settings| settings.max_body_bytes = 64 * 1024).await;
    let big = vec![7u8; 200 * 1024];
    expect_error(app.predict_multipart("image", "big.png", big.clone()).await, 413, "over the limit").await;

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big.chunks(8 * 1024).map(|chunk| Ok(chunk.to_vec())).collect();
    let stream = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = app.predict_body(Some("multipart/form-data; boundary=X"), stream).await;
    expect_error(response, 413, "over the limit").await;
    assert_eq!(app.predict_sample("digit-8.png").await.0, 8);
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_get_json() {
    let app = TestApp::spawn().await;
    expect_error(app.client.get(format!("{}/no/such/path", app.url)).send().await.unwrap(), 404, "no such route").await;
    expect_error(app.client.get(format!("{}/model/predict", app.url)).send().await.unwrap(), 405, "not allowed").await;
    expect_error(app.client.delete(format!("{}/model/metadata", app.url)).send().await.unwrap(), 405, "not allowed")
        .await;
    let json = app.predict_body(Some("application/json"), "{}").await;
    expect_error(json, 415, "cannot read an image").await;
    let malformed =
        app.predict_body(Some("multipart/form-data; boundary=X"), "--X\r\nthis is not a part header\r\n").await;
    expect_error(malformed, 400, "").await;
}

#[tokio::test]
async fn a_bad_part_among_several_is_named_in_the_error() {
    let app = TestApp::spawn().await;
    let form = reqwest::multipart::Form::new()
        .part("image", reqwest::multipart::Part::bytes(sample("digit-3.png")).file_name("three.png"))
        .part("image", reqwest::multipart::Part::bytes(b"not an image".to_vec()).file_name("notes.txt"))
        .part("image", reqwest::multipart::Part::bytes(sample("digit-7.png")).file_name("seven.png"));
    let response = app.predict_form(form).await;
    expect_error(response, 400, "part 2 (image, \"notes.txt\"): the file is not a supported image").await;
    assert_eq!(app.predict_sample("digit-3.png").await.0, 3);
}

/// A multipart body of `parts` one-byte parts named `image`.
fn many_parts(parts: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for _ in 0..parts {
        body.extend(b"--X\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\nx\r\n");
    }
    body.extend(b"--X--\r\n");
    body
}

#[tokio::test]
async fn more_parts_than_the_cap_get_413_and_the_cap_itself_is_fine() {
    let app = TestApp::spawn_with(|settings| settings.max_images_per_request = 3).await;
    let form = Some("multipart/form-data; boundary=X");
    expect_error(app.predict_body(form, many_parts(4)).await, 413, "at most 3 images per request").await;
    // Three parts pass the cap; their one-byte images are then refused one by one.
    expect_error(app.predict_body(form, many_parts(3)).await, 400, "part 1 (image, \"a.png\")").await;

    // Ten thousand parts (within the body limit) with the default cap: refused at the cap,
    // without reading the rest.
    let app = TestApp::spawn().await;
    let response = app.predict_body(form, many_parts(10_000)).await;
    expect_error(response, 413, "parts in one request").await;
    assert_eq!(app.predict_sample("digit-9.png").await.0, 9);
}

#[tokio::test]
async fn bodies_that_are_neither_forms_nor_images_get_415() {
    let app = TestApp::spawn().await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let response = app.predict_body(Some(content_type), sample("digit-2.png")).await;
        expect_error(response, 415, "Content-Type image/png").await;
    }
}
