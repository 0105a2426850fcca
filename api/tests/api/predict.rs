//! Predictions on the committed samples.

use max_mnist_api::types::{ModelMetadataResponse, PredictResponse};

use crate::helpers::{TestApp, repository, sample};

#[tokio::test]
async fn predicts_the_ten_mnist_samples() {
    let app = TestApp::spawn().await;
    for digit in 0..10 {
        let (predicted, probability) = app.predict_sample(&format!("digit-{digit}.png")).await;
        assert_eq!(predicted, digit, "digit-{digit}.png");
        assert!(probability > 0.5 && probability <= 1.0, "digit-{digit}.png: {probability}");
    }
}

#[tokio::test]
async fn predicts_jpeg_rgb_and_rgba_samples() {
    let app = TestApp::spawn().await;
    for (name, digit) in [("digit-7.jpg", 7), ("digit-3-rgb.png", 3), ("digit-5-rgba.png", 5)] {
        assert_eq!(app.predict_sample(name).await.0, digit, "{name}");
    }
}

#[tokio::test]
async fn answers_with_all_ten_probabilities_summing_to_one() {
    let app = TestApp::spawn().await;
    let response = app.predict_multipart("image", "digit-2.png", sample("digit-2.png")).await;
    let body: PredictResponse = response.json().await.unwrap();
    let prediction = &body.predictions[0];
    assert_eq!(prediction.label, "2");
    assert_eq!(prediction.probabilities.len(), 10);
    assert!((prediction.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    assert_eq!(prediction.probabilities[2], prediction.probability);
}

#[tokio::test]
async fn accepts_the_file_field_older_max_clients_send() {
    let app = TestApp::spawn().await;
    let response = app.predict_multipart("file", "digit-4.png", sample("digit-4.png")).await;
    assert_eq!(response.status(), 200);
    let body: PredictResponse = response.json().await.unwrap();
    assert_eq!(body.predictions[0].prediction, 4);
}

#[tokio::test]
async fn concurrent_requests_each_get_their_own_answer() {
    let app = TestApp::spawn().await;
    let requests = (0..40u32).map(|index| {
        let app = &app;
        async move {
            let digit = index % 10;
            (digit, app.predict_sample(&format!("digit-{digit}.png")).await.0)
        }
    });
    for (sent, predicted) in futures::future::join_all(requests).await {
        assert_eq!(sent, predicted);
    }
}

#[tokio::test]
async fn reads_digits_as_users_send_them() {
    let app = TestApp::spawn().await;
    let samples = [
        ("photo-4-exif.jpg", 4),
        ("photo-8-exif.jpg", 8),
        ("scan-3.jpg", 3),
        ("canvas-2-transparent.png", 2),
        ("canvas-7.png", 7),
    ];
    for (name, digit) in samples {
        let (predicted, probability) = app.predict_sample(name).await;
        assert_eq!(predicted, digit, "{name}");
        assert!(probability > 0.5, "{name}: {probability}");
    }
}

#[tokio::test]
async fn shows_the_28_pixel_image_the_model_saw_when_asked() {
    let app = TestApp::spawn().await;
    let form = || {
        let part = reqwest::multipart::Part::bytes(sample("photo-4-exif.jpg")).file_name("photo.jpg");
        reqwest::multipart::Form::new().part("image", part)
    };
    let plain: PredictResponse = app
        .client
        .post(format!("{}/model/predict", app.url))
        .multipart(form())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plain.predictions[0].model_input, None);

    let url = format!("{}/model/predict?include_input=true", app.url);
    let body: PredictResponse = app.client.post(url).multipart(form()).send().await.unwrap().json().await.unwrap();
    let data_url = body.predictions[0].model_input.as_deref().expect("model_input is present");
    let encoded = data_url.strip_prefix("data:image/png;base64,").expect("a PNG data URL");
    let png = base64::Engine::decode(&base64::prelude::BASE64_STANDARD, encoded).unwrap();
    let seen = image::load_from_memory(&png).unwrap().to_luma8();
    assert_eq!(seen.dimensions(), (28, 28));
    // White ink on black, as in MNIST: the corners are black and some strokes are white.
    assert_eq!([seen[(0, 0)], seen[(27, 0)], seen[(0, 27)], seen[(27, 27)]].map(|pixel| pixel.0[0]), [0; 4]);
    assert_eq!(seen.pixels().map(|pixel| pixel.0[0]).max(), Some(255));
}

#[tokio::test]
async fn several_images_in_one_form_get_one_prediction_each_in_order() {
    let app = TestApp::spawn().await;
    let digits = [7, 2, 9, 0, 4, 1, 8, 3, 6, 5, 7, 7];
    let mut form = reqwest::multipart::Form::new();
    for (index, digit) in digits.iter().enumerate() {
        // Both field names, mixed: every image part counts, in the order sent.
        let field = if index % 4 == 3 { "file" } else { "image" };
        let part =
            reqwest::multipart::Part::bytes(sample(&format!("digit-{digit}.png"))).file_name(format!("{digit}.png"));
        form = form.part(field, part);
    }
    let form = form.part("image", reqwest::multipart::Part::bytes(sample("photo-8-exif.jpg")).file_name("photo.jpg"));
    let response = app.predict_form(form).await;
    assert_eq!(response.status(), 200);
    let body: PredictResponse = response.json().await.unwrap();
    let predicted: Vec<u32> = body.predictions.iter().map(|prediction| prediction.prediction).collect();
    let mut expected = digits.to_vec();
    expected.push(8);
    assert_eq!(predicted, expected);
}

#[tokio::test]
async fn a_raw_image_body_gets_the_same_answer_as_the_form() {
    let app = TestApp::spawn().await;
    let bytes = sample("photo-4-exif.jpg");
    let form: PredictResponse = app.predict_multipart("image", "photo.jpg", bytes.clone()).await.json().await.unwrap();
    for content_type in [Some("image/jpeg"), Some("image/png"), Some("application/octet-stream"), None] {
        let response = app.predict_body(content_type, bytes.clone()).await;
        assert_eq!(response.status(), 200, "{content_type:?}");
        let raw: PredictResponse = response.json().await.unwrap();
        // The same answer, to float rounding (a batch of one and a larger batch round differently).
        let (raw, form) = (&raw.predictions[0], &form.predictions[0]);
        assert_eq!(raw.prediction, form.prediction, "{content_type:?}");
        for (left, right) in raw.probabilities.iter().zip(&form.probabilities) {
            assert!((left - right).abs() < 1e-5, "{content_type:?}: {left} against {right}");
        }
    }
}

#[tokio::test]
async fn digits_are_in_domain_and_clothes_are_not_by_the_models_own_threshold() {
    let app = TestApp::spawn().await;
    let metadata: ModelMetadataResponse =
        app.client.get(format!("{}/model/metadata", app.url)).send().await.unwrap().json().await.unwrap();
    let calibration = &metadata.calibration;
    let threshold = calibration.domain_threshold.expect("the committed model has a domain threshold");
    assert!(calibration.temperature != 1.0, "fitted to digits as users send them: {calibration:?}");
    assert!(calibration.fitted_on.contains("validation"), "{calibration:?}");
    let samples = std::fs::read_dir(repository().join("samples")).unwrap();
    let mut names: Vec<String> = samples.map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    let (mut clothes_flagged, mut digits_flagged, mut digits) = (Vec::new(), Vec::new(), 0);
    for name in &names {
        let prediction = app.prediction_of(name).await;
        assert_eq!(prediction.in_domain, Some(prediction.domain_score >= threshold), "{name}: {prediction:?}");
        let flagged = if name.starts_with("fashion-") {
            &mut clothes_flagged
        } else {
            digits += 1;
            &mut digits_flagged
        };
        if prediction.in_domain == Some(false) {
            flagged.push(name.as_str());
        }
    }
    // The threshold passes 99% of digits: of the 18 digit samples, at most one may be flagged
    // (the committed model flags digit-3.png, an MNIST test digit it scores just below).
    assert_eq!(digits, 18);
    assert!(digits_flagged.len() <= 1, "{digits_flagged:?}");
    // The model learnt clothes as no digit (outlier exposure): every clothes sample is flagged.
    assert_eq!(clothes_flagged.len(), names.len() - digits, "{clothes_flagged:?}");
}
