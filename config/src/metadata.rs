//! What the service says about itself: the MAX model card (`/model/metadata`) and the
//! OpenAPI document's title, version and description.

/// The MAX model card fields that do not depend on the weights.
#[derive(Clone, Copy, Debug)]
pub struct ModelCard {
    /// Stable identifier of the model.
    pub id: &'static str,
    /// Human-readable name.
    pub name: &'static str,
    /// What the model does.
    pub description: &'static str,
    /// MAX model type.
    pub model_type: &'static str,
    /// Where the model and its training data come from.
    pub source: &'static str,
    /// Licence of the model.
    pub license: &'static str,
}

/// This service's model card.
pub const MODEL_CARD: ModelCard = ModelCard {
    id: "max-mnist",
    name: "MNIST Digit Classifier",
    description: "A small convolutional network with batch normalisation that recognises a handwritten digit \
                  (0-9) in an image. Trained on MNIST by this project's `train` binary.",
    model_type: "Image Classification",
    source: "MNIST handwritten digit database (LeCun, Cortes, Burges); network and weights from this repository",
    license: "Apache-2.0",
};

/// Title of the OpenAPI document and the Swagger UI page.
pub const API_TITLE: &str = "max-mnist: MNIST Digit Classifier";

/// Version of the API (the crate's version).
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Description shown at the top of the Swagger UI.
pub const API_DESCRIPTION: &str = "\
Recognises a handwritten digit in an image, in the style of IBM's Model Asset eXchange.

**Try it in your browser: [draw a digit at /app](/app)**, and see the answer, the ten \
probabilities and the 28×28 image the model saw.

* `POST /model/predict` with a multipart form whose `image` field holds a PNG, JPEG, GIF, BMP, \
WebP or TIFF file returns the digit, its probability and the probabilities of all ten digits. \
Photos, scans and drawings work as they are: dark ink on paper or light on dark, transparent \
backgrounds, any size, the digit anywhere in the frame (EXIF rotation is honoured). The server \
finds the ink and centres it the way MNIST was made; `?include_input=true` returns what it saw.
* `GET /model/metadata` describes the model, including the SHA-512 of the weights being served \
and their test accuracy; `GET /model/labels` lists the classes.

The weights were fetched from a bucket and verified against `sha512sums.txt` before the server \
started. Errors are JSON: `{\"status\": \"error\", \"message\": \"...\"}`.";
