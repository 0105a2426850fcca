//! The Open Inference Protocol (KServe v2) routes, so that KServe, Triton clients and other
//! tools that speak it can use this server as it is: `GET /v2`, `/v2/health/live`,
//! `/v2/health/ready`, and for every model `/v2/models/{model}`, `/v2/models/{model}/ready`
//! and `POST /v2/models/{model}/infer`, each also under `/v2/models/{model}/versions/{version}`
//! (the version being the first 12 hex digits of the weights' SHA-512).
//!
//! An inference request carries one input tensor, either
//! - `FP32` of shape `[N, C, H, W]` or `[N, C·H·W]` (the model's input shape, `[N, 1, 28, 28]`
//!   for MNIST): pixel intensities in [0, 1], as torchvision's `ToTensor` gives them; they skip
//!   decoding and preprocessing, and are normalised with the weights' constants; or
//! - `BYTES` of shape `[N]`: base64-encoded images (PNG, JPEG, …), preprocessed exactly as
//!   `/models/{model}/predict` does.
//!
//! The answer has the outputs the request names, or all of them: `probabilities` (`FP32`,
//! `[N, classes]`, calibrated as `/models/{model}/predict`'s), `domain_score` (`FP32`, `[N]`:
//! how much each image looks like any class at all) and, for a model with a domain threshold,
//! `in_domain` (`BOOL`, `[N]`: false for "this doesn't look like a digit"). Errors are the
//! server's JSON error body, whose `error` field is the protocol's. Inputs and outputs can
//! also travel as raw bytes after the JSON, as Triton's clients send them by default: the
//! [`binary`] tensor data extension.

use base64::Engine;
use base64::alphabet::STANDARD as BASE64_ALPHABET;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use max_mnist_core::inference::Classification;
use max_mnist_core::preprocess::ModelInput;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags, Union};

use self::binary::InputData;
pub use self::binary::{BinaryDataSize, InferenceAnswer, InferenceContent};
use self::request::{InferenceBody, ParsedInput, ParsedRequest, TensorData};
use crate::error::ApiError;
use crate::state::{Readiness, ServedModel, ServerState};

mod binary;
mod request;

/// The outputs, in the order an answer gives them when the request names none.
const PROBABILITIES: &str = "probabilities";
const DOMAIN_SCORE: &str = "domain_score";
const IN_DOMAIN: &str = "in_domain";
/// Standard base64, padded or not (clients differ).
const BASE64_PADDING_OPTIONAL: GeneralPurpose = GeneralPurpose::new(
    &BASE64_ALPHABET,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Tags)]
enum Tag {
    /// Open Inference Protocol (KServe v2).
    OpenInferenceProtocol,
}

/// `GET /v2`: who is serving.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServerMetadata {
    /// The server's name.
    pub name: String,
    /// The server's version.
    pub version: String,
    /// Protocol extensions supported (`binary_tensor_data`).
    pub extensions: Vec<String>,
}

/// `GET /v2/health/live`.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LiveBody {
    /// Always true: the server answered.
    pub live: bool,
}

/// A tensor a model takes or gives.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TensorMetadata {
    /// Its name.
    pub name: String,
    /// Its element type (`FP32`, `BYTES`).
    pub datatype: String,
    /// Its shape; -1 for a dimension of any size.
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{model}`: what the model takes and gives.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelMetadataV2 {
    /// The model's name.
    pub name: String,
    /// The versions served: the first 12 hex digits of the weights' SHA-512.
    pub versions: Vec<String>,
    /// The framework.
    pub platform: String,
    /// The accepted inputs; a request sends one of them.
    pub inputs: Vec<TensorMetadata>,
    /// The outputs.
    pub outputs: Vec<TensorMetadata>,
}

/// `GET /v2/health/ready`.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServerReadyBody {
    /// Whether the server answers inference requests.
    pub ready: bool,
}

/// `GET /v2/models/{model}/ready`.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelReadyBody {
    /// The model's name.
    pub name: String,
    /// Whether it answers inference requests.
    pub ready: bool,
}

/// One input tensor of an inference request.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RequestInput {
    /// Any name (the model has one input at a time).
    pub name: String,
    /// `[N, C, H, W]` or `[N, C·H·W]` for `FP32` (the model's input shape), `[N]` for `BYTES`.
    pub shape: Vec<i64>,
    /// `FP32` (pixels in [0, 1]) or `BYTES` (base64-encoded images).
    pub datatype: String,
    /// The elements in row-major order, flat or nested; absent when they follow the JSON
    /// header as binary data.
    pub data: Option<serde_json::Value>,
    /// How the input is sent.
    pub parameters: Option<InputParameters>,
}

/// The parameters of an input.
#[derive(Object, Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InputParameters {
    /// The binary tensor data extension: the size in bytes of the input's elements, sent
    /// after the JSON header (whose length `Inference-Header-Content-Length` gives) instead
    /// of `data`.
    pub binary_data_size: Option<u64>,
    /// The shared-memory extension's region: not supported, and refused.
    pub shared_memory_region: Option<String>,
}

/// The parameters of a request.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RequestParameters {
    /// Send every output as binary data after the JSON header, unless the output says
    /// otherwise.
    pub binary_data_output: Option<bool>,
}

/// The parameters of an output a client asks for.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutputParameters {
    /// Send this output as binary data after the JSON header.
    pub binary_data: Option<bool>,
    /// The classification extension's class count: not supported, and refused when above 0.
    pub classification: Option<u32>,
}

/// An output a client asks for.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RequestOutput {
    /// The output's name (`probabilities`, `domain_score` or `in_domain`).
    pub name: String,
    /// How to send it.
    pub parameters: Option<OutputParameters>,
}

/// `POST /v2/models/{model}/infer`'s body, as the OpenAPI document shows it; it is read by
/// [`InferenceBody`], which never builds a JSON tree of the data.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InferenceRequest {
    /// An id echoed in the answer.
    pub id: Option<String>,
    /// Exactly one input.
    pub inputs: Vec<RequestInput>,
    /// The outputs wanted, each once (default: all of the model's).
    pub outputs: Option<Vec<RequestOutput>>,
    /// How to answer.
    pub parameters: Option<RequestParameters>,
}

/// One output tensor of an answer.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResponseOutput {
    /// `probabilities`, `domain_score` or `in_domain`.
    pub name: String,
    /// `[N, classes]` for `probabilities`, `[N]` for the others.
    pub shape: Vec<i64>,
    /// `FP32`, or `BOOL` for `in_domain`.
    pub datatype: String,
    /// The elements, row by row; absent when they follow the JSON header as binary data.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<OutputData>,
    /// With binary data: the size in bytes of this output's elements after the JSON header.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BinaryDataSize>,
}

/// The elements of an output: numbers for `FP32`, booleans for `BOOL`.
#[derive(Union, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[oai(one_of)]
#[serde(untagged)]
pub enum OutputData {
    /// `FP32` elements.
    Numbers(Vec<f32>),
    /// `BOOL` elements.
    Flags(Vec<bool>),
}

impl OutputData {
    /// The `FP32` elements; none for `BOOL` ones.
    pub fn numbers(&self) -> Option<&[f32]> {
        match self {
            OutputData::Numbers(numbers) => Some(numbers),
            OutputData::Flags(_) => None,
        }
    }

    /// The `BOOL` elements; none for `FP32` ones.
    pub fn flags(&self) -> Option<&[bool]> {
        match self {
            OutputData::Flags(flags) => Some(flags),
            OutputData::Numbers(_) => None,
        }
    }
}

/// The answer of `POST /v2/models/{model}/infer`.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InferenceResponse {
    /// The model's name.
    pub model_name: String,
    /// The weights' version.
    pub model_version: String,
    /// The request's id, when it had one.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The outputs.
    pub outputs: Vec<ResponseOutput>,
}

/// The answer of `/v2/health/ready`.
#[derive(ApiResponse)]
pub enum ServerReadyResponse {
    /// Ready.
    #[oai(status = 200)]
    Ready(Json<ServerReadyBody>),
    /// Loading, or the server is shutting down.
    #[oai(status = 503)]
    NotReady(Json<ServerReadyBody>),
}

/// The answer of `/v2/models/{model}/ready`.
#[derive(ApiResponse)]
pub enum ModelReadyResponse {
    /// Ready.
    #[oai(status = 200)]
    Ready(Json<ModelReadyBody>),
    /// Loading, or the server is shutting down.
    #[oai(status = 503)]
    NotReady(Json<ModelReadyBody>),
}

/// The Open Inference Protocol routes.
pub struct OpenInferenceApi {
    state: ServerState,
    max_images: usize,
}

impl OpenInferenceApi {
    /// The routes over `state`, taking at most `max_images` images per request.
    pub fn new(state: ServerState, max_images: usize) -> OpenInferenceApi {
        OpenInferenceApi { state, max_images }
    }

    /// The model's inputs, one image each, checked against the protocol and the limits.
    fn inputs(&self, model: &ServedModel, body: InferenceBody) -> Result<Inputs, ApiError> {
        let InferenceBody { request, binary } = body;
        let [input] = <[ParsedInput; 1]>::try_from(request.inputs)
            .map_err(|inputs| ApiError::bad_request(format!("send exactly one input tensor, not {}", inputs.len())))?;
        let shape = model.engine.card().input_shape;
        let [channels, height, width] = [shape.channels, shape.height, shape.width].map(i64::from);
        let values = channels * height * width;
        let count = match (input.datatype.as_str(), input.shape.as_slice()) {
            ("FP32", &[count, c, h, w]) if [c, h, w] == [channels, height, width] => count,
            ("FP32", &[count, pixels]) if pixels == values => count,
            ("BYTES", &[count]) => count,
            ("FP32", given) => {
                return Err(ApiError::bad_request(format!(
                    "an FP32 input has shape [N, {channels}, {height}, {width}] or [N, {values}], not {given:?}"
                )));
            }
            ("BYTES", shape) => {
                return Err(ApiError::bad_request(format!("a BYTES input has shape [N], not {shape:?}")));
            }
            (other, _) => {
                return Err(ApiError::bad_request(format!(
                    "datatype `{other}` is not accepted: send FP32 pixels or BYTES images"
                )));
            }
        };
        let count = usize::try_from(count)
            .ok()
            .filter(|&count| count > 0)
            .ok_or_else(|| ApiError::bad_request(format!("the batch size must be at least 1, not {count}")))?;
        if count > self.max_images {
            return Err(ApiError::payload_too_large(format!(
                "{count} images in one request; the limit is {}",
                self.max_images
            )));
        }
        let elements = if input.datatype == "BYTES" { count } else { count.saturating_mul(shape.len()) };
        let data = match input.elements(binary)? {
            InputData::Json(text) => TensorData::parse(text, elements),
            InputData::Binary(bytes) => TensorData::from_binary(&input.datatype, bytes, elements),
        }
        .map_err(|error| ApiError::bad_request(format!("input `{}`: {error}", input.name)))?;
        if data.len() != elements {
            return Err(ApiError::bad_request(format!(
                "input `{}`: shape {:?} needs {elements} values, the data has {}",
                input.name,
                input.shape,
                data.len()
            )));
        }
        match (input.datatype.as_str(), data) {
            ("BYTES", TensorData::Texts(images)) => Ok(Inputs::Images(decode_images(images)?)),
            ("BYTES", TensorData::Blobs(images)) => Ok(Inputs::Images(images)),
            ("FP32", TensorData::Numbers(pixels)) => {
                let inputs = pixels
                    .chunks(elements / count)
                    .enumerate()
                    .map(|(index, chunk)| {
                        ModelInput::from_pixels(shape, chunk.to_vec())
                            .map_err(|error| ApiError::for_image(&format!("image {index}"), error))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Inputs::Pixels(inputs))
            }
            (datatype, _) => Err(ApiError::bad_request(format!(
                "{datatype} data must be {}",
                if datatype == "BYTES" { "base64 strings" } else { "numbers" }
            ))),
        }
    }
}

/// A request's images: pixels to classify as they are, or encoded images to preprocess.
enum Inputs {
    Pixels(Vec<ModelInput>),
    Images(Vec<Vec<u8>>),
}

/// The images of a BYTES input, each a base64 string.
fn decode_images(images: Vec<String>) -> Result<Vec<Vec<u8>>, ApiError> {
    images
        .iter()
        .enumerate()
        .map(|(index, image)| {
            BASE64_PADDING_OPTIONAL
                .decode(image)
                .map_err(|error| ApiError::bad_request(format!("image {index}: not base64 ({error})")))
        })
        .collect()
}

#[OpenApi(tag = "Tag::OpenInferenceProtocol")]
impl OpenInferenceApi {
    /// Server metadata
    #[oai(path = "/v2", method = "get")]
    async fn server_metadata(&self) -> Json<ServerMetadata> {
        Json(ServerMetadata {
            name: "max-mnist".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: vec!["binary_tensor_data".into()],
        })
    }

    /// Server liveness
    #[oai(path = "/v2/health/live", method = "get")]
    async fn live(&self) -> Json<LiveBody> {
        Json(LiveBody { live: true })
    }

    /// Server readiness
    ///
    /// As `/health/ready`: 200 once the model is loaded and warmed up, 503 while starting or
    /// draining.
    #[oai(path = "/v2/health/ready", method = "get")]
    async fn ready(&self) -> ServerReadyResponse {
        match self.state.readiness() {
            Readiness::Ready => ServerReadyResponse::Ready(Json(ServerReadyBody { ready: true })),
            _ => ServerReadyResponse::NotReady(Json(ServerReadyBody { ready: false })),
        }
    }

    /// Model metadata
    ///
    /// The model's versions, its inputs (`FP32` pixels of its input shape, or `BYTES` images)
    /// and its outputs.
    #[oai(path = "/v2/models/:model", method = "get")]
    async fn model_metadata(&self, model: Path<String>) -> Result<Json<ModelMetadataV2>, ApiError> {
        Ok(Json(model_metadata(&*self.state.model(Some(&model))?)))
    }

    /// Model version metadata
    #[oai(path = "/v2/models/:model/versions/:version", method = "get")]
    async fn model_version_metadata(
        &self,
        model: Path<String>,
        version: Path<String>,
    ) -> Result<Json<ModelMetadataV2>, ApiError> {
        Ok(Json(model_metadata(&*self.state.model_version(&model, &version)?)))
    }

    /// Model readiness
    ///
    /// 200 once the model is loaded and warmed up, 503 while it loads or the server drains,
    /// 404 for a model this server does not serve.
    #[oai(path = "/v2/models/:model/ready", method = "get")]
    async fn model_ready(&self, model: Path<String>) -> Result<ModelReadyResponse, ApiError> {
        self.readiness_of(&model)
    }

    /// Model version readiness
    #[oai(path = "/v2/models/:model/versions/:version/ready", method = "get")]
    async fn model_version_ready(
        &self,
        model: Path<String>,
        version: Path<String>,
    ) -> Result<ModelReadyResponse, ApiError> {
        if self.state.model_readiness(&model) == Some(Readiness::Ready) {
            self.state.model_version(&model, &version)?;
        }
        self.readiness_of(&model)
    }

    /// Inference
    ///
    /// One input tensor: `FP32` pixels in [0, 1] of shape `[N, C, H, W]` or `[N, C·H·W]`, the
    /// model's input shape (`[N, 1, 28, 28]` for MNIST and Fashion-MNIST), or `BYTES` of shape
    /// `[N]`, each element a base64-encoded image (PNG, JPEG, GIF, BMP, WebP or TIFF)
    /// preprocessed as by `/models/{model}/predict`. Answers the outputs asked for, or all:
    /// `probabilities` (`FP32`, `[N, classes]`), `domain_score` (`FP32`, `[N]`) and, for a
    /// model with a domain threshold, `in_domain` (`BOOL`, `[N]`; false: the image looks like
    /// none of the classes). With the binary tensor data extension
    /// (`Inference-Header-Content-Length`), an input's elements (FP32 little-endian, or BYTES
    /// as raw images, each after its `u32` length) follow the JSON instead of `data`, and an
    /// output's (FP32 little-endian, BOOL one byte each) follow the JSON answer when asked
    /// with `binary_data`.
    #[oai(path = "/v2/models/:model/infer", method = "post")]
    async fn infer(&self, model: Path<String>, request: InferenceBody) -> Result<InferenceAnswer, ApiError> {
        let served = self.state.model(Some(&model))?;
        self.infer_with(&served, request).await
    }

    /// Inference on a version
    #[oai(path = "/v2/models/:model/versions/:version/infer", method = "post")]
    async fn version_infer(
        &self,
        model: Path<String>,
        version: Path<String>,
        request: InferenceBody,
    ) -> Result<InferenceAnswer, ApiError> {
        let served = self.state.model_version(&model, &version)?;
        self.infer_with(&served, request).await
    }
}

impl OpenInferenceApi {
    /// The protocol's readiness answer for the model called `name`.
    fn readiness_of(&self, name: &str) -> Result<ModelReadyResponse, ApiError> {
        let readiness = self.state.model_readiness(name).ok_or_else(|| {
            ApiError::not_found(format!(
                "no model `{name}`; this server serves {}",
                self.state.model_names().join(", ")
            ))
        })?;
        let body = |ready| Json(ModelReadyBody { name: name.to_owned(), ready });
        Ok(match readiness {
            Readiness::Ready => ModelReadyResponse::Ready(body(true)),
            Readiness::Starting | Readiness::Draining => ModelReadyResponse::NotReady(body(false)),
        })
    }

    /// Runs an inference request on `served`.
    async fn infer_with(&self, served: &ServedModel, body: InferenceBody) -> Result<InferenceAnswer, ApiError> {
        let id = body.request.id.clone();
        let wanted = wanted_outputs(&body.request, &output_tensors(served))?;
        let results = match self.inputs(served, body)? {
            Inputs::Pixels(inputs) => served.engine.classify_pixels(inputs).await,
            Inputs::Images(images) => served.engine.classify_all(images).await,
        };
        let count = results.len();
        let classes = served.labels.count as usize;
        let (mut probabilities, mut scores, mut in_domain) =
            (Vec::with_capacity(count * classes), Vec::with_capacity(count), Vec::with_capacity(count));
        for (index, result) in results.into_iter().enumerate() {
            let Classification { prediction, .. } =
                result.map_err(|error| ApiError::for_image(&format!("image {index}"), error))?;
            probabilities.extend(prediction.probabilities);
            scores.push(prediction.domain_score);
            in_domain.push(prediction.in_domain.unwrap_or(true));
        }
        let outputs = wanted
            .iter()
            .map(|WantedOutput { tensor, .. }| {
                let data = match tensor.name {
                    PROBABILITIES => OutputData::Numbers(std::mem::take(&mut probabilities)),
                    DOMAIN_SCORE => OutputData::Numbers(std::mem::take(&mut scores)),
                    _ => OutputData::Flags(std::mem::take(&mut in_domain)),
                };
                ResponseOutput {
                    name: tensor.name.into(),
                    shape: tensor.shape(count as i64, classes as i64),
                    datatype: tensor.datatype.into(),
                    data: Some(data),
                    parameters: None,
                }
            })
            .collect();
        let answer = InferenceResponse {
            model_name: served.name.clone(),
            model_version: served.metadata.version.clone(),
            id,
            outputs,
        };
        InferenceAnswer::new(answer, &wanted.iter().map(|output| output.in_binary).collect::<Vec<_>>())
    }
}

/// An output tensor of a model: its name, its element type, and whether it has a value per
/// class (`[N, classes]`) rather than one per image (`[N]`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct OutputTensor {
    name: &'static str,
    datatype: &'static str,
    per_class: bool,
}

impl OutputTensor {
    /// Its shape for `count` images of a model of `classes` classes (-1: any count).
    fn shape(self, count: i64, classes: i64) -> Vec<i64> {
        if self.per_class { vec![count, classes] } else { vec![count] }
    }
}

/// The outputs `served` gives: its probabilities and domain scores, and `in_domain` when it
/// has a domain threshold.
fn output_tensors(served: &ServedModel) -> Vec<OutputTensor> {
    let mut outputs = vec![
        OutputTensor { name: PROBABILITIES, datatype: "FP32", per_class: true },
        OutputTensor { name: DOMAIN_SCORE, datatype: "FP32", per_class: false },
    ];
    if served.engine.card().calibration.domain_threshold.is_some() {
        outputs.push(OutputTensor { name: IN_DOMAIN, datatype: "BOOL", per_class: false });
    }
    outputs
}

/// An output an answer carries, and whether its elements go as binary data.
#[derive(Debug, PartialEq)]
struct WantedOutput {
    tensor: OutputTensor,
    in_binary: bool,
}

/// The outputs `request` asks for, in its order, each of the model's `outputs` at most once;
/// all of them when it names none. Each goes as binary data as its own `binary_data` says,
/// else as the request's `binary_data_output` says, else in JSON.
fn wanted_outputs(request: &ParsedRequest, outputs: &[OutputTensor]) -> Result<Vec<WantedOutput>, ApiError> {
    let by_default = request.parameters.as_ref().and_then(|parameters| parameters.binary_data_output).unwrap_or(false);
    let Some(asked) = request.outputs.as_ref().filter(|asked| !asked.is_empty()) else {
        return Ok(outputs.iter().map(|&tensor| WantedOutput { tensor, in_binary: by_default }).collect());
    };
    let names = || outputs.iter().map(|output| format!("`{}`", output.name)).collect::<Vec<_>>().join(", ");
    let mut wanted: Vec<WantedOutput> = Vec::with_capacity(asked.len());
    for output in asked {
        let known = outputs.iter().find(|known| known.name == output.name).ok_or_else(|| {
            ApiError::bad_request(format!("unknown output `{}`: the model has {}", output.name, names()))
        })?;
        if wanted.iter().any(|earlier| earlier.tensor.name == known.name) {
            return Err(ApiError::bad_request(format!("output `{}` is asked for twice", known.name)));
        }
        let parameters = output.parameters.as_ref();
        if parameters.and_then(|parameters| parameters.classification).is_some_and(|classes| classes > 0) {
            return Err(ApiError::bad_request(format!(
                "the classification extension is not supported: the top classes are the largest values of \
                 `{PROBABILITIES}`"
            )));
        }
        let in_binary = parameters.and_then(|parameters| parameters.binary_data).unwrap_or(by_default);
        wanted.push(WantedOutput { tensor: *known, in_binary });
    }
    Ok(wanted)
}

/// What `served` takes and gives, in the protocol's terms.
fn model_metadata(served: &ServedModel) -> ModelMetadataV2 {
    let shape = served.engine.card().input_shape;
    ModelMetadataV2 {
        name: served.name.clone(),
        versions: vec![served.metadata.version.clone()],
        platform: "pytorch_libtorch".into(),
        inputs: vec![
            TensorMetadata {
                name: "pixels".into(),
                datatype: "FP32".into(),
                shape: vec![-1, shape.channels.into(), shape.height.into(), shape.width.into()],
            },
            TensorMetadata { name: "images".into(), datatype: "BYTES".into(), shape: vec![-1] },
        ],
        outputs: output_tensors(served)
            .into_iter()
            .map(|output| TensorMetadata {
                name: output.name.into(),
                datatype: output.datatype.into(),
                shape: output.shape(-1, served.labels.count.into()),
            })
            .collect(),
    }
}
