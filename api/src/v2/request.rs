//! Reading an inference request's body without a JSON tree.
//!
//! poem-openapi's `Json` payload parses a body into a `serde_json::Value` tree first: each
//! number of a tensor's `data` becomes a node of about 80 bytes, so a 4 MiB body of `0,0,0,…`
//! would cost some 160 MB before any check ran. [`InferenceBody`] is documented in the OpenAPI
//! document exactly as `Json<InferenceRequest>`, but reads the body with serde straight into
//! [`ParsedRequest`], whose tensor data is a flat `Vec<f32>` or `Vec<String>`: at most a few
//! bytes per element, and nested arrays flattened as they are read.

use std::fmt;

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

use super::{InferenceRequest, RequestOutput};
use crate::error::ApiError;

/// What a tensor's elements must be, said in every error about them.
const ELEMENTS: &str = "FP32 data must be numbers, BYTES data base64 strings";

/// An inference request as read: [`InferenceRequest`] with each input's data flattened.
/// Fields the protocol allows and the model does not use (`parameters`) are ignored.
#[derive(serde::Deserialize, Debug)]
pub struct ParsedRequest {
    /// An id echoed in the answer.
    pub id: Option<String>,
    /// The input tensors.
    pub inputs: Vec<ParsedInput>,
    /// The outputs wanted.
    pub outputs: Option<Vec<RequestOutput>>,
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
    /// Its elements, row by row.
    pub data: TensorData,
}

/// A tensor's elements in row-major order, whatever the nesting of the JSON arrays.
#[derive(Debug, PartialEq)]
pub enum TensorData {
    /// Numbers (also what an empty array reads as).
    Numbers(Vec<f32>),
    /// Strings.
    Texts(Vec<String>),
}

impl TensorData {
    /// How many elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Numbers(numbers) => numbers.len(),
            TensorData::Texts(texts) => texts.len(),
        }
    }

    fn push_number<E: de::Error>(&mut self, number: f64) -> Result<(), E> {
        match self {
            TensorData::Numbers(numbers) => numbers.push(number as f32),
            TensorData::Texts(texts) if texts.is_empty() => *self = TensorData::Numbers(vec![number as f32]),
            TensorData::Texts(_) => return Err(E::custom(format!("`data` mixes strings and numbers: {ELEMENTS}"))),
        }
        Ok(())
    }

    fn push_text<E: de::Error>(&mut self, text: String) -> Result<(), E> {
        match self {
            TensorData::Texts(texts) => texts.push(text),
            TensorData::Numbers(numbers) if numbers.is_empty() => *self = TensorData::Texts(vec![text]),
            TensorData::Numbers(_) => return Err(E::custom(format!("`data` mixes numbers and strings: {ELEMENTS}"))),
        }
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for TensorData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TensorData, D::Error> {
        let mut data = TensorData::Numbers(Vec::new());
        deserializer.deserialize_seq(Elements(&mut data))?;
        Ok(data)
    }
}

/// Reads an array, at any depth, appending its leaves to the data.
struct Elements<'a>(&'a mut TensorData);

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "an array ({ELEMENTS})")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut elements: A) -> Result<(), A::Error> {
        while elements.next_element_seed(Element(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// Reads one element of an array: a leaf, or a nested array.
struct Element<'a>(&'a mut TensorData);

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
        self.0.push_number(number)
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<(), E> {
        self.0.push_number(number as f64)
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<(), E> {
        self.0.push_number(number as f64)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.0.push_text(text.to_owned())
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<(), E> {
        self.0.push_text(text)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, elements: A) -> Result<(), A::Error> {
        Elements(self.0).visit_seq(elements)
    }
}

/// The body of `POST /v2/models/mnist/infer`: documented as `Json<InferenceRequest>`, read
/// as a [`ParsedRequest`].
pub struct InferenceBody(pub ParsedRequest);

impl<'a> ApiExtractor<'a> for InferenceBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Json<InferenceRequest> as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Json<InferenceRequest> as Payload>::CONTENT_TYPE,
                schema: <Json<InferenceRequest> as Payload>::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _options: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<InferenceBody> {
        let content_type = request.content_type().unwrap_or_default();
        if !<Json<InferenceRequest> as Payload>::check_content_type(content_type) {
            let shown: String = content_type.chars().take(80).collect();
            return Err(ApiError::unsupported_media_type(format!(
                "cannot read an inference request from a `{shown}` body: send JSON (Content-Type: application/json)"
            ))
            .into());
        }
        let bytes = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        serde_json::from_slice(&bytes)
            .map(InferenceBody)
            .map_err(|error| ApiError::bad_request(format!("the inference request is not valid: {error}")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: &str) -> Result<TensorData, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn nested_arrays_are_flattened_in_row_major_order() {
        assert_eq!(data("[[0, 0.5], [1, 0.25]]").unwrap(), TensorData::Numbers(vec![0.0, 0.5, 1.0, 0.25]));
        assert_eq!(data(r#"[["aGk="], ["aGk"]]"#).unwrap(), TensorData::Texts(vec!["aGk=".into(), "aGk".into()]));
        assert_eq!(data("[]").unwrap().len(), 0);
    }

    #[test]
    fn anything_but_numbers_or_strings_is_refused_with_what_they_must_be() {
        for odd in ["[0, null]", "[true]", r#"[{"value": 1}]"#, r#"[0, "a"]"#, r#"["a", 0]"#, "7"] {
            let error = data(odd).unwrap_err().to_string();
            assert!(error.contains(ELEMENTS), "{odd}: {error}");
        }
    }
}
