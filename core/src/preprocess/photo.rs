//! The `image` procedure, as torchvision's standard classifier transforms do it
//! (`Resize(size)`, `CenterCrop(size)`, `ToTensor()`): the picture is turned upright by its
//! EXIF orientation, scaled so that it covers the model's input (its shorter side fits,
//! keeping the aspect ratio, with a triangle filter, i.e. bilinear with antialiasing),
//! cropped to the centre and converted to the model's channels, each value in [0, 1].
//! Transparency is dropped, as `convert("RGB")` does.

use image::DynamicImage;
use image::imageops::FilterType;
use image::metadata::Orientation;
use max_mnist_artifacts::format::InputShape;

/// `image`, upright, resized to cover `shape`, centre-cropped to it, as intensities in
/// [0, 1], channel by channel, row by row.
pub(crate) fn resize_and_crop(mut image: DynamicImage, orientation: Orientation, shape: InputShape) -> Vec<f32> {
    image.apply_orientation(orientation);
    let fitted = image.resize_to_fill(shape.width, shape.height, FilterType::Triangle);
    if shape.channels == 3 {
        let rgb = fitted.to_rgb32f();
        let plane = (shape.width * shape.height) as usize;
        let mut pixels = vec![0.0; 3 * plane];
        for (at, pixel) in rgb.pixels().enumerate() {
            for channel in 0..3 {
                pixels[channel * plane + at] = pixel.0[channel];
            }
        }
        pixels
    } else {
        fitted.to_luma32f().into_raw()
    }
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage};

    use super::*;

    #[test]
    fn covers_the_input_and_keeps_the_centre_in_each_channel() {
        // A wide picture: red left third, green middle, blue right third.
        let picture = RgbImage::from_fn(300, 100, |x, _| match x / 100 {
            0 => Rgb([255, 0, 0]),
            1 => Rgb([0, 255, 0]),
            _ => Rgb([0, 0, 255]),
        });
        let shape = InputShape { channels: 3, height: 8, width: 8 };
        let pixels = resize_and_crop(DynamicImage::ImageRgb8(picture), Orientation::NoTransforms, shape);
        assert_eq!(pixels.len(), 3 * 64);
        // The shorter side fits, so only the green middle third is left after the crop.
        let mean = |channel: usize| pixels[channel * 64..(channel + 1) * 64].iter().sum::<f32>() / 64.0;
        assert!(mean(1) > 0.95 && mean(0) < 0.05 && mean(2) < 0.05, "{} {} {}", mean(0), mean(1), mean(2));
    }

    #[test]
    fn grayscale_models_get_the_luminance_turned_upright() {
        // A tall picture, white on top, black below, stored turned a quarter to the left.
        let upright = image::GrayImage::from_fn(20, 40, |_, y| image::Luma([if y < 20 { 255 } else { 0 }]));
        let stored = image::imageops::rotate270(&upright);
        let shape = InputShape::grayscale(4);
        let pixels = resize_and_crop(DynamicImage::ImageLuma8(stored), Orientation::Rotate90, shape);
        assert_eq!(pixels.len(), 16);
        // The crop keeps the middle rows: white at the top, black at the bottom (and the
        // filter's blend of the two at the edge between them).
        assert!(pixels[..4].iter().all(|&value| value > 0.9), "{pixels:?}");
        assert!(pixels[12..].iter().all(|&value| value < 0.1), "{pixels:?}");
    }
}
