//! Data augmentation: each training batch is warped by a random affine transform per image
//! (a small rotation, scale and shift, and for pictures whose mirror image is as likely, such
//! as clothes, a horizontal flip), so the network also learns digits that are tilted, thinner
//! or off-centre, or a shoe that points the other way, as real uploads are. It runs on whole
//! batches with libtorch's `affine_grid` and `grid_sample`, on the training device, and draws
//! from libtorch's seeded generator, so a run is reproducible.

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
}

impl Augmentation {
    /// No augmentation at all.
    pub const NONE: Augmentation =
        Augmentation { max_rotation_degrees: 0.0, max_scale: 0.0, max_shift: 0.0, flip: false };

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
        let scale = uniform(self.max_scale) + 1.0;
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
        let cos = angle.cos() * &scale;
        let sin = angle.sin() * &scale;
        let theta = Tensor::stack(&[&(&cos * &mirror), &(-&sin), &shift_x, &(&sin * &mirror), &cos, &shift_y], 1)
            .view([count, 2, 3]);
        let grid = Tensor::affine_grid_generator(&theta, images.size(), false);
        // interpolation 0 = bilinear, padding 0 = zeros.
        images.grid_sampler(&grid, 0, 0, false)
    }

    /// A one-line description for the weights' metadata and TensorBoard.
    pub fn describe(&self) -> String {
        if !self.is_enabled() {
            return "none".to_owned();
        }
        let mut parts = Vec::new();
        let affine = Augmentation { flip: false, ..*self };
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
        parts.join("; ")
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

    #[test]
    fn the_description_names_what_is_on() {
        let digits = Augmentation { max_rotation_degrees: 12.0, max_scale: 0.1, max_shift: 0.075, flip: false };
        assert_eq!(digits.describe(), "random affine: rotation ±12°, scale ±10%, shift ±7.5% of the side");
        let flip_only = Augmentation { flip: true, ..Augmentation::NONE };
        assert_eq!(flip_only.describe(), "random horizontal flip");
        assert!(flip_only.is_enabled());
        assert_eq!(Augmentation::NONE.describe(), "none");
    }
}
