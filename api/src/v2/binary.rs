//! The protocol's binary tensor data extension, as Triton's clients use it by default
//! (`tritonclient`'s `set_data_from_numpy` and `InferRequestedOutput`).
//!
//! A request body is a JSON header, as long as its `Inference-Header-Content-Length` says,
//! followed by the raw bytes of the input that declares `"parameters": {"binary_data_size":
//! N}`. An answer whose output is asked for in binary (`"binary_data": true` on the output,
//! or `"binary_data_output": true` on the request) is built the same way. FP32 elements are
//! little-endian 4-byte floats; each BYTES element is its length as a little-endian `u32`,
//! then that many bytes (here, an encoded image, with no base64).
//!
//! Every limit holds as for JSON: the body limit bounds the whole body, the shape must
//! account for every byte, and reading stops at the first element past the shape's count.

use poem::http::HeaderValue;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, ResponseContent};

use super::request::{ParsedInput, TensorData};
use super::{InferenceResponse, OutputData};
use crate::error::ApiError;

/// The header that gives the length of a body's JSON part.
pub const JSON_LENGTH_HEADER: &str = "Inference-Header-Content-Length";

/// The size of an output sent as binary data, in its `parameters`.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BinaryDataSize {
    /// How many bytes of the body, after the JSON header, hold this output's elements.
    pub binary_data_size: u64,
}

/// What `POST /v2/models/{model}/infer` answers with.
#[derive(ResponseContent)]
pub enum InferenceContent {
    /// The outputs in JSON.
    Json(Json<InferenceResponse>),
    /// The binary tensor data extension: the JSON header, then the outputs' bytes.
    Binary(Binary<Vec<u8>>),
}

/// The answer of `POST /v2/models/{model}/infer`.
#[derive(ApiResponse)]
pub enum InferenceAnswer {
    /// The outputs. `Inference-Header-Content-Length` is there when binary data follows the
    /// JSON header.
    #[oai(status = 200)]
    Ok(InferenceContent, #[oai(header = "Inference-Header-Content-Length")] Option<u64>),
}

impl InferenceAnswer {
    /// `answer` in JSON, with the data of each output whose flag in `in_binary` is set (one
    /// flag per output, in order) moved after the JSON header instead.
    pub fn new(answer: InferenceResponse, in_binary: &[bool]) -> Result<InferenceAnswer, ApiError> {
        if !in_binary.contains(&true) {
            return Ok(InferenceAnswer::Ok(InferenceContent::Json(Json(answer)), None));
        }
        let mut answer = answer;
        let mut data = Vec::new();
        for (output, _) in answer.outputs.iter_mut().zip(in_binary).filter(|(_, in_binary)| **in_binary) {
            let bytes = output.data.take().map(OutputData::into_le_bytes).unwrap_or_default();
            output.parameters = Some(BinaryDataSize { binary_data_size: bytes.len() as u64 });
            data.extend(bytes);
        }
        let mut body = serde_json::to_vec(&answer).map_err(ApiError::internal)?;
        let json_length = body.len() as u64;
        body.extend(data);
        Ok(InferenceAnswer::Ok(InferenceContent::Binary(Binary(body)), Some(json_length)))
    }
}

impl OutputData {
    /// The elements as the extension sends them: each `FP32` as 4 little-endian bytes, each
    /// `BOOL` as one byte, 0 or 1.
    pub fn into_le_bytes(self) -> Vec<u8> {
        match self {
            OutputData::Numbers(numbers) => numbers.iter().flat_map(|number| number.to_le_bytes()).collect(),
            OutputData::Flags(flags) => flags.into_iter().map(u8::from).collect(),
        }
    }
}

/// The length of a body's JSON part, from its `Inference-Header-Content-Length`, checked
/// against the length of the whole body.
pub fn json_length(header: &HeaderValue, body_length: usize) -> Result<usize, ApiError> {
    let length = header.to_str().ok().and_then(|text| text.trim().parse::<usize>().ok()).ok_or_else(|| {
        ApiError::bad_request(format!("{JSON_LENGTH_HEADER} must be a number of bytes, not {header:?}"))
    })?;
    if length > body_length {
        return Err(ApiError::bad_request(format!(
            "{JSON_LENGTH_HEADER} is {length} bytes, longer than the whole body's {body_length}"
        )));
    }
    Ok(length)
}

/// Where an input's elements are: in its JSON `data`, or in the body's binary part.
pub enum InputData<'a> {
    /// The JSON text of `data`.
    Json(&'a serde_json::value::RawValue),
    /// The bytes after the JSON header.
    Binary(Vec<u8>),
}

impl ParsedInput {
    /// Where this input's elements are, given the bytes that followed the JSON header: the
    /// input has either `data` or a `binary_data_size` that accounts for every one of them.
    pub fn elements(&self, binary: Vec<u8>) -> Result<InputData<'_>, ApiError> {
        let name = &self.name;
        if self.parameters.shared_memory_region.is_some() {
            return Err(ApiError::bad_request(format!(
                "input `{name}`: the shared-memory extension is not supported; send the data in JSON or after the \
                 JSON header"
            )));
        }
        match (&self.data, self.parameters.binary_data_size) {
            (Some(_), Some(_)) => {
                Err(ApiError::bad_request(format!("input `{name}` has both `data` and a `binary_data_size`")))
            }
            (Some(data), None) if binary.is_empty() => Ok(InputData::Json(data)),
            (None, None) if binary.is_empty() => Err(ApiError::bad_request(format!("input `{name}` has no `data`"))),
            (_, None) => Err(ApiError::bad_request(format!(
                "{} bytes follow the JSON header, but input `{name}` has no `binary_data_size`",
                binary.len()
            ))),
            (None, Some(size)) if size != binary.len() as u64 => Err(ApiError::bad_request(format!(
                "input `{name}` has a `binary_data_size` of {size} bytes, but {} follow the JSON header{}",
                binary.len(),
                if binary.is_empty() { format!(" (is {JSON_LENGTH_HEADER} set?)") } else { String::new() }
            ))),
            (None, Some(_)) => Ok(InputData::Binary(binary)),
        }
    }
}

impl TensorData {
    /// Reads binary `bytes` of `datatype` into at most `limit` elements: FP32 must be exactly
    /// `limit` floats; BYTES elements are read one by one, stopping at the first one past
    /// `limit` or the first whose length runs past the end.
    pub fn from_binary(datatype: &str, bytes: Vec<u8>, limit: usize) -> Result<TensorData, String> {
        match datatype {
            "FP32" => {
                let expected = limit.saturating_mul(size_of::<f32>());
                if bytes.len() != expected {
                    return Err(format!(
                        "{} bytes of binary data are not the shape's {limit} FP32 values ({expected} bytes)",
                        bytes.len()
                    ));
                }
                let values = bytes.chunks_exact(size_of::<f32>());
                Ok(TensorData::Numbers(
                    values.map(|value| f32::from_le_bytes([value[0], value[1], value[2], value[3]])).collect(),
                ))
            }
            "BYTES" => {
                let mut elements = Vec::new();
                let mut rest = bytes.as_slice();
                while !rest.is_empty() {
                    let index = elements.len();
                    if index == limit {
                        return Err(format!("the binary data has more elements than the shape's {limit}"));
                    }
                    let (length, after) = rest
                        .split_first_chunk::<4>()
                        .ok_or_else(|| format!("BYTES element {index} is cut short: its 4-byte length is missing"))?;
                    let length = u32::from_le_bytes(*length) as usize;
                    if length > after.len() {
                        return Err(format!(
                            "BYTES element {index} says it has {length} bytes, but only {} remain",
                            after.len()
                        ));
                    }
                    let (element, after) = after.split_at(length);
                    elements.push(element.to_vec());
                    rest = after;
                }
                Ok(TensorData::Blobs(elements))
            }
            other => Err(format!("datatype `{other}` has no binary form here: send FP32 pixels or BYTES images")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BYTES elements as the extension lays them out.
    fn serialized(elements: &[&[u8]]) -> Vec<u8> {
        elements.iter().flat_map(|element| [&(element.len() as u32).to_le_bytes()[..], element].concat()).collect()
    }

    #[test]
    fn fp32_data_is_read_little_endian_and_must_fill_the_shape_exactly() {
        let bytes: Vec<u8> = [0.0f32, 0.5, 1.0].iter().flat_map(|value| value.to_le_bytes()).collect();
        assert_eq!(
            TensorData::from_binary("FP32", bytes.clone(), 3).unwrap(),
            TensorData::Numbers(vec![0.0, 0.5, 1.0])
        );
        let error = TensorData::from_binary("FP32", bytes[..11].to_vec(), 3).unwrap_err();
        assert!(error.contains("11 bytes of binary data are not the shape's 3 FP32 values (12 bytes)"), "{error}");
        assert!(TensorData::from_binary("FP32", bytes, 2).is_err());
    }

    #[test]
    fn bytes_elements_are_length_prefixed_and_every_length_is_checked() {
        let two = serialized(&[b"png", b""]);
        assert_eq!(
            TensorData::from_binary("BYTES", two.clone(), 2).unwrap(),
            TensorData::Blobs(vec![b"png".to_vec(), Vec::new()])
        );
        let error = TensorData::from_binary("BYTES", two.clone(), 1).unwrap_err();
        assert!(error.contains("more elements than the shape's 1"), "{error}");
        let error = TensorData::from_binary("BYTES", two[..6].to_vec(), 2).unwrap_err();
        assert!(error.contains("element 0 says it has 3 bytes, but only 2 remain"), "{error}");
        let error = TensorData::from_binary("BYTES", two[..9].to_vec(), 2).unwrap_err();
        assert!(error.contains("element 1 is cut short"), "{error}");
        let huge = [&u32::MAX.to_le_bytes()[..], b"x"].concat();
        assert!(TensorData::from_binary("BYTES", huge, 1).unwrap_err().contains("4294967295 bytes"));
    }

    #[test]
    fn the_json_length_must_be_a_number_within_the_body() {
        assert_eq!(json_length(&HeaderValue::from_static("12"), 20).unwrap(), 12);
        for (value, body) in [("21", 20), ("-1", 20), ("twelve", 20), ("", 0)] {
            assert!(json_length(&HeaderValue::from_static(value), body).is_err(), "{value}");
        }
    }
}
