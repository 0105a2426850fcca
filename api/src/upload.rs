//! The images of a `POST /model/predict`, from either kind of body it accepts:
//!
//! - `multipart/form-data`: one image per `image` part (or `file`, as older MAX clients
//!   send, or `data`, as TorchServe clients send), in order; at most
//!   [`UploadLimits::max_parts`] parts of any name;
//! - the raw image: `Content-Type: image/*` or `application/octet-stream`, or no
//!   `Content-Type` at all (`curl -X POST -T digit.png`).
//!
//! The format is always sniffed from the bytes; the declared type only says how the body is
//! framed. The body's size is capped before it gets here ([`crate::limits::BodyLimit`]).

use poem::http::StatusCode;
use poem::http::header::CONTENT_TYPE;
use poem::web::Multipart;
use poem::{FromRequest, Request, RequestBody};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::error::ApiError;
use crate::types::PredictForm;

/// Multipart field names that carry an image; parts under other names are skipped.
const IMAGE_FIELDS: [&str; 3] = ["image", "file", "data"];
/// Longest client file name repeated in an error message.
const MAX_NAME_CHARS: usize = 80;

/// How much one request may upload; stored in the route's data by `startup`.
#[derive(Clone, Copy, Debug)]
pub struct UploadLimits {
    /// Most parts in a multipart request, of any name (more is a 413).
    pub max_parts: usize,
}

/// One uploaded image and how to name it in an error.
#[derive(Debug)]
pub struct UploadedImage {
    /// Where it came from: `part 2 (image, "seven.png")`, or `the request body`.
    pub origin: String,
    /// The encoded image.
    pub bytes: Vec<u8>,
}

/// Every image of one request, in the order sent; never empty.
#[derive(Debug)]
pub struct PredictUpload {
    /// The images.
    pub images: Vec<UploadedImage>,
}

impl PredictUpload {
    async fn from_multipart(request: &Request, body: &mut RequestBody) -> poem::Result<PredictUpload> {
        // Set by `startup` on every route; missing, it is a wiring bug, answered with a 500.
        let limits = request.data::<UploadLimits>().copied().ok_or_else(|| {
            poem::Error::from_string("upload limits not configured", StatusCode::INTERNAL_SERVER_ERROR)
        })?;
        let malformed = |error: poem::error::ParseMultipartError| {
            ApiError::bad_request(format!("malformed multipart body: {error}"))
        };
        let mut form = <Multipart as FromRequest>::from_request(request, body).await?;
        let (mut parts, mut images) = (0, Vec::new());
        while let Some(field) = form.next_field().await.map_err(malformed)? {
            parts += 1;
            if parts > limits.max_parts {
                return Err(ApiError::payload_too_large(format!(
                    "more than {} parts in one request; send at most {} images per request",
                    limits.max_parts, limits.max_parts
                ))
                .into());
            }
            let Some(name) = field.name().filter(|name| IMAGE_FIELDS.contains(name)).map(str::to_owned) else {
                continue;
            };
            let origin = match field.file_name() {
                Some(file) => {
                    format!("part {parts} ({name}, {:?})", file.chars().take(MAX_NAME_CHARS).collect::<String>())
                }
                None => format!("part {parts} ({name})"),
            };
            let bytes =
                field.bytes().await.map_err(|error| ApiError::bad_request(format!("cannot read {origin}: {error}")))?;
            images.push(UploadedImage { origin, bytes });
        }
        if images.is_empty() {
            return Err(ApiError::bad_request("no image: send the file in the multipart field `image`").into());
        }
        Ok(PredictUpload { images })
    }

    async fn from_raw_body(body: &mut RequestBody) -> poem::Result<PredictUpload> {
        let bytes = body.take()?.into_vec().await?;
        Ok(PredictUpload { images: vec![UploadedImage { origin: "the request body".into(), bytes }] })
    }
}

/// How a `Content-Type` frames the body.
enum Framing {
    Multipart,
    RawImage,
    Unsupported,
}

fn framing(content_type: Option<&str>) -> Framing {
    let Some(content_type) = content_type else { return Framing::RawImage };
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "multipart/form-data" => Framing::Multipart,
        "application/octet-stream" => Framing::RawImage,
        other if other.starts_with("image/") => Framing::RawImage,
        _ => Framing::Unsupported,
    }
}

fn binary_schema() -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema { format: Some("binary"), ..MetaSchema::new("string") }))
}

impl<'a> ApiExtractor<'a> for PredictUpload {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <PredictForm as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: Some(
                "One or more images as a multipart form (repeat the `image` part; `file` and `data` are accepted \
                 too), or one image as the raw body.",
            ),
            content: vec![
                MetaMediaType { content_type: "multipart/form-data", schema: <PredictForm as Payload>::schema_ref() },
                MetaMediaType { content_type: "image/*", schema: binary_schema() },
                MetaMediaType { content_type: "application/octet-stream", schema: binary_schema() },
            ],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _options: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<PredictUpload> {
        // A Content-Type that is not visible ASCII reads as none; it must not pass as a raw image.
        let unreadable = request.headers().contains_key(CONTENT_TYPE) && request.content_type().is_none();
        let framing = if unreadable { Framing::Unsupported } else { framing(request.content_type()) };
        match framing {
            Framing::Multipart => PredictUpload::from_multipart(request, body).await,
            Framing::RawImage => PredictUpload::from_raw_body(body).await,
            Framing::Unsupported => Err(ApiError::unsupported_media_type(format!(
                "cannot read an image from a `{}` body: send multipart/form-data with the field `image`, or \
                 the raw image with Content-Type image/png (or another image/*) or application/octet-stream, \
                 e.g. curl --data-binary @digit.png -H 'Content-Type: image/png'",
                request.content_type().unwrap_or_default().chars().take(MAX_NAME_CHARS).collect::<String>()
            ))
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_frame_the_body() {
        for multipart in ["multipart/form-data; boundary=x", "Multipart/Form-Data;boundary=\"x\""] {
            assert!(matches!(framing(Some(multipart)), Framing::Multipart), "{multipart}");
        }
        for raw in [None, Some("image/png"), Some("IMAGE/JPEG"), Some("application/octet-stream; x=y")] {
            assert!(matches!(framing(raw), Framing::RawImage), "{raw:?}");
        }
        for other in ["application/x-www-form-urlencoded", "text/plain", "application/json", "", "image"] {
            assert!(matches!(framing(Some(other)), Framing::Unsupported), "{other}");
        }
    }
}
