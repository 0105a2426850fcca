//! `pre_process`: from the bytes a client uploaded to the tensor the network takes.
//!
//! The format is sniffed from the bytes (never from a file name or content type), the
//! header's dimensions are checked against the pixel limit before anything is decoded, and
//! decoding runs under `image::Limits`. The image becomes grayscale with transparency
//! composited onto black (MNIST's background), is resized to the network's input size and
//! normalised with the constants that came with the weights.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{ImageFormat, ImageReader};
use tch::Tensor;

use crate::artifact::Normalisation;
use crate::{Error, Result};

/// The formats accepted, each enabled in the `image` crate's features.
const SUPPORTED_FORMATS: [ImageFormat; 6] =
    [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::WebP, ImageFormat::Tiff];

/// Turns encoded images into normalised `[1, size, size]` tensors. Cheap to clone and safe
/// to share between threads, so decoding can run anywhere while one thread owns the model.
#[derive(Clone, Debug)]
pub struct Preprocessor {
    input_size: u32,
    normalisation: Normalisation,
    max_pixels: u64,
}

impl Preprocessor {
    /// A preprocessor for a network taking `input_size`² pixels normalised with
    /// `normalisation` (both from the weights' metadata), refusing images whose header
    /// declares more than `max_pixels` pixels.
    pub fn new(input_size: u32, normalisation: Normalisation, max_pixels: u64) -> Preprocessor {
        Preprocessor { input_size, normalisation, max_pixels }
    }

    /// Decodes `bytes` and returns the normalised `[1, size, size]` float tensor.
    pub fn pre_process(&self, bytes: &[u8]) -> Result<Tensor> {
        let pixels = self.model_input_pixels(bytes)?;
        let Normalisation { mean, std } = self.normalisation;
        let values: Vec<f32> = pixels.iter().map(|&value| (f32::from(value) / 255.0 - mean) / std).collect();
        let side = i64::from(self.input_size);
        Ok(Tensor::from_slice(&values).view([1, side, side]))
    }

    /// The `size × size` grayscale pixels (white ink on black) the network will see.
    fn model_input_pixels(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        if bytes.is_empty() {
            return Err(Error::EmptyImage);
        }
        let format = image::guess_format(bytes).map_err(|_| Error::UnsupportedImageFormat)?;
        if !SUPPORTED_FORMATS.contains(&format) {
            return Err(Error::UnsupportedImageFormat);
        }
        let undecodable = |error: image::ImageError| Error::UndecodableImage(error.to_string());
        // Reading the header allocates nothing, so it runs without limits; the declared size
        // is then checked against ours before any pixel is decoded.
        let mut probe = ImageReader::with_format(Cursor::new(bytes), format);
        probe.no_limits();
        let (width, height) = probe.into_dimensions().map_err(undecodable)?;
        let too_many_pixels = Error::TooManyPixels { width, height, limit: self.max_pixels };
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(too_many_pixels);
        }
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(width);
        limits.max_image_height = Some(height);
        // Room for the largest decoded buffer (32-bit float RGBA) of an image within the limit.
        limits.max_alloc = Some(self.max_pixels.saturating_mul(16).max(1 << 20));
        reader.limits(limits);
        let decoded = reader.decode().map_err(|error| match error {
            image::ImageError::Limits(_) => too_many_pixels,
            other => undecodable(other),
        })?;

        let gray_alpha = decoded.to_luma_alpha8();
        let composited = image::GrayImage::from_fn(width, height, |x, y| {
            let [luma, alpha] = gray_alpha.get_pixel(x, y).0;
            image::Luma([((u16::from(luma) * u16::from(alpha) + 127) / 255) as u8])
        });
        let resized = image::imageops::resize(&composited, self.input_size, self.input_size, FilterType::Triangle);
        Ok(resized.into_raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{INPUT_SIZE, MNIST_MEAN, MNIST_STD};

    fn preprocessor(max_pixels: u64) -> Preprocessor {
        Preprocessor::new(INPUT_SIZE, Normalisation { mean: MNIST_MEAN, std: MNIST_STD }, max_pixels)
    }

    fn encode(image: image::DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples").join(name)).unwrap()
    }

    #[test]
    fn normalises_black_and_white_with_the_weights_constants() {
        let mut image = image::GrayImage::new(56, 56);
        for x in 0..28 {
            for y in 0..56 {
                image.put_pixel(x, y, image::Luma([255]));
            }
        }
        let tensor = preprocessor(1 << 20).pre_process(&encode(image.into(), ImageFormat::Png)).unwrap();
        assert_eq!(tensor.size(), [1, 28, 28]);
        let white = (1.0 - MNIST_MEAN) / MNIST_STD;
        let black = -MNIST_MEAN / MNIST_STD;
        assert!((tensor.double_value(&[0, 10, 2]) as f32 - white).abs() < 1e-5);
        assert!((tensor.double_value(&[0, 10, 25]) as f32 - black).abs() < 1e-5);
    }

    #[test]
    fn composites_transparency_onto_black() {
        let image = image::RgbaImage::from_pixel(28, 28, image::Rgba([255, 255, 255, 0]));
        let tensor = preprocessor(1 << 20).pre_process(&encode(image.into(), ImageFormat::Png)).unwrap();
        let black = -MNIST_MEAN / MNIST_STD;
        assert!((tensor.max().double_value(&[]) as f32 - black).abs() < 1e-5);
    }

    #[test]
    fn reads_every_committed_sample_format() {
        for name in ["digit-0.png", "digit-7.jpg", "digit-3-rgb.png", "digit-5-rgba.png"] {
            let tensor = preprocessor(1 << 20).pre_process(&sample(name)).unwrap();
            assert_eq!(tensor.size(), [1, 28, 28], "{name}");
        }
    }

    #[test]
    fn refuses_empty_unknown_truncated_and_huge_images() {
        let preprocessor = preprocessor(100 * 100);
        assert!(matches!(preprocessor.pre_process(b""), Err(Error::EmptyImage)));
        assert!(matches!(preprocessor.pre_process(b"hello, world"), Err(Error::UnsupportedImageFormat)));
        let png = sample("digit-0.png");
        assert!(matches!(preprocessor.pre_process(&png[..png.len() / 2]), Err(Error::UndecodableImage(_))));
        let big = encode(image::GrayImage::new(101, 100).into(), ImageFormat::Png);
        assert!(matches!(preprocessor.pre_process(&big), Err(Error::TooManyPixels { width: 101, height: 100, .. })));
    }
}
