//! What the service says about itself: the model card fields shared by every model (the rest
//! travels with each model's weights) and the OpenAPI document's title, version and
//! description.

/// The MAX model card's type, for every model served here.
pub const MODEL_TYPE: &str = "Image Classification";

/// The licence of the models this project trains.
pub const MODEL_LICENSE: &str = "Apache-2.0";

/// Title of the OpenAPI document and the Swagger UI page.
pub const API_TITLE: &str = "max-mnist: image classifiers, MAX style";

/// Version of the API (the crate's version).
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Description shown at the top of the Swagger UI.
pub const API_DESCRIPTION: &str = "\
Classifies images with verified models, in the style of IBM's Model Asset eXchange: by default a \
handwritten-digit classifier (`mnist`, trained on MNIST) and a clothing classifier \
(`fashion-mnist`, trained on Fashion-MNIST), several at once, each on its own queue.

**Try it in your browser: [draw a digit or upload a picture at /app](/app)**, and see the answer, \
the probabilities and the image the model saw.

* `POST /model/predict` (the default model) or `POST /models/{model}/predict` with a multipart \
form whose `image` field holds a PNG, JPEG, GIF, BMP, WebP or TIFF file returns the class, its \
probability and the probabilities of all classes. A digit model finds the ink in photos, scans \
and drawings and centres it the way MNIST was made; an image model resizes and crops the picture \
as torchvision's classifier transforms do. `?include_input=true` returns what the model saw.
* `GET /models` lists the models; `GET /model/metadata` and `/models/{model}/metadata` describe \
one, including the SHA-512 of the weights being served and their test accuracy; `labels` lists \
its classes.
* The Open Inference Protocol (KServe v2) serves every model under `/v2/models/{model}`.

Every model's weights were fetched from its bucket and verified against the bucket's \
`sha512sums.txt` before the server loaded them. Errors are JSON: \
`{\"status\": \"error\", \"message\": \"...\"}`.";
