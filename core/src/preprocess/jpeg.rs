//! Large JPEGs decoded at reduced scale.
//!
//! A JPEG stores 8×8 blocks of DCT coefficients, and a decoder may compute each block at 1/2,
//! 1/4 or 1/8 of its size in the inverse DCT. A 12-megapixel phone photo decoded at 1/4 is
//! 1008×756 pixels, all that the digit procedure's 512-pixel working copy needs, for a
//! fraction of the cost of decoding every pixel and shrinking them afterwards. The pixel limit
//! applies to what is actually decoded: the reduced picture, or for a progressive JPEG (whose
//! decoder keeps every coefficient of the full picture until the last scan) the full one.
//!
//! Small pictures, JPEGs this decoder does not reduce (lossless, CMYK, 16-bit) and any it
//! cannot read are left to the general path, so they are read exactly as before.

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};
use jpeg_decoder::{CodingProcess, Decoder, PixelFormat};

use crate::{Error, Result};

/// The smallest picture a procedure can use without losing anything to the reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Needed {
    /// The longer side at least this long (the digit procedure's working copy).
    LongerSide(u32),
    /// The shorter side at least this long (a picture resized to cover the model's input,
    /// whichever way its orientation turns it).
    ShorterSide(u32),
}

impl Needed {
    /// Whether a picture of `width`×`height` is enough.
    fn met_by(self, width: u32, height: u32) -> bool {
        match self {
            Needed::LongerSide(side) => width.max(height) >= side,
            Needed::ShorterSide(side) => width.min(height) >= side,
        }
    }
}

/// The JPEG in `bytes`, of `width`×`height` pixels as its header says, decoded at the
/// smallest scale that still meets `needed`, with its EXIF orientation; `None` when that scale
/// is 1 or this decoder cannot reduce or read it, so that the general path decodes it. A
/// picture that would decode to more than `max_pixels` pixels is refused with
/// [`Error::TooManyPixels`].
pub(crate) fn decode_reduced(
    bytes: &[u8],
    (width, height): (u32, u32),
    needed: Needed,
    max_pixels: u64,
) -> Result<Option<(DynamicImage, Orientation)>> {
    // Chosen from the header's size alone, so that a small JPEG costs no second header parse.
    let Some((reduced_width, reduced_height)) = [1, 2, 4]
        .into_iter()
        .map(|eighths| reduced((width, height), eighths))
        .find(|&(reduced_width, reduced_height)| needed.met_by(reduced_width, reduced_height))
    else {
        return Ok(None);
    };
    let mut decoder = Decoder::new(bytes);
    let Some(info) = decoder.read_info().ok().and(decoder.info()) else { return Ok(None) };
    if info.coding_process == CodingProcess::Lossless
        || !matches!(info.pixel_format, PixelFormat::L8 | PixelFormat::RGB24)
    {
        return Ok(None);
    }
    let decoded_pixels = match info.coding_process {
        CodingProcess::DctProgressive => u64::from(width) * u64::from(height),
        _ => u64::from(reduced_width) * u64::from(reduced_height),
    };
    if decoded_pixels > max_pixels {
        return Err(Error::TooManyPixels { width, height, limit: max_pixels });
    }
    // Both fit in u16: they are at most the header's sides, which are u16 in a JPEG.
    if decoder.scale(reduced_width as u16, reduced_height as u16).ok()
        != Some((reduced_width as u16, reduced_height as u16))
    {
        return Ok(None);
    }
    decoder.set_max_decoding_buffer_size(usize::try_from(decoded_pixels.saturating_mul(3)).unwrap_or(usize::MAX));
    let Ok(pixels) = decoder.decode() else { return Ok(None) };
    let orientation = decoder.exif_data().and_then(Orientation::from_exif_chunk).unwrap_or(Orientation::NoTransforms);
    let image = match info.pixel_format {
        PixelFormat::L8 => GrayImage::from_raw(reduced_width, reduced_height, pixels).map(DynamicImage::ImageLuma8),
        _ => RgbImage::from_raw(reduced_width, reduced_height, pixels).map(DynamicImage::ImageRgb8),
    };
    Ok(image.map(|image| (image, orientation)))
}

/// The size of a `width`×`height` JPEG decoded at `eighths`/8 scale, rounded up as decoders
/// round it.
fn reduced((width, height): (u32, u32), eighths: u32) -> (u32, u32) {
    ((width * eighths).div_ceil(8), (height * eighths).div_ceil(8))
}
