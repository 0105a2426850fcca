//! The drawing page at `/app`, end to end: headless Chromium, driven over WebDriver by
//! chromedriver, draws digits with real pointer strokes on the page's canvas, and the page asks
//! the real server. Needs Debian's `chromium` and `chromium-driver` (`make test-tools`).
//!
//! `APP_SCREENSHOT=docs/app-screenshot.png` also saves a screenshot of the page with a drawn
//! digit, and `APP_MODELS_SCREENSHOT=docs/app-models-screenshot.png` one with the clothing
//! model's answer to an upload (a relative path is taken from the repository root).

use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction, TouchActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::helpers::{TestApp, repository};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The longest wait for chromedriver to answer or for the page to settle.
const WAIT: Duration = Duration::from_secs(15);
/// The longest a whole browser test may run.
const TEST_LIMIT: Duration = Duration::from_secs(50);
/// The default model's predict request, as the page has always made it.
const DEFAULT_PREDICT: &str = "/model/predict?include_input=true";
/// The clothing model's predict request.
const FASHION_PREDICT: &str = "/models/fashion-mnist/predict?include_input=true";
/// Fashion-MNIST's classes, in output order.
const CLOTHING: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

#[tokio::test]
async fn page_and_assets_are_embedded_with_their_types_and_security_headers() {
    let app = TestApp::spawn().await;
    for (path, content_type) in [
        ("/app", "text/html"),
        ("/app/", "text/html"),
        ("/app/app.js", "text/javascript"),
        ("/app/app.css", "text/css"),
    ] {
        let response = app.client.get(format!("{}{path}", app.url)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
        assert!(header("content-type").starts_with(content_type), "{path}: {}", header("content-type"));
        assert!(header("content-security-policy").starts_with("default-src 'self'"), "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("http://") && !body.contains("https://"), "{path} names no other site");
    }
    let spec: serde_json::Value =
        app.client.get(format!("{}/swagger.json", app.url)).send().await.unwrap().json().await.unwrap();
    assert!(spec["paths"].as_object().unwrap().keys().all(|path| !path.starts_with("/app")), "the page is not API");
    assert!(spec["info"]["description"].as_str().unwrap().contains("](/app)"), "the Swagger UI links to the page");
}

#[tokio::test]
async fn draws_digits_and_shows_the_prediction_the_chart_and_the_model_input() {
    let app = TestApp::spawn().await;
    with_browser(&app, Screen::Desktop, "/app", async |page: &Page| {
        page.expect_empty("before any drawing").await;

        for (digit, strokes) in [(1, one()), (7, seven()), (0, zero())] {
            let asked = page.draw(&strokes).await;
            page.expect_prediction(asked, digit, strokes.len()).await;
            if digit == 7 {
                page.save_screenshot_if_asked("APP_SCREENSHOT").await;
            }
            page.click("#clear").await;
            page.expect_empty(&format!("Clear after the {digit}")).await;
        }

        // A four in two strokes: Ctrl+Z takes the second back, the Undo button the first.
        let asked = page.draw(&four()).await;
        page.expect_prediction(asked, 4, 2).await;
        let asked = page.press_on_pad(&(Key::Control + "z")).await;
        let after_undo = page.answer_to(asked).await;
        assert_eq!((after_undo.strokes, after_undo.bars, after_undo.undo_enabled), (1, 10, true), "{after_undo:?}");
        page.click("#undo").await;
        page.expect_empty("Undo of the last stroke").await;

        // Escape clears too.
        let asked = page.draw(&one()).await;
        page.expect_prediction(asked, 1, 1).await;
        page.press_on_pad(&Key::Escape).await;
        page.expect_empty("Escape").await;

        // An uploaded file is sent as it is.
        let asked = page.upload(&repository().join("samples/digit-7.png")).await;
        page.expect_prediction(asked, 7, 0).await;
        page.click("#clear").await;
        let predicts = page.models().await.predicts;
        assert!(!predicts.is_empty() && predicts.iter().all(|url| url == DEFAULT_PREDICT), "{predicts:?}");

        // An image with no ink: the server's 400 is shown as a hint, not as a crash.
        let scratch = tempfile::tempdir().unwrap();
        let blank = scratch.path().join("blank.png");
        image::GrayImage::from_pixel(56, 56, image::Luma([255])).save(&blank).unwrap();
        let asked = page.upload(&blank).await;
        let state = page.answer_to(asked).await;
        assert_eq!(
            (state.prediction.as_str(), state.winner, state.model_input.as_deref()),
            ("?", None, None),
            "{state:?}"
        );
        assert!(state.status.to_lowercase().contains("digit"), "{state:?}");
    })
    .await;
}

/// A 12 MP phone photo of a 7 on noisy paper, stored sideways with EXIF orientation 6 as a
/// phone held upright stores it.
fn sideways_phone_photo() -> Vec<u8> {
    let digit = image::open(repository().join("samples/digit-7.png")).unwrap().to_luma8();
    let ink = image::imageops::resize(&digit, 1400, 1400, image::imageops::FilterType::Triangle);
    let upright = image::RgbImage::from_fn(4032, 3024, |x, y| {
        let grain = ((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 9) as i32 - 4;
        let on_ink = x.checked_sub(1300).zip(y.checked_sub(800)).and_then(|(dx, dy)| ink.get_pixel_checked(dx, dy));
        let darkness = on_ink.map_or(0, |pixel| i32::from(pixel[0]) * 180 / 255);
        let value = (212 + grain - darkness).clamp(0, 255) as u8;
        image::Rgb([value, value, value.saturating_sub(6)])
    });
    max_mnist_test_support::jpeg_with_orientation_6(&image::imageops::rotate270(&upright), 95)
}

#[tokio::test]
async fn a_phone_photo_is_shrunk_upright_before_it_is_sent_and_a_file_too_big_is_explained() {
    const LIMIT: u64 = 2 << 20;
    let scratch = tempfile::tempdir().unwrap();
    let photo = scratch.path().join("IMG_0007.jpg");
    std::fs::write(&photo, sideways_phone_photo()).unwrap();
    let original = std::fs::metadata(&photo).unwrap().len();
    assert!(original > LIMIT, "the photo ({original} bytes) is over the server's body limit, as sent");
    // A file the browser cannot read (a HEIC, say), as large: it could only be sent as it is.
    let unreadable = scratch.path().join("IMG_0008.heic");
    std::fs::write(&unreadable, (0..original).map(|index| (index * 7919 % 251) as u8).collect::<Vec<u8>>()).unwrap();

    let app = TestApp::spawn_with(|settings| settings.max_body_bytes = LIMIT).await;
    with_browser(&app, Screen::Phone, "/app", async |page: &Page| {
        let asked = page.upload(&photo).await;
        page.expect_prediction(asked, 7, 0).await;
        let [sent, progress]: [String; 2] = page
            .run(r#"const upload = document.getElementById("upload"); return [upload.dataset.sent, upload.dataset.progress];"#)
            .await;
        let sent: Vec<&str> = sent.split(' ').collect();
        let [how, bytes, pixels] = sent[..] else { panic!("{sent:?}") };
        let sent_bytes: u64 = bytes.parse().unwrap();
        assert_eq!(how, "shrunk", "{sent:?}");
        assert!(sent_bytes < LIMIT && sent_bytes < original / 2, "{sent_bytes} bytes sent of {original}");
        // Upright: the photo is landscape as seen, though stored portrait.
        assert_eq!(pixels, "2048x1536", "{sent:?}");
        assert_eq!(progress, "100", "the upload's progress was shown to the end");

        page.upload(&unreadable).await;
        let state = page.wait_for("the too-big file explained", |state| state.status.contains("not sent")).await;
        assert!(state.status.contains("IMG_0008.heic") && state.status.contains("2.0 MB"), "{state:?}");
        assert_eq!(state.prediction, "7", "the last answer stays: {state:?}");
    })
    .await;
}

#[tokio::test]
async fn a_picture_of_no_digit_is_said_not_to_look_like_one_and_a_digit_after_it_is_read() {
    let app = TestApp::spawn().await;
    with_browser(&app, Screen::Desktop, "/app", async |page: &Page| {
        let asked = page.upload(&repository().join("samples/fashion-bag.png")).await;
        let state = page.answer_to(asked).await;
        assert_eq!(state.prediction, "?", "no digit is claimed: {state:?}");
        assert!(state.status.contains("This doesn't look like a digit."), "{state:?}");
        assert_eq!(state.bars, 10, "the probabilities are still shown: {state:?}");

        let asked = page.upload(&repository().join("samples/photo-4-exif.jpg")).await;
        page.expect_prediction(asked, 4, 0).await;
        let state = page.state().await;
        assert!(!state.status.contains("look like"), "the warning goes with the picture: {state:?}");
    })
    .await;
}

#[tokio::test]
async fn fits_a_phone_and_draws_with_a_finger() {
    let app = TestApp::spawn().await;
    with_browser(&app, Screen::Phone, "/app", async |page: &Page| {
        let layout = page.layout().await;
        assert!(layout.scroll_width <= layout.viewport_width, "no horizontal scroll: {layout:?}");
        let [left, top, right, bottom] = layout.pad;
        assert!(
            left >= 0.0 && top >= 0.0 && right <= layout.viewport_width && bottom <= layout.viewport_height,
            "the whole pad is on screen: {layout:?}"
        );
        assert!(right - left >= 0.8 * layout.viewport_width, "the pad uses the width: {layout:?}");
        assert!(layout.prediction_bottom <= layout.viewport_height, "the answer shows while drawing: {layout:?}");
        let asked = page.draw(&seven()).await;
        page.expect_prediction(asked, 7, 1).await;
    })
    .await;
}

#[tokio::test]
async fn the_picker_switches_between_digits_and_clothing_and_keeps_the_choice_in_the_address() {
    let app = TestApp::spawn().await;
    with_browser(&app, Screen::Desktop, "/app", async |page: &Page| {
        let digits = page.models().await;
        assert_eq!(digits.chosen, "mnist", "{digits:?}");
        let titles = [("mnist", "Digits (MNIST)", true), ("fashion-mnist", "Clothing (Fashion-MNIST)", false)];
        assert_eq!(digits.choices, titles.map(|(name, title, checked)| (name.into(), title.into(), checked)));
        assert_eq!((digits.address.as_str(), digits.task.as_str()), ("/app", "draw a digit"), "{digits:?}");
        assert_eq!(digits.labels, (0..10).map(|digit| digit.to_string()).collect::<Vec<_>>());
        assert_eq!(digits.metadata_link, "/model/metadata");

        // The clothing model, chosen: its labels, its prompt, its address.
        page.choose_model("fashion-mnist").await;
        page.expect_clothing_page("choosing the clothing model").await;

        // Its answer to an uploaded photo of trousers comes from its own route.
        let asked = page.upload(&repository().join("samples/fashion-trouser.png")).await;
        page.expect_label(asked, 1, "Trouser").await;
        assert_eq!(page.models().await.predicts, [FASHION_PREDICT]);
        page.save_screenshot_if_asked("APP_MODELS_SCREENSHOT").await;

        // Back to digits: the bare address, the digit page, the MAX route. What is on the paper
        // is asked again of each model chosen.
        page.click("#clear").await;
        page.choose_model("mnist").await;
        let back = page.models().await;
        assert_eq!((back.address.as_str(), back.task.as_str()), ("/app", "draw a digit"), "{back:?}");
        assert_eq!(back.labels, digits.labels);
        let asked = page.upload(&repository().join("samples/digit-7.png")).await;
        page.expect_prediction(asked, 7, 0).await;
        let asked = page.state().await.answer;
        page.choose_model("fashion-mnist").await;
        let state = page.answer_to(asked).await;
        assert_eq!(state.prediction, "?", "the clothing model claims no garment for a digit: {state:?}");
        assert!(state.status.contains("This doesn't look like a picture of clothing."), "{state:?}");
        assert_eq!(state.bars, CLOTHING.len(), "its probabilities are still shown: {state:?}");
        let asked = state.answer;
        page.choose_model("mnist").await;
        page.expect_prediction(asked, 7, 0).await;
        assert_eq!(page.models().await.predicts, [FASHION_PREDICT, DEFAULT_PREDICT, FASHION_PREDICT, DEFAULT_PREDICT]);
    })
    .await;
}

#[tokio::test]
async fn a_link_with_a_model_opens_that_model() {
    let app = TestApp::spawn().await;
    with_browser(&app, Screen::Desktop, "/app?model=fashion-mnist", async |page: &Page| {
        page.expect_clothing_page("opening the clothing model").await;
        let asked = page.upload(&repository().join("samples/fashion-ankle-boot.png")).await;
        page.expect_label(asked, 9, "Ankle boot").await;

        // A name the server does not serve opens the default model, and says so.
        page.open("/app?model=no-such-model").await;
        let fallback = page.models().await;
        assert_eq!((fallback.chosen.as_str(), fallback.task.as_str()), ("mnist", "draw a digit"), "{fallback:?}");
        let status = page.state().await.status;
        assert!(status.contains("no-such-model") && status.contains("Digits (MNIST)"), "{status}");
    })
    .await;
}

// --- Digits as a person draws them: strokes of points on the pad, from (0, 0) at its top left
// to (1, 1) at its bottom right, each about two thirds of the pad high.

type Strokes = Vec<Vec<(f64, f64)>>;

fn one() -> Strokes {
    vec![polyline(&[(0.53, 0.18), (0.47, 0.82)])]
}

fn seven() -> Strokes {
    vec![polyline(&[(0.28, 0.22), (0.72, 0.22), (0.45, 0.82)])]
}

fn zero() -> Strokes {
    let points = (0..=48).map(|step| {
        let angle = f64::from(step) / 48.0 * std::f64::consts::TAU;
        (0.5 + 0.21 * angle.sin(), 0.5 - 0.31 * angle.cos())
    });
    vec![points.collect()]
}

fn four() -> Strokes {
    vec![polyline(&[(0.34, 0.18), (0.29, 0.57), (0.74, 0.57)]), polyline(&[(0.63, 0.24), (0.63, 0.84)])]
}

/// The corners joined by points at most 0.05 apart, so that a stroke is many pointer moves.
fn polyline(corners: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut points = vec![corners[0]];
    for pair in corners.windows(2) {
        let [(x0, y0), (x1, y1)] = [pair[0], pair[1]];
        let steps = ((x1 - x0).hypot(y1 - y0) / 0.05).ceil();
        points.extend((1..=steps as u32).map(|step| {
            let t = f64::from(step) / steps;
            (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
        }));
    }
    points
}

// --- The browser ---------------------------------------------------------------------------

/// The screens the page is tried on.
#[derive(Clone, Copy)]
enum Screen {
    /// A desktop window, drawn on with a mouse.
    Desktop,
    /// A 360×640 phone with a touch screen, drawn on with a finger.
    Phone,
}

/// Opens `path` (the page, with its query) of `app` in a fresh headless Chromium on `screen`,
/// waits until the page knows the models, runs `test` on it, all within [`TEST_LIMIT`], and
/// closes the browser whether the test passed or not.
async fn with_browser(app: &TestApp, screen: Screen, path: &str, test: impl AsyncFnOnce(&Page)) {
    let driver = ChromeDriver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let client = driver.open(screen, profile.path()).await;
    let page = Page { client, screen, url: app.url.clone() };
    let outcome = AssertUnwindSafe(async {
        let run = async {
            page.open(path).await;
            test(&page).await;
        };
        tokio::time::timeout(TEST_LIMIT, run).await.expect("the browser test ran too long");
    })
    .catch_unwind()
    .await;
    // Ends the session, which closes Chromium; chromedriver itself is killed when dropped.
    let _ = page.client.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A chromedriver process on a free local port, killed when dropped.
struct ChromeDriver {
    process: Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "{CHROMEDRIVER} or {CHROMIUM} is missing: run `make test-tools`, which installs Debian's \
             chromium and chromium-driver"
        );
        // The free port is only free until chromedriver binds it; if another test's server
        // takes it first, chromedriver exits and is started again on another.
        let client = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let process = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| panic!("cannot start {CHROMEDRIVER}: {error}"));
            let mut driver = ChromeDriver { process, url: format!("http://127.0.0.1:{port}") };
            while driver.process.try_wait().is_ok_and(|exit| exit.is_none()) {
                let status = client.get(format!("{}/status", driver.url)).send().await;
                if status.is_ok_and(|response| response.status().is_success()) {
                    return driver;
                }
                assert!(Instant::now() < deadline, "{CHROMEDRIVER} did not answer on {} within {WAIT:?}", driver.url);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(Instant::now() < deadline, "{CHROMEDRIVER} kept exiting at start for {WAIT:?}");
        }
    }

    /// A new Chromium session, its profile in `profile`. The flags keep Chromium from reaching
    /// for the network on its own (the test machines have none).
    async fn open(&self, screen: Screen, profile: &Path) -> Client {
        let window = match screen {
            Screen::Desktop => "--window-size=1000,900",
            Screen::Phone => "--window-size=360,640",
        };
        let mut options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", format!("--user-data-dir={}", profile.display()), window,
            ],
        });
        if let Screen::Phone = screen {
            options["mobileEmulation"] =
                json!({"deviceMetrics": {"width": 360, "height": 640, "pixelRatio": 3.0, "touch": true}});
        }
        let capabilities = json!({"goog:chromeOptions": options});
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        ClientBuilder::rustls()
            .expect("the WebDriver client is set up")
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|error| panic!("chromedriver could not start {CHROMIUM}: {error}"))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The `/app` page open in a browser.
struct Page {
    client: Client,
    screen: Screen,
    /// The server's URL.
    url: String,
}

/// What the page shows.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageState {
    /// Whether a prediction is asked for and not shown yet.
    busy: bool,
    /// The number of the latest answer to a finished drawing (stroke, undo or upload) that
    /// was shown: requests count up from 1; 0 for none yet.
    answer: u64,
    /// The big digit (`–` before any drawing, `?` when the server found none).
    prediction: String,
    /// The status line.
    status: String,
    /// Bars in the chart.
    bars: usize,
    /// The highlighted bar.
    winner: Option<usize>,
    /// The `src` of the shown model input.
    model_input: Option<String>,
    /// Strokes on the pad.
    strokes: usize,
    undo_enabled: bool,
    clear_enabled: bool,
}

impl PageState {
    /// Whether the page shows nothing drawn and no answer.
    fn is_empty(&self) -> bool {
        let PageState {
            busy,
            answer: _,
            prediction,
            status,
            bars,
            winner,
            model_input,
            strokes,
            undo_enabled,
            clear_enabled,
        } = self;
        (!busy && prediction == "–" && status.is_empty() && *bars == 10 && winner.is_none())
            && (model_input.is_none() && *strokes == 0 && !undo_enabled && !clear_enabled)
    }
}

/// The model picker, and what the page says and asks of the chosen model.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModelView {
    /// The chosen model's name (empty until the page knows the models).
    chosen: String,
    /// The picker's choices: each model's name, its title and whether it is checked.
    choices: Vec<(String, String, bool)>,
    /// The page's address, from its path on.
    address: String,
    /// What the heading asks for: `draw a digit`.
    task: String,
    /// Where the "Model metadata" link goes.
    metadata_link: String,
    /// The class names under (or beside) the chart's bars, in order.
    labels: Vec<String>,
    /// The predict requests the page has made, from their path on.
    predicts: Vec<String>,
}

/// Where things are on the phone's screen, in CSS pixels.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layout {
    scroll_width: f64,
    viewport_width: f64,
    viewport_height: f64,
    /// Left, top, right, bottom of the pad.
    pad: [f64; 4],
    /// Bottom of the predicted digit.
    prediction_bottom: f64,
}

impl Page {
    /// What the page shows now.
    async fn state(&self) -> PageState {
        self.run(
            r##"
                const bars = [...document.querySelectorAll("#chart .bar")];
                const winner = bars.findIndex((bar) => bar.classList.contains("winner"));
                const result = document.getElementById("result");
                const input = document.getElementById("model-input");
                return {
                    busy: result.getAttribute("aria-busy") !== "false",
                    answer: Number(result.dataset.answer),
                    prediction: document.getElementById("prediction").textContent,
                    status: document.getElementById("status").textContent,
                    bars: bars.length,
                    winner: winner < 0 ? null : winner,
                    modelInput: input.hidden ? null : input.getAttribute("src"),
                    strokes: Number(document.getElementById("pad").dataset.strokes),
                    undoEnabled: !document.getElementById("undo").disabled,
                    clearEnabled: !document.getElementById("clear").disabled,
                };
                "##,
        )
        .await
    }

    /// The picker and what the page says about the chosen model.
    async fn models(&self) -> ModelView {
        self.run(
            r##"
                const choices = [...document.querySelectorAll("#models input")].map((radio) =>
                    [radio.value, radio.parentElement.querySelector(".long").textContent, radio.checked]);
                const predicts = performance.getEntriesByType("resource").map((entry) => new URL(entry.name))
                    .filter((url) => url.pathname.endsWith("/predict")).map((url) => url.pathname + url.search);
                return {
                    chosen: document.getElementById("models").dataset.model ?? "",
                    choices,
                    address: location.pathname + location.search,
                    task: document.getElementById("task").textContent,
                    metadataLink: document.getElementById("metadata-link").getAttribute("href"),
                    labels: [...document.querySelectorAll("#chart .bar .name")].map((name) => name.textContent),
                    predicts,
                };
                "##,
        )
        .await
    }

    /// Opens `path` (the page, with its query) and waits until it knows the models.
    async fn open(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.url)).await.unwrap();
        self.wait_for_model(&format!("the models of {path}"), |_| true).await;
    }

    /// Waits until the page has chosen a model and `ready` passes, and returns what it shows.
    async fn wait_for_model(&self, what: &str, ready: impl Fn(&ModelView) -> bool) -> ModelView {
        let deadline = Instant::now() + WAIT;
        loop {
            let models = self.models().await;
            if !models.chosen.is_empty() && ready(&models) {
                return models;
            }
            assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}: {models:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Chooses the model called `name` in the picker, and waits until the page is its page.
    async fn choose_model(&self, name: &str) {
        // The label: the radio button itself is transparent (over the pill that is seen).
        self.click(&format!("#models label:has(> input[value='{name}'])")).await;
        let models = self.wait_for_model(&format!("the page of {name}"), |models| models.chosen == name).await;
        let checked: Vec<_> = models.choices.iter().filter(|(_, _, checked)| *checked).map(|(name, ..)| name).collect();
        assert_eq!(checked, [name], "{models:?}");
    }

    /// Waits for the page to show nothing drawn and no answer (`after` what), and checks that
    /// it is the clothing model's: its address, its radio checked, its ten labels, its prompt to
    /// upload and its metadata.
    async fn expect_clothing_page(&self, after: &str) {
        self.expect_empty(after).await;
        let clothing = self.models().await;
        assert_eq!(clothing.chosen, "fashion-mnist", "{clothing:?}");
        assert_eq!(clothing.address, "/app?model=fashion-mnist", "{clothing:?}");
        let checked: Vec<_> = clothing.choices.iter().map(|(_, _, checked)| *checked).collect();
        assert_eq!(checked, [false, true], "{clothing:?}");
        assert_eq!(clothing.labels, CLOTHING, "{clothing:?}");
        assert_eq!(clothing.task, "upload a picture of clothing", "{clothing:?}");
        assert_eq!(clothing.metadata_link, "/models/fashion-mnist/metadata", "{clothing:?}");
    }

    /// Waits until the page's state passes `ready`, and returns it.
    async fn wait_for(&self, what: &str, ready: impl Fn(&PageState) -> bool) -> PageState {
        let deadline = Instant::now() + WAIT;
        loop {
            let state = self.state().await;
            if ready(&state) {
                return state;
            }
            assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}: {state:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The page once it shows the answer to a request made after the answer `asked` (what an
    /// action returned), with nothing more pending.
    async fn answer_to(&self, asked: u64) -> PageState {
        self.wait_for("the answer", |state| state.answer > asked && !state.busy).await
    }

    /// Waits for the answer to a drawing of `strokes` strokes (made after the answer `asked`)
    /// and checks that it reads `digit`, in the big digit and the chart, with the model's input
    /// shown.
    async fn expect_prediction(&self, asked: u64, digit: usize, strokes: usize) {
        let state = self.answer_to(asked).await;
        assert_eq!(state.prediction, digit.to_string(), "{state:?}");
        assert_eq!((state.bars, state.winner, state.strokes), (10, Some(digit), strokes), "{state:?}");
        let model_input = state.model_input.as_deref().unwrap_or_default();
        assert!(model_input.starts_with("data:image/png;base64,"), "the model input is shown: {state:?}");
        assert!(state.status.contains(&digit.to_string()), "the answer is announced: {state:?}");
    }

    /// Waits for the answer to an upload (made after the answer `asked`) and checks that it
    /// reads `label`, class `index`, in the big text, the chart and the spoken status, with the
    /// model's input shown.
    async fn expect_label(&self, asked: u64, index: usize, label: &str) {
        let state = self.answer_to(asked).await;
        assert_eq!((state.prediction.as_str(), state.bars, state.winner), (label, 10, Some(index)), "{state:?}");
        let model_input = state.model_input.as_deref().unwrap_or_default();
        assert!(model_input.starts_with("data:image/png;base64,"), "the model input is shown: {state:?}");
        assert!(state.status.starts_with(&format!("Reads {label}, ")), "the answer is announced: {state:?}");
    }

    /// Waits for the page to show nothing drawn and no answer.
    async fn expect_empty(&self, after: &str) {
        self.wait_for(&format!("an empty page ({after})"), PageState::is_empty).await;
    }

    async fn layout(&self) -> Layout {
        self.run(
            r#"
                const pad = document.getElementById("pad").getBoundingClientRect();
                return {
                    scrollWidth: document.documentElement.scrollWidth,
                    viewportWidth: window.innerWidth,
                    viewportHeight: window.innerHeight,
                    pad: [pad.left, pad.top, pad.right, pad.bottom],
                    predictionBottom: document.getElementById("prediction").getBoundingClientRect().bottom,
                };
                "#,
        )
        .await
    }

    /// Draws `strokes` on the pad with the screen's pointer: the mouse on a desktop, a finger
    /// on a phone. Returns the answer shown before.
    async fn draw(&self, strokes: &Strokes) -> u64 {
        let asked = self.state().await.answer;
        let [left, top, width, height]: [f64; 4] = self
            .run(
                r#"
                const pad = document.getElementById("pad");
                const box = pad.getBoundingClientRect();
                return [box.left + pad.clientLeft, box.top + pad.clientTop, pad.clientWidth, pad.clientHeight];
                "#,
            )
            .await;
        let to_screen = |(x, y): (f64, f64)| (left + x * width, top + y * height);
        match self.screen {
            Screen::Desktop => {
                let mouse = strokes_with(MouseActions::new("mouse".into()), strokes, to_screen);
                self.client.perform_actions(mouse).await.unwrap();
            }
            Screen::Phone => {
                let finger = strokes_with(TouchActions::new("finger".into()), strokes, to_screen);
                self.client.perform_actions(finger).await.unwrap();
            }
        }
        asked
    }

    async fn click(&self, selector: &str) {
        self.client.find(Locator::Css(selector)).await.unwrap().click().await.unwrap();
    }

    /// Types `keys` with the pad focused. Returns the answer shown before.
    async fn press_on_pad(&self, keys: &str) -> u64 {
        let asked = self.state().await.answer;
        self.client.find(Locator::Id("pad")).await.unwrap().send_keys(keys).await.unwrap();
        asked
    }

    /// Chooses `file` in the upload control. Returns the answer shown before.
    async fn upload(&self, file: &Path) -> u64 {
        let asked = self.state().await.answer;
        let input = self.client.find(Locator::Id("upload")).await.unwrap();
        // chromedriver takes only canonical paths.
        input.send_keys(&file.canonicalize().unwrap().display().to_string()).await.unwrap();
        asked
    }

    /// With the environment variable `variable` set, saves a PNG of the page there, once the
    /// chart has settled.
    async fn save_screenshot_if_asked(&self, variable: &str) {
        let Some(path) = std::env::var_os(variable) else {
            return;
        };
        let path: PathBuf = repository().join(path);
        // The bars grow in 0.15 s.
        tokio::time::sleep(Duration::from_millis(400)).await;
        std::fs::write(&path, self.client.screenshot().await.unwrap())
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    }

    /// Runs `script`, a function body, in the page and returns what it returns.
    async fn run<T: DeserializeOwned>(&self, script: &str) -> T {
        serde_json::from_value(self.client.execute(script, Vec::new()).await.unwrap()).unwrap()
    }
}

/// `source` drawing each stroke: down at its first point, moving through the others (15 ms
/// each), up at its last.
fn strokes_with<S: InputSource<Action = PointerAction>>(
    mut source: S,
    strokes: &Strokes,
    to_screen: impl Fn((f64, f64)) -> (f64, f64),
) -> S {
    for stroke in strokes {
        let (x, y) = to_screen(stroke[0]);
        source = source
            .then(PointerAction::MoveTo { duration: None, x, y })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT });
        for &point in &stroke[1..] {
            let (x, y) = to_screen(point);
            source = source.then(PointerAction::MoveTo { duration: Some(Duration::from_millis(15)), x, y });
        }
        source = source.then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
    }
    source
}
