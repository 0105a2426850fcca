//! Data augmentation: each training batch is warped by a random affine transform per image
//! (a small rotation, scale and shift), so the network also learns digits that are tilted,
//! thinner or off-centre, as real uploads are. It runs on whole batches with libtorch's
//! `affine_grid` and `grid_sample`, on the training device, and draws from libtorch's seeded
//! generator, so a run is reproducible.

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
}

impl Augmentation {
    /// No augmentation at all.
    pub const NONE: Augmentation = Augmentation { max_rotation_degrees: 0.0, max_scale: 0.0, max_shift: 0.0 };

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
        // theta maps output coordinates to input coordinates: [[s·cos, -s·sin, tx], [s·sin, s·cos, ty]].
        let cos = angle.cos() * &scale;
        let sin = angle.sin() * &scale;
        let theta = Tensor::stack(&[&cos, &(-&sin), &shift_x, &sin, &cos, &shift_y], 1).view([count, 2, 3]);
        let grid = Tensor::affine_grid_generator(&theta, images.size(), false);
        // interpolation 0 = bilinear, padding 0 = zeros.
        images.grid_sampler(&grid, 0, 0, false)
    }

    /// A one-line description for the weights' metadata and TensorBoard.
    pub fn describe(&self) -> String {
        if !self.is_enabled() {
            return "none".to_owned();
        }
        format!(
            "random affine: rotation ±{}°, scale ±{}%, shift ±{}% of the side",
            self.max_rotation_degrees,
            self.max_scale * 100.0,
            self.max_shift * 100.0
        )
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
        let shift_only = Augmentation { max_rotation_degrees: 0.0, max_scale: 0.0, max_shift: 0.1 };
        let warped = shift_only.apply(&image);
        assert_eq!(warped.size(), image.size());
        assert!(!warped.equal(&image), "some image moved");
        // Corners stay background, and a shift of at most 2.8 px keeps most of the 8×8 square.
        assert_eq!(warped.narrow(2, 0, 2).narrow(3, 0, 2).abs().sum(Kind::Float).double_value(&[]), 0.0);
        let ink_per_image = warped.sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float);
        assert!(ink_per_image.min().double_value(&[]) > 40.0, "{ink_per_image}");
    }
}
