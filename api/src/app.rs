//! The drawing page at `/app`: draw a digit (or upload a photo) and watch the model's answer,
//! the probability of each class and the image it saw. A picker offers every model the server
//! serves (`/app?model=NAME` opens one); the default one is asked through `POST /model/predict`
//! as it always was, another through `POST /models/{model}/predict`, its labels naming the
//! chart's bars. The page is three static files from `api/app/`, embedded in the binary so that
//! the server needs nothing beside it and the browser fetches nothing from elsewhere; it calls
//! the same public routes as any client. A page, not API, so it is kept out of the OpenAPI
//! document.

use poem::endpoint::make_sync;
use poem::http::header;
use poem::{Endpoint, Response, Route, get};

/// Everything from this server and nothing else; images may also be the `data:` URL of the
/// model's input (an uploaded photo is drawn from an `ImageBitmap`, with no URL).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
    object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page's routes, to be nested at `/app`: `/` (and so `/app` and `/app/`), `/app.js`,
/// `/app.css`, and `/limits.json`, which tells the page the largest body the server takes
/// (`max_body_bytes`), so that it can say so rather than send a file that would be refused.
pub fn routes(max_body_bytes: u64) -> Route {
    let limits = format!("{{\"max_body_bytes\": {max_body_bytes}}}");
    Route::new()
        .at("/", embedded(include_str!("../app/index.html"), "text/html; charset=utf-8"))
        .at("/app.js", embedded(include_str!("../app/app.js"), "text/javascript; charset=utf-8"))
        .at("/app.css", embedded(include_str!("../app/app.css"), "text/css; charset=utf-8"))
        .at("/limits.json", embedded(limits, "application/json"))
}

/// `GET` (and `HEAD`) answering with one embedded file (or a text made at start-up). Browsers
/// fetch it again on every load (`no-cache`; the files are small), so a new binary's page never
/// runs an old cached script.
fn embedded(body: impl Into<poem::Body> + Clone + Send + Sync + 'static, content_type: &'static str) -> impl Endpoint {
    get(make_sync(move |_| {
        Response::builder()
            .content_type(content_type)
            .header(header::CACHE_CONTROL, "no-cache")
            .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(header::REFERRER_POLICY, "no-referrer")
            .body(body.clone())
    }))
}
