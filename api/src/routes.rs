//! The MAX routes: `/model/metadata`, `/model/labels` and `/model/predict`.

use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{OpenApi, Tags};

use crate::error::ApiError;
use crate::state::ServerState;
use crate::types::{LabelsResponse, ModelMetadataResponse, PredictResponse, PredictionBody};
use crate::upload::PredictUpload;

#[derive(Tags)]
enum Tag {
    /// The digit classifier.
    Model,
}

/// The model routes; until the model is loaded they answer 503.
pub struct ModelApi {
    state: ServerState,
}

impl ModelApi {
    /// Routes answering with the model that `state` serves.
    pub fn new(state: ServerState) -> ModelApi {
        ModelApi { state }
    }
}

#[OpenApi(tag = "Tag::Model")]
impl ModelApi {
    /// Describe the model
    ///
    /// The MAX model card, plus the SHA-512 of the weights being served and their accuracy
    /// on the MNIST test set.
    #[oai(path = "/model/metadata", method = "get")]
    async fn metadata(&self) -> Result<Json<ModelMetadataResponse>, ApiError> {
        Ok(Json(self.state.model()?.metadata.clone()))
    }

    /// List the classes
    ///
    /// The labels the model predicts, in output order.
    #[oai(path = "/model/labels", method = "get")]
    async fn labels(&self) -> Result<Json<LabelsResponse>, ApiError> {
        Ok(Json(self.state.model()?.labels.clone()))
    }

    /// Classify handwritten digits
    ///
    /// Send a photo, a scan or a drawing: dark ink on light paper or light on dark, the digit
    /// anywhere in the frame. Either as a multipart form, one image per `image` part (repeat
    /// the part for several images, up to the server's limit; `file` is accepted too), or as
    /// the raw body with `Content-Type: image/png` (or another `image/*`) or
    /// `application/octet-stream`. The server finds the ink, crops it, scales it into a 20×20
    /// box and centres it by mass in 28×28, as MNIST was made, and classifies all images of
    /// the request together.
    ///
    /// The answer holds one prediction per image, in order: the predicted digit, its
    /// probability and the probabilities of all ten digits; with `include_input=true`, also
    /// the 28×28 image the network saw. If any image cannot be used (empty, not an image,
    /// no ink), the request fails with an error naming that part.
    #[oai(path = "/model/predict", method = "post")]
    async fn predict(
        &self,
        upload: PredictUpload,
        /// Also return the 28×28 image the network saw, as a PNG data URL.
        #[oai(default)]
        include_input: Query<bool>,
    ) -> Result<Json<PredictResponse>, ApiError> {
        let engine = &self.state.model()?.engine;
        let several = upload.images.len() > 1;
        let (origins, images): (Vec<String>, Vec<Vec<u8>>) =
            upload.images.into_iter().map(|image| (image.origin, image.bytes)).unzip();
        let mut predictions = Vec::with_capacity(images.len());
        for (result, origin) in engine.classify_all(images).await.into_iter().zip(&origins) {
            let named = |error| if several { ApiError::for_image(origin, error) } else { ApiError::from(error) };
            predictions.push(PredictionBody::new(result.map_err(named)?, include_input.0).map_err(named)?);
        }
        Ok(Json(PredictResponse::ok(predictions)))
    }
}
