//! Data augmentation: each training batch is warped by a random affine transform per image
//! (a small rotation, scale and shift, and for pictures whose mirror image is as likely, such
//! as clothes, a horizontal flip), so the network also learns digits that are tilted, thinner
//! or off-centre, or a shoe that points the other way, as real uploads are. A share of the
//! images can also be redrawn as users send digits that MNIST lacks: with a marker's thick
//! strokes, or as a thumbnail, shrunk and enlarged back. It runs on whole batches with
//! libtorch's pooling, `affine_grid` and `grid_sample`, on the training device, and draws from
//! libtorch's seeded generator, so a run is reproducible.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Ranges of the random transform; each image draws uniformly within ± each range.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Augmentation {
    /// Largest rotation, in degrees.
    pub max_rotation_degrees: f64,
    /// Largest change of size, as a fraction (0.1 = 90% to 110%).
    pub max_scale: f64,
    /// Largest shift along each axis, as a fraction of the image side.
    pub max_shift: f64,
    /// Mirror half of the images left to right, at random. Not for digits: a mirrored 2 is no
    /// digit.
    pub flip: bool,
    /// Share of the images whose strokes are widened by 2, 4 or 6 pixels (grey dilation) and
    /// then shrunk back to their size, as a marker draws a digit.
    #[serde(default)]
    pub thick_strokes: f64,
    /// Share of the images made thumbnails: shrunk to 11 to 20 pixels a side (the digit 8 to
    /// 14 pixels tall) and enlarged back, blocky, smooth or blurred.
    #[serde(default)]
    pub low_resolution: f64,
}

/// Stroke widenings of [`Augmentation::thick_strokes`]: the dilation's radius in pixels, each
/// drawn as often. A digit 20 pixels tall widened by `r` spans `20 + 2r`.
const WIDENINGS: [i64; 3] = [1, 2, 3];
/// Height of an MNIST digit in its 28-pixel frame, which a widened digit is shrunk back to.
const DIGIT_SIDE: f64 = 20.0;
/// Sides a thumbnail of [`Augmentation::low_resolution`] is shrunk to, each drawn as often.
const THUMBNAIL_SIDES: [i64; 4] = [11, 14, 17, 20];

/// How a thumbnail is enlarged back.
#[derive(Clone, Copy)]
pub(crate) enum Enlargement {
    /// Each pixel a block.
    Blocky,
    /// Bilinear.
    Smooth,
    /// Bilinear, then a 3×3 box blur.
    Blurred,
}

const ENLARGEMENTS: [Enlargement; 3] = [Enlargement::Blocky, Enlargement::Smooth, Enlargement::Blurred];

impl Augmentation {
    /// No augmentation at all.
    pub const NONE: Augmentation = Augmentation {
        max_rotation_degrees: 0.0,
        max_scale: 0.0,
        max_shift: 0.0,
        flip: false,
        thick_strokes: 0.0,
        low_resolution: 0.0,
    };

    /// Whether this changes images at all.
    pub fn is_enabled(&self) -> bool {
        *self != Augmentation::NONE
    }

    /// Warps a batch `[N, C, H, W]` of images whose background is 0; pixels pulled in from
    /// outside the frame are background.
    pub fn apply(&self, images: &Tensor) -> Tensor {
        if !self.is_enabled() {
            return images.shallow_clone();
        }
        let count = images.size()[0];
        let options = (Kind::Float, images.device());
        let uniform = |range: f64| (Tensor::rand([count], options) * 2.0 - 1.0) * range;
        let angle = uniform(self.max_rotation_degrees * PI / 180.0);
        let mut scale = uniform(self.max_scale) + 1.0;
        // affine_grid works in coordinates from -1 to 1, so a shift of a fraction f of the
        // side is 2f there.
        let shift_x = uniform(2.0 * self.max_shift);
        let shift_y = uniform(2.0 * self.max_shift);
        // theta maps output coordinates to input coordinates: [[s·cos, -s·sin, tx], [s·sin, s·cos, ty]],
        // its first column negated for a flipped image (x read from -x). Drawn last and only when
        // asked for, so that the other draws, and runs without flips, are as they were.
        let mirror = if self.flip {
            Tensor::rand([count], options).lt(0.5).to_kind(Kind::Float) * -2.0 + 1.0
        } else {
            Tensor::ones([count], options)
        };
        // A widened digit is shrunk back by the warp itself: its scale grows by (20 + 2r) / 20.
        let mut images = images.shallow_clone();
        if self.thick_strokes > 0.0 {
            let choice = draw_choice(count, self.thick_strokes, WIDENINGS.len(), options);
            for (index, radius) in WIDENINGS.into_iter().enumerate() {
                images = change_chosen(&images, &choice, index, |chosen| widened(chosen, radius));
                let shrink = (DIGIT_SIDE + 2.0 * radius as f64) / DIGIT_SIDE;
                scale = change_chosen(&scale, &choice, index, |chosen| chosen * shrink);
            }
        }
        let cos = angle.cos() * &scale;
        let sin = angle.sin() * &scale;
        let theta = Tensor::stack(&[&(&cos * &mirror), &(-&sin), &shift_x, &(&sin * &mirror), &cos, &shift_y], 1)
            .view([count, 2, 3]);
        let grid = Tensor::affine_grid_generator(&theta, images.size(), false);
        // interpolation 0 = bilinear, padding 0 = zeros.
        let warped = images.grid_sampler(&grid, 0, 0, false);
        if self.low_resolution > 0.0 { thumbnails(&warped, self.low_resolution) } else { warped }
    }

    /// A one-line description for the weights' metadata and TensorBoard.
    pub fn describe(&self) -> String {
        if !self.is_enabled() {
            return "none".to_owned();
        }
        let mut parts = Vec::new();
        let affine = Augmentation {
            max_rotation_degrees: self.max_rotation_degrees,
            max_scale: self.max_scale,
            max_shift: self.max_shift,
            ..Augmentation::NONE
        };
        if affine.is_enabled() {
            parts.push(format!(
                "random affine: rotation ±{}°, scale ±{}%, shift ±{}% of the side",
                self.max_rotation_degrees,
                self.max_scale * 100.0,
                self.max_shift * 100.0
            ));
        }
        if self.flip {
            parts.push("random horizontal flip".to_owned());
        }
        if self.thick_strokes > 0.0 {
            parts.push(format!("thick strokes for {}%", self.thick_strokes * 100.0));
        }
        if self.low_resolution > 0.0 {
            parts.push(format!("thumbnails for {}%", self.low_resolution * 100.0));
        }
        parts.join("; ")
    }
}

/// Per image, which of `choices` equally likely changes it gets, drawn for a `share` of the
/// `count` images; -1 for the others.
fn draw_choice(count: i64, share: f64, choices: usize, options: (Kind, tch::Device)) -> Tensor {
    let draw = Tensor::rand([count], options);
    let choice = (&draw * (choices as f64 / share)).floor().to_kind(Kind::Int64).clamp_max(choices as i64 - 1);
    choice.where_self(&draw.lt(share), &Tensor::full([count], -1, (Kind::Int64, options.1)))
}

/// `batch` with the items whose `choice` is `index` replaced by `change` of them, computed on
/// those items alone.
fn change_chosen(batch: &Tensor, choice: &Tensor, index: usize, change: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let chosen = choice.eq(index as i64).nonzero().squeeze_dim(1);
    if chosen.numel() == 0 {
        return batch.shallow_clone();
    }
    batch.index_copy(0, &chosen, &change(&batch.index_select(0, &chosen)))
}

/// A `share` of the batch `images` made a [`thumbnail`] of one of [`THUMBNAIL_SIDES`],
/// enlarged back by one of [`ENLARGEMENTS`], as an upscaled thumbnail or tiny scan looks.
fn thumbnails(images: &Tensor, share: f64) -> Tensor {
    let combinations = THUMBNAIL_SIDES.len() * ENLARGEMENTS.len();
    let choice = draw_choice(images.size()[0], share, combinations, (Kind::Float, images.device()));
    let mut result = images.shallow_clone();
    for (index, (small, enlargement)) in
        THUMBNAIL_SIDES.iter().flat_map(|small| ENLARGEMENTS.iter().map(move |how| (*small, *how))).enumerate()
    {
        result = change_chosen(&result, &choice, index, |chosen| thumbnail(chosen, small, enlargement));
    }
    result
}

/// `images` `[N, C, H, W]` with their strokes widened by `radius` pixels on every side (grey
/// dilation), as a marker draws them.
pub(crate) fn widened(images: &Tensor, radius: i64) -> Tensor {
    let kernel = 2 * radius + 1;
    images.max_pool2d([kernel, kernel], [1, 1], [radius, radius], [1, 1], false)
}

/// `images` `[N, C, H, W]` shrunk by area averaging to `small` pixels a side and enlarged back
/// to their size by `enlargement`.
pub(crate) fn thumbnail(images: &Tensor, small: i64, enlargement: Enlargement) -> Tensor {
    let size = images.size();
    let side = [size[2], size[3]];
    let shrunk = images.adaptive_avg_pool2d([small, small]);
    match enlargement {
        Enlargement::Blocky => shrunk.upsample_nearest2d(side, None, None),
        Enlargement::Smooth => shrunk.upsample_bilinear2d(side, false, None, None),
        Enlargement::Blurred => shrunk.upsample_bilinear2d(side, false, None, None).avg_pool2d(
            [3, 3],
            [1, 1],
            [1, 1],
            false,
            false,
            None::<i64>,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Tensor {
        let image = Tensor::zeros([1, 1, 28, 28], tch::kind::FLOAT_CPU);
        let _ = image.narrow(2, 10, 8).narrow(3, 10, 8).fill_(1.0);
        image
    }

    #[test]
    fn no_augmentation_leaves_images_alone() {
        let image = square();
        assert!(Augmentation::NONE.apply(&image).equal(&image));
    }

    #[test]
    fn a_shift_moves_the_ink_and_keeps_the_background() {
        tch::manual_seed(3);
        let image = square().repeat([16, 1, 1, 1]);
        let shift_only = Augmentation { max_shift: 0.1, ..Augmentation::NONE };
        let warped = shift_only.apply(&image);
        assert_eq!(warped.size(), image.size());
        assert!(!warped.equal(&image), "some image moved");
        // Corners stay background, and a shift of at most 2.8 px keeps most of the 8×8 square.
        assert_eq!(warped.narrow(2, 0, 2).narrow(3, 0, 2).abs().sum(Kind::Float).double_value(&[]), 0.0);
        let ink_per_image = warped.sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float);
        assert!(ink_per_image.min().double_value(&[]) > 40.0, "{ink_per_image}");
    }

    #[test]
    fn a_flip_mirrors_about_half_the_images_exactly() {
        tch::manual_seed(5);
        let image = Tensor::zeros([1, 1, 28, 28], tch::kind::FLOAT_CPU);
        let _ = image.narrow(2, 10, 8).narrow(3, 2, 8).fill_(1.0); // Ink off-centre, to the left.
        let batch = image.repeat([64, 1, 1, 1]);
        let warped = Augmentation { flip: true, ..Augmentation::NONE }.apply(&batch);
        let mirrored = image.flip([3]);
        let (mut kept, mut flipped) = (0, 0);
        for index in 0..64 {
            let one = warped.get(index).unsqueeze(0);
            if (&one - &image).abs().max().double_value(&[]) < 1e-5 {
                kept += 1;
            } else if (&one - &mirrored).abs().max().double_value(&[]) < 1e-5 {
                flipped += 1;
            }
        }
        assert_eq!(kept + flipped, 64, "each image is itself or its mirror image");
        assert!((16..=48).contains(&flipped), "{flipped} of 64 flipped");
    }

    /// The rows and columns that hold ink (above 0.1) in the one image `[1, 1, H, W]`.
    fn ink_extent(image: &Tensor) -> (i64, i64) {
        let ink = image.squeeze().gt(0.1);
        let lines = |dim: i64| ink.any_dim(dim, false).sum(Kind::Int64).int64_value(&[]);
        (lines(1), lines(0))
    }

    #[test]
    fn thick_strokes_widen_the_ink_and_keep_the_digits_size() {
        tch::manual_seed(7);
        // A bar 2 pixels wide and 20 tall, the height of an MNIST digit.
        let bar = Tensor::zeros([1, 1, 28, 28], tch::kind::FLOAT_CPU);
        let _ = bar.narrow(2, 4, 20).narrow(3, 13, 2).fill_(1.0);
        let batch = bar.repeat([64, 1, 1, 1]);
        let warped = Augmentation { thick_strokes: 0.5, ..Augmentation::NONE }.apply(&batch);
        let (mut kept, mut widened) = (0, 0);
        for index in 0..64 {
            let one = warped.get(index).unsqueeze(0);
            let (rows, columns) = ink_extent(&one);
            if one.equal(&bar) || (&one - &bar).abs().max().double_value(&[]) < 1e-5 {
                kept += 1;
            } else {
                widened += 1;
                assert!((19..=21).contains(&rows), "a widened digit is shrunk back to its height: {rows} rows");
                assert!((4..=7).contains(&columns), "a widened stroke is 4 to 7 pixels wide: {columns} columns");
            }
        }
        assert_eq!(kept + widened, 64);
        assert!((16..=48).contains(&widened), "{widened} of 64 widened");
    }

    #[test]
    fn thumbnails_lose_detail_but_keep_the_picture() {
        tch::manual_seed(9);
        // A checkerboard of single pixels in the middle: detail no thumbnail keeps.
        let board = Tensor::zeros([1, 1, 28, 28], tch::kind::FLOAT_CPU);
        for row in (4..24).step_by(2) {
            let _ = board.narrow(2, row, 1).narrow(3, 4, 20).fill_(1.0);
        }
        let batch = board.repeat([60, 1, 1, 1]);
        let thumbnails = Augmentation { low_resolution: 1.0, ..Augmentation::NONE }.apply(&batch);
        assert_eq!(thumbnails.size(), batch.size());
        for index in 0..60 {
            let one = thumbnails.get(index);
            assert!(!one.equal(&board.get(0)), "every image became a thumbnail");
            let ink = one.sum(Kind::Float).double_value(&[]);
            assert!((150.0..=250.0).contains(&ink), "the thumbnail keeps about the 200 pixels' ink: {ink}");
            let contrast = one.max().double_value(&[]) - one.narrow(1, 6, 16).narrow(2, 6, 16).min().double_value(&[]);
            assert!(contrast < 0.9, "the lines blur into each other: contrast {contrast}");
        }
    }

    #[test]
    fn the_description_names_what_is_on() {
        let digits =
            Augmentation { max_rotation_degrees: 12.0, max_scale: 0.1, max_shift: 0.075, ..Augmentation::NONE };
        assert_eq!(digits.describe(), "random affine: rotation ±12°, scale ±10%, shift ±7.5% of the side");
        let flip_only = Augmentation { flip: true, ..Augmentation::NONE };
        assert_eq!(flip_only.describe(), "random horizontal flip");
        let thumbnails = Augmentation { low_resolution: 0.25, ..Augmentation::NONE };
        assert_eq!(thumbnails.describe(), "thumbnails for 25%");
        assert!(flip_only.is_enabled());
        assert_eq!(Augmentation::NONE.describe(), "none");
    }
}
