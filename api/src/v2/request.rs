//! Reading an inference request's body without a JSON tree.
//!
//! poem-openapi's `Json` payload parses a body into a `serde_json::Value` tree first: each
//! number of a tensor's `data` becomes a node of about 80 bytes, so a 4 MiB body of `0,0,0,…`
//! would cost some 160 MB before any check ran. [`InferenceBody`] is documented in the OpenAPI
//! document exactly as `Json<InferenceRequest>`, but reads the body with serde into
//! [`ParsedRequest`], keeping each tensor's `data` as its raw JSON text. Once the shape and
//! type are checked, [`TensorData::parse`] reads that text into a flat `Vec<f32>` or
//! `Vec<String>`, flattening nested arrays as it goes and stopping at the first element past
//! the count the shape declares. An input sent as binary data (the [`super::binary`]
//! extension) is read from the bytes after the JSON header instead.

use std::fmt;

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaRequest, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::binary::{JSON_LENGTH_HEADER, json_length};
use super::{InferenceRequest, InputParameters, RequestOutput, RequestParameters};
use crate::error::ApiError;
use crate::types::json_request_meta;

/// What a tensor's elements must be, said in every error about them.
const ELEMENTS: &str = "FP32 data must be numbers, BYTES data base64 strings";

/// An inference request as read: [`InferenceRequest`] with each input's data flattened.
/// Fields and parameters the protocol allows and the model does not use are ignored.
#[derive(serde::Deserialize, Debug)]
pub struct ParsedRequest {
    /// An id echoed in the answer.
    pub id: Option<String>,
    /// The input tensors.
    pub inputs: Vec<ParsedInput>,
    /// The outputs wanted.
    pub outputs: Option<Vec<RequestOutput>>,
    /// The request's parameters (`binary_data_output`).
    pub parameters: Option<RequestParameters>,
}

/// One input tensor as read.
#[derive(serde::Deserialize, Debug)]
pub struct ParsedInput {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<i64>,
    /// Its element type.
    pub datatype: String,
    /// Its elements as the client wrote them, read by [`TensorData::parse`]; none when they
    /// follow the JSON header as binary data.
    pub data: Option<Box<RawValue>>,
    /// Its parameters.
    #[serde(default)]
    pub parameters: InputParameters,
}

/// A tensor's elements in row-major order, whatever the nesting of the JSON arrays.
#[derive(Debug, PartialEq)]
pub enum TensorData {
    /// Numbers (also what an empty array reads as).
    Numbers(Vec<f32>),
    /// Strings (BYTES in JSON: base64).
    Texts(Vec<String>),
    /// Raw byte strings (BYTES as binary data).
    Blobs(Vec<Vec<u8>>),
}

impl TensorData {
    /// Reads `data` (a JSON array, nested or not) into at most `limit` elements; more is an
    /// error, found as soon as the next element is read.
    pub fn parse(data: &RawValue, limit: usize) -> Result<TensorData, String> {
        let mut elements = TensorData::Numbers(Vec::new());
        let mut reader = serde_json::Deserializer::from_str(data.get());
        reader
            .deserialize_seq(Elements { data: &mut elements, limit })
            .map_err(|error| shortened(error.to_string()))?;
        Ok(elements)
    }

    /// How many elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Numbers(numbers) => numbers.len(),
            TensorData::Texts(texts) => texts.len(),
            TensorData::Blobs(blobs) => blobs.len(),
        }
    }

    fn push_number<E: de::Error>(&mut self, number: f64) -> Result<(), E> {
        match self {
            TensorData::Numbers(numbers) => numbers.push(number as f32),
            TensorData::Texts(texts) if texts.is_empty() => *self = TensorData::Numbers(vec![number as f32]),
            TensorData::Texts(_) | TensorData::Blobs(_) => {
                return Err(E::custom(format!("`data` mixes strings and numbers: {ELEMENTS}")));
            }
        }
        Ok(())
    }

    fn push_text<E: de::Error>(&mut self, text: String) -> Result<(), E> {
        match self {
            TensorData::Texts(texts) => texts.push(text),
            TensorData::Numbers(numbers) if numbers.is_empty() => *self = TensorData::Texts(vec![text]),
            TensorData::Numbers(_) | TensorData::Blobs(_) => {
                return Err(E::custom(format!("`data` mixes numbers and strings: {ELEMENTS}")));
            }
        }
        Ok(())
    }
}

/// An error message cut to a length fit to send back (serde quotes the strings it refuses).
fn shortened(message: String) -> String {
    const MAX_CHARS: usize = 200;
    match message.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &message[..end]),
        None => message,
    }
}

/// Reads an array, at any depth, appending its leaves to the data, up to `limit` of them.
struct Elements<'a> {
    data: &'a mut TensorData,
    limit: usize,
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "an array ({ELEMENTS})")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut elements: A) -> Result<(), A::Error> {
        let limit = self.limit;
        while elements.next_element_seed(Element { data: &mut *self.data, limit })?.is_some() {
            if self.data.len() > limit {
                return Err(de::Error::custom(format!("`data` has more elements than the shape's {limit}")));
            }
        }
        Ok(())
    }
}

/// Reads one element of an array: a leaf, or a nested array.
struct Element<'a> {
    data: &'a mut TensorData,
    limit: usize,
}

impl<'de> DeserializeSeed<'de> for Element<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "a number, a string or an array ({ELEMENTS})")
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<(), E> {
        self.data.push_number(number)
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<(), E> {
        self.data.push_number(number as f64)
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<(), E> {
        self.data.push_number(number as f64)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.data.push_text(text.to_owned())
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<(), E> {
        self.data.push_text(text)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, elements: A) -> Result<(), A::Error> {
        Elements { data: self.data, limit: self.limit }.visit_seq(elements)
    }
}

/// The body of `POST /v2/models/mnist/infer`: documented as `Json<InferenceRequest>`, read
/// as a [`ParsedRequest`] and the binary data after it, if any.
pub struct InferenceBody {
    /// The request's JSON.
    pub request: ParsedRequest,
    /// The bytes after the JSON header (empty without the binary tensor data extension).
    pub binary: Vec<u8>,
}

impl<'a> ApiExtractor<'a> for InferenceBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Json<InferenceRequest> as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        json_request_meta::<InferenceRequest>(true)
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _options: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<InferenceBody> {
        let binary_header = request.headers().get(JSON_LENGTH_HEADER);
        match request.content_type() {
            // Triton's clients send no Content-Type.
            None => {}
            Some(json) if <Json<InferenceRequest> as Payload>::check_content_type(json) => {}
            Some(binary) if binary_header.is_some() && binary.starts_with("application/octet-stream") => {}
            Some(other) => {
                let shown: String = other.chars().take(80).collect();
                return Err(ApiError::unsupported_media_type(format!(
                    "cannot read an inference request from a `{shown}` body: send JSON (Content-Type: \
                     application/json, or none), followed by binary data if {JSON_LENGTH_HEADER} says so"
                ))
                .into());
            }
        }
        let mut bytes = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        let binary = match binary_header {
            Some(header) => bytes.split_off(json_length(header, bytes.len())?),
            None => Vec::new(),
        };
        let request = serde_json::from_slice(&bytes).map_err(|error| {
            ApiError::bad_request(shortened(format!("the inference request is not valid: {error}")))
        })?;
        Ok(InferenceBody { request, binary })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: &str) -> Result<TensorData, String> {
        TensorData::parse(&RawValue::from_string(json.to_owned()).unwrap(), 4)
    }

    #[test]
    fn nested_arrays_are_flattened_in_row_major_order() {
        assert_eq!(data("[[0, 0.5], [1, 0.25]]").unwrap(), TensorData::Numbers(vec![0.0, 0.5, 1.0, 0.25]));
        assert_eq!(data(r#"[["aGk="], ["aGk"]]"#).unwrap(), TensorData::Texts(vec!["aGk=".into(), "aGk".into()]));
        assert_eq!(data("[]").unwrap().len(), 0);
    }

    #[test]
    fn reading_stops_at_the_first_element_past_the_limit_and_messages_stay_short() {
        let error = data("[0, 0, 0, 0, 0, \"never read\"]").unwrap_err();
        assert!(error.contains("more elements than the shape's 4"), "{error}");
        let long = format!(r#"[0, "{}"]"#, "x".repeat(10_000));
        assert!(data(&long).unwrap_err().chars().count() <= 201);
    }

    #[test]
    fn anything_but_numbers_or_strings_is_refused_with_what_they_must_be() {
        for odd in ["[0, null]", "[true]", r#"[{"value": 1}]"#, r#"[0, "a"]"#, r#"["a", 0]"#, "7"] {
            let error = data(odd).unwrap_err().to_string();
            assert!(error.contains(ELEMENTS), "{odd}: {error}");
        }
    }
}
