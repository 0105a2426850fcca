//! Letters as outliers: letters typed in fonts from Debian's packages, dark on a light page,
//! each made into the network's input by the serving preprocessing of the model being trained,
//! so that a digit model learns that a drawing of strokes can still be none of its digits, and
//! a clothes model that a page with writing on it is none of its products.
//!
//! The fonts are not those of the evaluation's letters (`bench/preprocess/make_eval_sets.py`
//! types those in six other packages' fonts), and the letters that these fonts may draw as a
//! digit (`O`, `l`, `S`, `Z`, `B`, `g`, ...) are left out: the network is not taught to doubt
//! a digit.

use std::path::Path;

use ab_glyph::{Font, FontVec, PxScale, point};
use image::{GrayImage, Luma};
use max_mnist_artifacts::format::Preprocessing;
use max_mnist_core::preprocess::Preprocessor;
use sha2::{Digest, Sha256};
use tch::Tensor;

use crate::render::encode_png;
use crate::{Error, Result};

/// The fonts the letters are typed in: eleven handwriting-like ones, a marker's among them,
/// and four printed ones, from the Debian packages `make letter-fonts` installs.
pub const LETTER_FONTS: [&str; 15] = [
    "/usr/share/fonts/truetype/breip/Breip.ttf",
    "/usr/share/fonts/opentype/bwht/BecauseWeBuild-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeConnect-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeCreate-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeLearn-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeMentor-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeOrganize-Regular.otf",
    "/usr/share/fonts/truetype/femkeklaver/femkeklaver.ttf",
    "/usr/share/fonts/truetype/sjfonts/Delphine.ttf",
    "/usr/share/fonts/truetype/sjfonts/SteveHand.ttf",
    "/usr/share/fonts/truetype/yusei-magic/YuseiMagic-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Italic.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Italic.ttf",
];

/// The letters typed: all but those a font may draw like a digit (`OoQD` as 0, `IiljJ` as 1,
/// `Zz` as 2, `Ss` as 5, `bG` as 6, `T` as 7, `B` as 8, `gq` as 9), like part of one (`Cc`
/// as an open 0 or 6, `Pp` as an 8 or 9 left open, `F` as a 7 or an open 8: taught as no
/// digit, they cost 0.4-0.7 points on the canvas sets), and `d` and `t`, which the
/// capitals-only fonts draw as `D` and `T`.
pub const OUTLIER_LETTERS: &str = "AEHKMNRUVWXYaefhkmnruvwxy";

/// The glyph heights the letters are typed at, in pixels: a small one, whose strokes the
/// preprocessing enlarges, and a large one.
const GLYPH_HEIGHTS: [f32; 2] = [28.0, 72.0];
/// The page's and the ink's grey levels.
const PAGE: f32 = 235.0;
const INK: f32 = 25.0;
/// Space around a glyph, as a share of its height.
const MARGIN: f32 = 0.5;

/// Every letter of [`OUTLIER_LETTERS`] in every font of `fonts` at each glyph height, as
/// `procedure` makes the network's inputs `[N, 1, 28, 28]` in [0, 1] of them (the digit
/// procedure bright on dark, the image procedure still dark on a light page), and the SHA-256
/// of their pixels. A letter a font lacks is skipped.
pub fn typed_letters(fonts: &[&Path], procedure: Preprocessing) -> Result<(Tensor, String)> {
    let preprocessor = Preprocessor::mnist_sized(procedure, u64::from(u32::MAX));
    let shape = preprocessor.shape();
    let mut pixels: Vec<f32> = Vec::new();
    for &path in fonts {
        let bytes = std::fs::read(path).map_err(Error::io("cannot read the font", path))?;
        let font = FontVec::try_from_vec(bytes)
            .map_err(|error| Error::InvalidSettings(format!("{}: {error}", path.display())))?;
        for letter in OUTLIER_LETTERS.chars() {
            for height in GLYPH_HEIGHTS {
                if let Some(page) = typed(&font, letter, height) {
                    let png = encode_png(&page).map_err(Error::io("cannot encode a letter typed in", path))?;
                    pixels.extend(preprocessor.model_input(&png)?.pixels());
                }
            }
        }
    }
    let count = (pixels.len() / shape.len()) as i64;
    if count == 0 {
        return Err(Error::InvalidSettings("no font typed any letter".into()));
    }
    let digest = hex::encode(Sha256::digest(pixels.iter().flat_map(|value| value.to_le_bytes()).collect::<Vec<u8>>()));
    let [channels, height, width] = [shape.channels, shape.height, shape.width].map(i64::from);
    Ok((Tensor::from_slice(&pixels).view([count, channels, height, width]), digest))
}

/// `letter` in `font`, `height` pixels tall, dark on a light page; none when the font has no
/// outline for it.
fn typed(font: &FontVec, letter: char, height: f32) -> Option<GrayImage> {
    let id = font.glyph_id(letter);
    if id.0 == 0 {
        return None;
    }
    let outline = font.outline_glyph(id.with_scale_and_position(PxScale::from(height), point(0.0, 0.0)))?;
    let bounds = outline.px_bounds();
    let margin = (height * MARGIN).ceil();
    let width = (bounds.width() + 2.0 * margin).ceil() as u32;
    let tall = (bounds.height() + 2.0 * margin).ceil() as u32;
    let mut page = GrayImage::from_pixel(width, tall, Luma([PAGE as u8]));
    outline.draw(|x, y, coverage| {
        let (x, y) = (x + margin as u32, y + margin as u32);
        if x < width && y < tall {
            page.put_pixel(x, y, Luma([(PAGE - coverage.clamp(0.0, 1.0) * (PAGE - INK)).round() as u8]));
        }
    });
    Some(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every outlier letter typed in DejaVu Sans by `procedure`, checked for its count, and
    /// the pixels' digest.
    fn typed_in_dejavu(procedure: Preprocessing) -> (Tensor, String) {
        let font = Path::new(LETTER_FONTS[11]);
        assert!(font.is_file(), "this test types in {}: make letter-fonts", font.display());
        let (letters, digest) = typed_letters(&[font], procedure).unwrap();
        assert_eq!(letters.size(), [(OUTLIER_LETTERS.len() * GLYPH_HEIGHTS.len()) as i64, 1, 28, 28]);
        assert_eq!(digest.len(), 64);
        (letters, digest)
    }

    #[test]
    fn letters_are_typed_as_the_network_sees_digits_and_none_is_digit_like() {
        let (letters, digest) = typed_in_dejavu(Preprocessing::Digit);
        // Bright ink on a black field, inside MNIST's 20-pixel box.
        assert!((letters.max().double_value(&[]) - 1.0).abs() < 1e-6);
        let border = letters.narrow(2, 0, 1).abs().max().double_value(&[]);
        assert!(border < 1e-6, "the top row stays background, got {border}");
        assert!(OUTLIER_LETTERS.chars().all(|letter| !"OoQDdIiljJZzSsbGTtBgqCcPpF".contains(letter)));
        assert_eq!(typed_in_dejavu(Preprocessing::Digit).1, digest, "typing is deterministic");
    }

    #[test]
    fn the_image_procedure_keeps_the_page_light_and_the_ink_dark() {
        let (letters, digest) = typed_in_dejavu(Preprocessing::Image);
        assert_ne!(digest, typed_in_dejavu(Preprocessing::Digit).1);
        // Every picture keeps its page (the top row) light and has dark ink in its middle.
        let page = letters.narrow(2, 0, 1).amin(&[1, 2, 3][..], false);
        let ink = letters.narrow(2, 7, 14).narrow(3, 7, 14).amin(&[1, 2, 3][..], false);
        let lightest_ink = ink.max().double_value(&[]);
        let darkest_page = page.min().double_value(&[]);
        assert!(darkest_page > 0.85, "the page stays light, got {darkest_page}");
        assert!(lightest_ink < 0.5, "each letter's ink is dark, got {lightest_ink}");
    }

    #[test]
    fn a_missing_font_is_named() {
        let error = typed_letters(&[Path::new("/nonexistent/font.ttf")], Preprocessing::Digit).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/font.ttf"), "{error}");
    }
}
