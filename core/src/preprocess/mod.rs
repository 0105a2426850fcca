//! `pre_process`: from the bytes a client uploaded to the tensor the network takes, by the
//! procedure the model's weights ask for ([`Preprocessing`]).
//!
//! Whatever the procedure, decoding is the same: the format is sniffed from the bytes (never
//! from a file name or content type), the header's dimensions are checked against the pixel
//! limit before anything is decoded, and decoding runs under `image::Limits`. A large
//! [`jpeg`] is decoded at the smallest reduced scale the procedure can use, and the limit
//! applies to what is decoded. Then
//! - [`digit`] turns the picture into an MNIST digit: white strokes on black, fitted to a
//!   20×20 box and centred by mass in 28×28, whatever the polarity, background and position of
//!   the ink;
//! - [`photo`] does what torchvision's standard classifier transforms do: turn it upright,
//!   convert it to the model's channels, resize its shorter side and crop the centre.
//!
//! The result is normalised with the constants that came with the weights.

mod digit;
mod jpeg;
mod photo;

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use max_mnist_artifacts::card::{ChannelNormalisation, ModelCard};
use max_mnist_artifacts::format::{Calibration, InputShape, Normalisation, Preprocessing};
use tch::Tensor;

use crate::{Error, LoadError, Result};

/// The formats accepted, each enabled in the `image` crate's features.
const SUPPORTED_FORMATS: [ImageFormat; 6] =
    [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::WebP, ImageFormat::Tiff];

/// What the network sees of one upload: intensities in [0, 1] of the model's input shape,
/// channel by channel, row by row, before normalisation.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInput {
    shape: InputShape,
    pixels: Vec<f32>,
}

impl ModelInput {
    /// The intensities, channel by channel, row by row.
    pub fn pixels(&self) -> &[f32] {
        &self.pixels
    }

    /// The shape of the input.
    pub fn shape(&self) -> InputShape {
        self.shape
    }

    /// An input given as pixels rather than as an encoded image (a tensor sent to the Open
    /// Inference Protocol route): intensities in [0, 1] for `shape`, channel by channel, row
    /// by row. Refused with [`Error::InvalidPixels`] when the count is wrong or a value is out
    /// of range (or not a number).
    pub fn from_pixels(shape: InputShape, pixels: Vec<f32>) -> Result<ModelInput> {
        let expected = shape.len();
        if pixels.len() != expected {
            return Err(Error::InvalidPixels(format!(
                "{} values for a {}×{}×{} input of {expected}",
                pixels.len(),
                shape.channels,
                shape.height,
                shape.width
            )));
        }
        if let Some((index, value)) = pixels.iter().enumerate().find(|(_, value)| !(0.0..=1.0).contains(*value)) {
            return Err(Error::InvalidPixels(format!("value {index} is {value}, outside [0, 1]")));
        }
        Ok(ModelInput { shape, pixels })
    }

    /// An all-black input of `shape` (what warms the model up).
    pub fn blank(shape: InputShape) -> ModelInput {
        ModelInput { shape, pixels: vec![0.0; shape.len()] }
    }

    /// The image as an 8-bit grayscale or RGB PNG, to show a user what the model saw.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let InputShape { channels, height, width } = self.shape;
        let plane = (height * width) as usize;
        let byte = |value: f32| (value * 255.0).round() as u8;
        let image = if channels == 3 {
            DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
                let at = (y * width + x) as usize;
                image::Rgb([0, 1, 2].map(|channel| byte(self.pixels[channel * plane + at])))
            }))
        } else {
            DynamicImage::ImageLuma8(image::GrayImage::from_fn(width, height, |x, y| {
                image::Luma([byte(self.pixels[(y * width + x) as usize])])
            }))
        };
        let mut png = Cursor::new(Vec::new());
        image.write_to(&mut png, ImageFormat::Png).map_err(|error| Error::EncodeImage(error.to_string()))?;
        Ok(png.into_inner())
    }
}

/// One image ready for the network: what it sees (to show a client) and the normalised
/// `[channels, height, width]` tensor it takes.
#[derive(Debug)]
pub struct Prepared {
    /// The input before normalisation.
    pub input: ModelInput,
    /// The normalised tensor.
    pub tensor: Tensor,
}

/// MNIST's usual normalisation: the training set's pixel mean and standard deviation.
pub const MNIST_NORMALISATION: Normalisation = Normalisation { mean: 0.1307, std: 0.3081 };

/// Turns encoded images into normalised `[channels, height, width]` tensors, by the procedure
/// a model's weights ask for. Cheap to clone and safe to share between threads, so decoding
/// can run anywhere while one thread owns the model.
#[derive(Clone, Debug)]
pub struct Preprocessor {
    procedure: Preprocessing,
    shape: InputShape,
    normalisation: ChannelNormalisation,
    max_pixels: u64,
}

impl Preprocessor {
    /// A preprocessor for the model `card` describes: its procedure, input shape and
    /// normalisation, refusing images whose header declares more than `max_pixels` pixels.
    /// A card that cannot make an input (see [`ModelCard::problem`]) is refused.
    pub fn new(card: &ModelCard, max_pixels: u64) -> std::result::Result<Preprocessor, LoadError> {
        if let Some(problem) = card.problem() {
            return Err(LoadError::Preprocessing(problem));
        }
        Ok(Preprocessor {
            procedure: card.preprocessing,
            shape: card.input_shape,
            normalisation: card.normalisation.clone(),
            max_pixels,
        })
    }

    /// The digit procedure for 28×28 grayscale inputs normalised with MNIST's usual constants
    /// (those of the committed `mnist` model), for tools and tests that load no model.
    pub fn mnist_digits(max_pixels: u64) -> Preprocessor {
        Preprocessor::mnist_sized(Preprocessing::Digit, max_pixels)
    }

    /// `procedure` for 28×28 grayscale inputs, as MNIST's and Fashion-MNIST's models take,
    /// normalised with MNIST's usual constants: for tools that make inputs like a model's
    /// without loading one.
    pub fn mnist_sized(procedure: Preprocessing, max_pixels: u64) -> Preprocessor {
        let card = ModelCard {
            description: "28×28 grayscale pictures".into(),
            architecture: "any".into(),
            labels: (0..10).map(|digit| digit.to_string()).collect(),
            input_shape: InputShape::grayscale(28),
            normalisation: ChannelNormalisation::uniform(1, MNIST_NORMALISATION.mean, MNIST_NORMALISATION.std),
            preprocessing: procedure,
            calibration: Calibration::NONE,
        };
        Preprocessor::new(&card, max_pixels).expect("a 28×28 grayscale card makes an input")
    }

    /// The input shape it makes.
    pub fn shape(&self) -> InputShape {
        self.shape
    }

    /// Step 1 of the wrapper: decodes `bytes`, makes the model's input from them by the
    /// model's procedure, and normalises it.
    pub fn pre_process(&self, bytes: &[u8]) -> Result<Prepared> {
        Ok(self.prepare(self.model_input(bytes)?))
    }

    /// An input given as pixels, normalised: the rest of step 1 for inputs that need no
    /// decoding.
    pub fn prepare(&self, input: ModelInput) -> Prepared {
        let tensor = self.to_tensor(&input);
        Prepared { input, tensor }
    }

    /// Decodes `bytes` and makes the model's input from them, as the network will see it.
    pub fn model_input(&self, bytes: &[u8]) -> Result<ModelInput> {
        let (image, orientation) = self.decode(bytes)?;
        let pixels = match self.procedure {
            Preprocessing::Digit => {
                let digit = digit::normalise(&image, orientation, self.shape.width)?;
                // A model taking colour sees the white-on-black digit in every channel.
                digit.repeat(self.shape.channels as usize)
            }
            Preprocessing::Image => photo::resize_and_crop(image, orientation, self.shape),
        };
        Ok(ModelInput { shape: self.shape, pixels })
    }

    /// `input` normalised with the card's constants, channel by channel, as a
    /// `[channels, height, width]` tensor.
    pub fn to_tensor(&self, input: &ModelInput) -> Tensor {
        let InputShape { channels, height, width } = input.shape;
        let plane = (height as usize * width as usize).max(1);
        let ChannelNormalisation { mean, std } = &self.normalisation;
        let values: Vec<f32> = input
            .pixels
            .iter()
            .enumerate()
            .map(|(index, &value)| {
                let channel = (index / plane).min(mean.len() - 1);
                (value - mean[channel]) / std[channel]
            })
            .collect();
        Tensor::from_slice(&values).view([i64::from(channels), i64::from(height), i64::from(width)])
    }

    /// The smallest picture this model's procedure can use without losing anything.
    fn needed(&self) -> jpeg::Needed {
        match self.procedure {
            Preprocessing::Digit => jpeg::Needed::LongerSide(digit::LEAST_WORKING_SIDE),
            Preprocessing::Image => jpeg::Needed::ShorterSide(self.shape.width.max(self.shape.height)),
        }
    }

    /// The picture in `bytes`, decoded within the pixel limit, and which way turns it upright
    /// (its EXIF orientation; turning it is left to the smaller working copy).
    fn decode(&self, bytes: &[u8]) -> Result<(DynamicImage, Orientation)> {
        if bytes.is_empty() {
            return Err(Error::EmptyImage);
        }
        let format = image::guess_format(bytes).map_err(|_| Error::UnsupportedImageFormat)?;
        if !SUPPORTED_FORMATS.contains(&format) {
            return Err(Error::UnsupportedImageFormat);
        }
        // The JPEG decoder fills a cut-off image with grey rather than failing, and the digit
        // found in what is left would be a confident guess: refuse what ends too early.
        if format == ImageFormat::Jpeg && !jpeg::is_complete(bytes) {
            return Err(Error::UndecodableImage("the JPEG is truncated (no end-of-image marker)".into()));
        }
        let undecodable = |error: image::ImageError| Error::UndecodableImage(error.to_string());
        // Reading the header allocates nothing, so it runs without limits; the declared size
        // is then checked against ours before any pixel is decoded.
        let mut probe = ImageReader::with_format(Cursor::new(bytes), format);
        probe.no_limits();
        let (width, height) = probe.into_dimensions().map_err(|error| match error {
            // Some decoders refuse a header whose size overflows their own arithmetic.
            image::ImageError::Limits(_) => Error::SizeBeyondDecoding { limit: self.max_pixels },
            other => undecodable(other),
        })?;
        if width == 0 || height == 0 {
            return Err(Error::UndecodableImage(format!("the image is {width}x{height} pixels")));
        }
        if format == ImageFormat::Jpeg
            && let Some(decoded) = jpeg::decode_reduced(bytes, (width, height), self.needed(), self.max_pixels)?
        {
            return Ok(decoded);
        }
        let too_many_pixels = || Error::TooManyPixels { width, height, limit: self.max_pixels };
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(too_many_pixels());
        }
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(width);
        limits.max_image_height = Some(height);
        // Room for the largest decoded buffer (32-bit float RGBA) of an image within the limit.
        limits.max_alloc = Some(self.max_pixels.saturating_mul(16).max(1 << 20));
        reader.limits(limits);
        let over_limit = |error: image::ImageError| match error {
            image::ImageError::Limits(_) => too_many_pixels(),
            other => undecodable(other),
        };
        let mut decoder = reader.into_decoder().map_err(over_limit)?;
        // A photo's EXIF orientation says which way is up; a broken tag is ignored.
        let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
        let image = DynamicImage::from_decoder(decoder).map_err(over_limit)?;
        Ok((image, orientation))
    }
}

#[cfg(test)]
mod tests {
    use image::codecs::jpeg::JpegEncoder;
    use image::{GenericImageView, GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};

    use super::*;

    const MNIST: Normalisation = MNIST_NORMALISATION;

    fn preprocessor(max_pixels: u64) -> Preprocessor {
        Preprocessor::mnist_digits(max_pixels)
    }

    fn encode(image: impl Into<DynamicImage>, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.into().write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    /// The bytes of `samples/NAME`.
    pub(super) fn sample(name: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples").join(name)).unwrap()
    }

    /// A progressive JPEG of a digit, 1600×1200 pixels.
    pub(super) fn progressive_jpeg() -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/digit-3-progressive-1600x1200.jpg"),
        )
        .unwrap()
    }

    fn model_input(bytes: &[u8]) -> ModelInput {
        preprocessor(1 << 24).model_input(bytes).unwrap()
    }

    /// MNIST test digit 3 (white on black, 28×28) as ink coverage in [0, 1], enlarged `scale` times.
    fn enlarged_ink(scale: u32) -> image::ImageBuffer<Luma<f32>, Vec<f32>> {
        let digit = image::load_from_memory(&sample("digit-3.png")).unwrap().to_luma32f();
        image::imageops::resize(&digit, 28 * scale, 28 * scale, image::imageops::FilterType::Triangle)
    }

    /// Pearson correlation between two inputs' pixels: 1 for the same picture. The reference
    /// digit shifted by one pixel scores 0.84, by two 0.58.
    fn similarity(left: &ModelInput, right: &ModelInput) -> f32 {
        let mean = |input: &ModelInput| input.pixels().iter().sum::<f32>() / input.pixels().len() as f32;
        let (left_mean, right_mean) = (mean(left), mean(right));
        let (mut product, mut left_square, mut right_square) = (0.0, 0.0, 0.0);
        for (a, b) in left.pixels().iter().zip(right.pixels()) {
            product += (a - left_mean) * (b - right_mean);
            left_square += (a - left_mean).powi(2);
            right_square += (b - right_mean).powi(2);
        }
        product / (left_square * right_square).sqrt()
    }

    /// Ink on paper: the reference digit enlarged `scale` times, as coverage, drawn in `colour`
    /// at (`left`, `top`) on a `width × height` page whose brightness is `paper(x, y)`.
    fn on_paper(
        width: u32,
        height: u32,
        scale: u32,
        left: u32,
        top: u32,
        colour: [f32; 3],
        paper: impl Fn(u32, u32) -> f32,
    ) -> RgbImage {
        let ink = enlarged_ink(scale);
        RgbImage::from_fn(width, height, |x, y| {
            let coverage = match (x.checked_sub(left), y.checked_sub(top)) {
                (Some(dx), Some(dy)) if dx < ink.width() && dy < ink.height() => ink.get_pixel(dx, dy).0[0],
                _ => 0.0,
            };
            let page = paper(x, y);
            Rgb(colour.map(|channel| ((page * (1.0 - coverage) + channel * coverage) * 255.0).round() as u8))
        })
    }

    /// Closer to the reference than the reference is to itself shifted by one pixel.
    const SAME_DIGIT: f32 = 0.86;

    fn reference() -> ModelInput {
        model_input(&sample("digit-3.png"))
    }

    /// Mean absolute difference per pixel between two inputs.
    fn mean_difference(left: &[f32], right: &[f32]) -> f32 {
        left.iter().zip(right).map(|(a, b)| (a - b).abs()).sum::<f32>() / left.len() as f32
    }

    #[test]
    fn mnist_digits_take_the_shortcut_and_the_full_steps_agree_with_it() {
        for digit in 0..10 {
            let bytes = sample(&format!("digit-{digit}.png"));
            let original = image::load_from_memory(&bytes).unwrap().to_luma8();
            let brightest = f32::from(*original.iter().max().unwrap());
            let scaled: Vec<f32> = original.iter().map(|&value| f32::from(value) / brightest).collect();
            // Exactly the upload, scaled: no step touched it.
            assert_eq!(model_input(&bytes).pixels(), &scaled[..], "digit {digit}");
            // The same picture in RGB goes through every step and comes out nearly the same.
            let rgb = encode(DynamicImage::ImageLuma8(original).to_rgb8(), ImageFormat::Png);
            let difference = mean_difference(model_input(&rgb).pixels(), &scaled);
            assert!(difference < 0.03, "digit {digit}: {difference}");
        }
    }

    #[test]
    fn a_faint_28_pixel_digit_takes_the_full_steps_and_is_stretched() {
        let original = image::load_from_memory(&sample("digit-3.png")).unwrap().to_luma8();
        let faint = GrayImage::from_fn(28, 28, |x, y| Luma([original.get_pixel(x, y).0[0] / 3]));
        let brightest = f32::from(*faint.iter().max().unwrap());
        let scaled: Vec<f32> = faint.iter().map(|&value| f32::from(value) / brightest).collect();
        let input = model_input(&encode(faint, ImageFormat::Png));
        assert_ne!(input.pixels(), &scaled[..], "a faint digit must not take the shortcut");
        assert!(similarity(&input, &reference()) > SAME_DIGIT, "{}", similarity(&input, &reference()));
    }

    #[test]
    fn an_off_centre_28_pixel_digit_takes_the_full_steps() {
        let original = image::load_from_memory(&sample("digit-3.png")).unwrap().to_luma8();
        let shifted = GrayImage::from_fn(28, 28, |x, y| match x.checked_sub(3) {
            Some(from) => *original.get_pixel(from, y),
            None => Luma([0]),
        });
        let input = model_input(&encode(shifted, ImageFormat::Png));
        assert!(similarity(&input, &reference()) > SAME_DIGIT, "{}", similarity(&input, &reference()));
    }

    #[test]
    fn finds_dark_ink_anywhere_on_light_paper() {
        for (left, top) in [(10, 10), (300, 30), (140, 190)] {
            let page = on_paper(480, 360, 6, left, top, [0.1, 0.15, 0.5], |_, _| 0.93);
            let input = model_input(&encode(page, ImageFormat::Png));
            assert!(
                similarity(&input, &reference()) > SAME_DIGIT,
                "at ({left}, {top}): {}",
                similarity(&input, &reference())
            );
        }
    }

    #[test]
    fn a_forms_printed_box_or_rule_is_not_taken_for_ink() {
        // The reference digit, 168 px, at (120, 80) on a 420×340 page; the box leaves 20 px
        // around it, the rule runs 10 px under it.
        let page = || on_paper(420, 340, 6, 120, 80, [0.05, 0.05, 0.05], |_, _| 0.97);
        let line = |page: &mut RgbImage, x: std::ops::Range<u32>, y: std::ops::Range<u32>| {
            for (x, y) in x.flat_map(|x| y.clone().map(move |y| (x, y))) {
                page.put_pixel(x, y, Rgb([40, 40, 40]));
            }
        };
        let mut boxed = page();
        for (x, y) in [(100..312, 60..63), (100..312, 265..268), (100..103, 60..268), (309..312, 60..268)] {
            line(&mut boxed, x, y);
        }
        let mut ruled = page();
        line(&mut ruled, 80..340, 258..261);
        for (what, image) in [("boxed", boxed), ("ruled", ruled)] {
            let input = model_input(&encode(image, ImageFormat::Png));
            assert!(similarity(&input, &reference()) > SAME_DIGIT, "{what}: {}", similarity(&input, &reference()));
        }
        // An upright bar (a "1") is no rule: it is the digit.
        let mut bar = RgbImage::from_pixel(300, 300, Rgb([245, 245, 245]));
        line(&mut bar, 145..155, 60..240);
        let input = model_input(&encode(bar, ImageFormat::Png));
        assert!(input.pixels().iter().any(|&pixel| pixel > 0.5), "the bar is read as ink");
    }

    #[test]
    fn ignores_shadows_and_paper_texture_in_a_jpeg_photo() {
        let texture = |x: u32, y: u32| ((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 7) as f32 / 100.0;
        let shadow = |x: u32, y: u32| 0.95 - 0.4 * x as f32 / 640.0 - texture(x, y) - 0.1 * y as f32 / 400.0;
        let page = on_paper(640, 400, 6, 380, 150, [0.05, 0.05, 0.08], shadow);
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, 60).encode_image(&page).unwrap();
        let input = model_input(&jpeg);
        assert!(similarity(&input, &reference()) > SAME_DIGIT, "{}", similarity(&input, &reference()));
    }

    #[test]
    fn follows_the_exif_orientation() {
        let upright = on_paper(300, 240, 6, 60, 40, [0.0, 0.0, 0.0], |_, _| 1.0);
        // Orientation 6: the camera stored the picture turned a quarter to the left.
        let stored = image::imageops::rotate270(&upright);
        let jpeg = max_mnist_test_support::jpeg_with_orientation_6(&stored, 90);
        let turned = model_input(&encode(stored, ImageFormat::Jpeg));
        let honoured = model_input(&jpeg);
        assert!(similarity(&honoured, &reference()) > SAME_DIGIT, "{}", similarity(&honoured, &reference()));
        assert!(similarity(&turned, &reference()) < 0.5, "without the tag the digit lies on its side");
    }

    /// A phone-sized photo: the reference digit enlarged `scale` times in dark ink on a
    /// `width × height` page, off-centre.
    fn large_photo(width: u32, height: u32, scale: u32) -> Vec<u8> {
        encode(on_paper(width, height, scale, width / 3, height / 6, [0.15; 3], |_, _| 0.88), ImageFormat::Jpeg)
    }

    /// What the general path (every pixel decoded by `image`) makes of `bytes`.
    fn fully_decoded_digit(bytes: &[u8]) -> Vec<f32> {
        let image = image::load_from_memory(bytes).unwrap();
        digit::normalise(&image, Orientation::NoTransforms, 28).unwrap()
    }

    #[test]
    fn a_12_megapixel_jpeg_is_decoded_at_an_eighth_and_reads_as_when_decoded_whole() {
        let bytes = large_photo(4032, 3024, 40);
        let preprocessor = preprocessor(16_000_000);
        let (decoded, _) = preprocessor.decode(&bytes).unwrap();
        // A longer side of at least 500 pixels, which the digit procedure uses as it is.
        assert_eq!(decoded.dimensions(), (504, 378));
        let reduced = preprocessor.model_input(&bytes).unwrap();
        let whole = fully_decoded_digit(&bytes);
        assert!(mean_difference(reduced.pixels(), &whole) < 0.02, "{}", mean_difference(reduced.pixels(), &whole));
        assert!(similarity(&reduced, &reference()) > SAME_DIGIT, "{}", similarity(&reduced, &reference()));
    }

    #[test]
    fn the_pixel_limit_applies_to_what_is_decoded() {
        // 12.2 megapixels, decoded at 1/8: 0.19 megapixels, within a 1-megapixel limit.
        let jpeg = large_photo(4032, 3024, 40);
        let input = preprocessor(1_000_000).model_input(&jpeg).unwrap();
        assert!(similarity(&input, &reference()) > SAME_DIGIT);
        // The same picture as a PNG is decoded whole, and refused unread.
        let png = encode(image::load_from_memory(&jpeg).unwrap(), ImageFormat::Png);
        assert!(matches!(preprocessor(1_000_000).model_input(&png), Err(Error::TooManyPixels { .. })));
        // A progressive JPEG's decoder keeps every coefficient of the whole picture: its full
        // size counts. 1600×1200 is 1.92 megapixels.
        let progressive = progressive_jpeg();
        assert!(matches!(preprocessor(1_000_000).model_input(&progressive), Err(Error::TooManyPixels { .. })));
        let (decoded, _) = preprocessor(2_000_000).decode(&progressive).unwrap();
        assert_eq!(decoded.dimensions(), (800, 600));
        let input = preprocessor(2_000_000).model_input(&progressive).unwrap();
        assert!(similarity(&input, &reference()) > SAME_DIGIT, "{}", similarity(&input, &reference()));
    }

    #[test]
    fn a_large_photo_for_an_image_model_is_decoded_as_small_as_its_input_allows() {
        let card = ModelCard {
            description: "a colour classifier".into(),
            architecture: "any".into(),
            labels: vec!["a".into(), "b".into()],
            input_shape: InputShape { channels: 3, height: 64, width: 96 },
            normalisation: ChannelNormalisation::uniform(3, 0.5, 0.25),
            preprocessing: Preprocessing::Image,
            calibration: Calibration::NONE,
        };
        let preprocessor = Preprocessor::new(&card, 16_000_000).unwrap();
        let bytes = large_photo(4032, 3024, 40);
        let (decoded, _) = preprocessor.decode(&bytes).unwrap();
        assert_eq!(decoded.dimensions(), (504, 378));
        let reduced = preprocessor.model_input(&bytes).unwrap();
        let whole = photo::resize_and_crop(
            image::load_from_memory(&bytes).unwrap(),
            Orientation::NoTransforms,
            card.input_shape,
        );
        assert!(mean_difference(reduced.pixels(), &whole) < 0.02, "{}", mean_difference(reduced.pixels(), &whole));
    }

    #[test]
    fn a_large_jpeg_follows_its_exif_orientation() {
        let upright = image::load_from_memory(&large_photo(2400, 1800, 30)).unwrap().to_rgb8();
        let stored = image::imageops::rotate270(&upright);
        let jpeg = max_mnist_test_support::jpeg_with_orientation_6(&stored, 90);
        let (decoded, orientation) = preprocessor(16_000_000).decode(&jpeg).unwrap();
        assert_eq!((decoded.dimensions(), orientation), ((450, 600), Orientation::Rotate90));
        let input = model_input(&jpeg);
        assert!(similarity(&input, &reference()) > SAME_DIGIT, "{}", similarity(&input, &reference()));
    }

    #[test]
    fn composites_a_transparent_canvas_onto_the_background_its_ink_assumes() {
        let ink = enlarged_ink(8);
        for colour in [[0u8, 0, 0], [255, 255, 255], [200, 30, 30]] {
            let canvas = RgbaImage::from_fn(320, 300, |x, y| match (x.checked_sub(90), y.checked_sub(60)) {
                (Some(dx), Some(dy)) if dx < ink.width() && dy < ink.height() => {
                    let [r, g, b] = colour;
                    Rgba([r, g, b, (ink.get_pixel(dx, dy).0[0] * 255.0).round() as u8])
                }
                _ => Rgba([0, 0, 0, 0]),
            });
            let input = model_input(&encode(canvas, ImageFormat::Png));
            assert!(similarity(&input, &reference()) > SAME_DIGIT, "{colour:?}: {}", similarity(&input, &reference()));
        }
    }

    #[test]
    fn fits_the_digit_in_twenty_pixels_centred_by_mass() {
        let tall_thin = GrayImage::from_fn(200, 200, |x, y| {
            Luma([if (40..52).contains(&x) && (20..170).contains(&y) { 0 } else { 255 }])
        });
        let input = model_input(&encode(tall_thin, ImageFormat::Png));
        let image = GrayImage::from_fn(28, 28, |x, y| Luma([(input.pixels()[(y * 28 + x) as usize] * 255.0) as u8]));
        let (mut mass, mut moment_x, mut moment_y, mut rows) = (0.0, 0.0, 0.0, 0);
        for y in 0..28 {
            let row: f32 = (0..28).map(|x| image.get_pixel(x, y).0[0] as f32).sum();
            rows += u32::from(row > 0.0);
            for x in 0..28 {
                let value = image.get_pixel(x, y).0[0] as f32;
                (mass, moment_x, moment_y) = (mass + value, moment_x + x as f32 * value, moment_y + y as f32 * value);
            }
        }
        assert_eq!(rows, 20, "the longer side spans the 20-pixel box");
        // Placed by whole pixels, as MNIST was: at most half a pixel off.
        assert!((moment_x / mass - 14.0).abs() <= 0.51 && (moment_y / mass - 14.0).abs() <= 0.51);
        assert!(image.view(0, 0, 28, 28).pixels().any(|(_, _, pixel)| pixel.0[0] == 255), "strokes reach full white");
    }

    #[test]
    fn says_there_is_no_digit_in_a_blank_image() {
        let noisy_paper = RgbImage::from_fn(300, 200, |x, y| {
            let grain = ((x * 7919 + y * 104_729) % 9) as u8;
            Rgb([235 + grain, 232 + grain, 225 + grain])
        });
        let blanks = [
            encode(noisy_paper, ImageFormat::Jpeg),
            encode(RgbaImage::from_pixel(280, 280, Rgba([0, 0, 0, 0])), ImageFormat::Png),
            encode(GrayImage::from_pixel(28, 28, Luma([0])), ImageFormat::Png),
            encode(GrayImage::from_pixel(64, 64, Luma([255])), ImageFormat::Png),
        ];
        for (index, blank) in blanks.iter().enumerate() {
            assert!(matches!(preprocessor(1 << 24).model_input(blank), Err(Error::NoDigit)), "blank {index}");
        }
    }

    #[test]
    fn odd_shapes_give_an_answer_or_no_digit_never_a_panic() {
        let stroke = |width: u32, height: u32| {
            GrayImage::from_fn(width, height, |x, y| Luma([if x % 7 == 3 || y % 11 == 5 { 0 } else { 255 }]))
        };
        for (width, height) in [(1, 1), (2, 2), (1, 4000), (4000, 1), (3, 1000), (1000, 3), (29, 28), (513, 2)] {
            for image in [stroke(width, height), GrayImage::from_pixel(width, height, Luma([128]))] {
                match preprocessor(1 << 24).model_input(&encode(image, ImageFormat::Png)) {
                    Ok(input) => assert_eq!(input.pixels().len(), 28 * 28, "{width}x{height}"),
                    Err(error) => assert!(matches!(error, Error::NoDigit), "{width}x{height}: {error}"),
                }
            }
        }
    }

    #[test]
    fn normalises_with_the_weights_constants() {
        let input = reference();
        let tensor = preprocessor(1 << 20).to_tensor(&input);
        assert_eq!(tensor.size(), [1, 28, 28]);
        let brightest = input.pixels().iter().copied().fold(0.0, f32::max);
        assert!((tensor.max().double_value(&[]) as f32 - (brightest - MNIST.mean) / MNIST.std).abs() < 1e-5);
        assert!((tensor.min().double_value(&[]) as f32 - (0.0 - MNIST.mean) / MNIST.std).abs() < 1e-5);
    }

    #[test]
    fn encodes_what_the_model_saw_as_a_28_pixel_png() {
        let input = reference();
        let png = image::load_from_memory(&input.to_png().unwrap()).unwrap().to_luma8();
        assert_eq!(png.dimensions(), (28, 28));
        let expected: Vec<u8> = input.pixels().iter().map(|&value| (value * 255.0).round() as u8).collect();
        assert_eq!(png.into_raw(), expected);
    }

    #[test]
    fn reads_every_committed_sample_format() {
        for name in ["digit-0.png", "digit-7.jpg", "digit-3-rgb.png", "digit-5-rgba.png"] {
            let prepared = preprocessor(1 << 20).pre_process(&sample(name)).unwrap();
            assert_eq!(prepared.tensor.size(), [1, 28, 28], "{name}");
        }
    }

    #[test]
    fn refuses_empty_unknown_truncated_and_huge_images() {
        let preprocessor = preprocessor(100 * 100);
        assert!(matches!(preprocessor.pre_process(b""), Err(Error::EmptyImage)));
        assert!(matches!(preprocessor.pre_process(b"hello, world"), Err(Error::UnsupportedImageFormat)));
        let png = sample("digit-0.png");
        assert!(matches!(preprocessor.pre_process(&png[..png.len() / 2]), Err(Error::UndecodableImage(_))));
        // A GIF whose screen is 0×0 pixels, holding one 1×1 frame.
        let mut empty_gif = b"GIF89a\0\0\0\0\0\0\0".to_vec();
        empty_gif.extend([0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0x80, 0, 0, 0, 255, 255, 255, 2, 2, 0x44, 0x01, 0, 0x3b]);
        assert!(matches!(preprocessor.pre_process(&empty_gif), Err(Error::UndecodableImage(_))));
        let big = encode(GrayImage::new(101, 100), ImageFormat::Png);
        assert!(matches!(preprocessor.pre_process(&big), Err(Error::TooManyPixels { width: 101, height: 100, .. })));
    }
}
