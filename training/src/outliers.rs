//! Outlier exposure (Hendrycks, Mazeika and Dietterich, 2019): besides its classes, the
//! network sees pictures of none of them, such as clothes for a digit model, and learns to
//! answer those with even probabilities. Its scores then stay low on what it was never
//! meant to classify, which is what the served "not a digit" score (the log-sum-exp of the
//! scores) looks at.

use std::path::Path;

use max_mnist_artifacts::format::Preprocessing;
use tch::{Device, Kind, Tensor};

use crate::data::{IdxDataset, KnownDataset};
use crate::letters::{LETTER_FONTS, typed_letters};
use crate::preset::Preset;
use crate::{Error, Result};

/// A set of pictures a run can take as its outliers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutlierSet {
    /// A known data set's training images.
    Dataset(KnownDataset),
    /// Letters typed in fonts ([`crate::letters`]).
    Letters,
}

impl OutlierSet {
    /// The set's name, as the weights' recipe gives it, and its `[N, 1, 28, 28]` images as a
    /// model whose uploads `procedure` prepares sees them: a known data set's training images,
    /// read from its default place and verified, or the [`crate::letters`] typed in
    /// [`LETTER_FONTS`].
    ///
    /// The image procedure keeps a picture's polarity: a page stays light, and a
    /// Fashion-MNIST product stays on black. So for such a model every image comes twice, as it
    /// is and inverted: a digit is also dark ink on a light page, as a photo of paper shows it,
    /// and a letter also light on dark. The digit procedure makes every input bright on dark,
    /// so its models see each image once.
    pub fn load(self, procedure: Preprocessing) -> Result<(String, Tensor)> {
        let (name, images) = self.load_as_prepared(procedure)?;
        Ok(match procedure {
            Preprocessing::Digit => (name, images),
            Preprocessing::Image => {
                (format!("{name}, each also inverted"), Tensor::cat(&[&images, &(1.0 - &images)], 0))
            }
        })
    }

    /// The set's name and images once, as they are: the data set's own, or the letters as
    /// `procedure` makes them.
    fn load_as_prepared(self, procedure: Preprocessing) -> Result<(String, Tensor)> {
        match self {
            OutlierSet::Dataset(known) => {
                let name = known.card().name;
                let dir = Preset::known(known)
                    .data_dir
                    .ok_or_else(|| Error::InvalidSettings(format!("{name} has no default place")))?;
                let data = IdxDataset::load_dir(&dir, Some(known.files()))?;
                Ok((
                    format!("{name} training images ({}, sha256 {})", data.train.count(), data.sha256),
                    data.train.images,
                ))
            }
            OutlierSet::Letters => {
                let fonts: Vec<&Path> = LETTER_FONTS.iter().map(Path::new).collect();
                let (images, sha256) = typed_letters(&fonts, procedure)?;
                Ok((format!("letters typed in {} fonts ({}, sha256 {sha256})", fonts.len(), images.size()[0]), images))
            }
        }
    }

    /// How to make [`OutlierSet::load`] work when it fails, or do without the set.
    pub fn hint(self) -> &'static str {
        match self {
            OutlierSet::Dataset(KnownDataset::Mnist) => "fetch it with `make data`, or leave it out of --outliers",
            OutlierSet::Dataset(KnownDataset::FashionMnist) => {
                "install it with `make fashion-data`, or leave it out of --outliers"
            }
            OutlierSet::Letters => "install their fonts with `make letter-fonts`, or leave them out of --outliers",
        }
    }
}

/// Pictures of none of the classes, from one or more sets, and how much their loss counts.
#[derive(Debug)]
pub struct Outliers {
    /// What they are, for the weights' recipe, e.g. `Fashion-MNIST training images (60000,
    /// sha256 …)`.
    pub name: String,
    /// `[N, C, H, W]` in [0, 1], as the model's preprocessing makes its inputs (for the digit
    /// procedure bright on dark, for the image procedure in both polarities).
    pub images: Tensor,
    /// `[N]`: each image's chance of being drawn, so that every set is drawn as often as
    /// another, however many images it has.
    chances: Tensor,
    /// Weight of their loss beside the classes' cross-entropy.
    pub weight: f64,
}

impl Clone for Outliers {
    fn clone(&self) -> Outliers {
        Outliers {
            name: self.name.clone(),
            images: self.images.shallow_clone(),
            chances: self.chances.shallow_clone(),
            weight: self.weight,
        }
    }
}

impl Outliers {
    /// The standard weight: the paper's 0.5.
    pub const WEIGHT: f64 = 0.5;

    /// The outliers of `sets`, each a name and its `[N, C, H, W]` images, drawn evenly from
    /// every set; with `weight`. The sets must agree in `C, H, W`, and none may be empty.
    pub fn evenly(sets: Vec<(String, Tensor)>, weight: f64) -> Result<Outliers> {
        if let Some((name, _)) = sets.iter().find(|(_, images)| images.size().first().is_none_or(|&count| count == 0)) {
            return Err(Error::InvalidSettings(format!("the outlier set {name} has no images")));
        }
        let chances: Vec<Tensor> = sets
            .iter()
            .map(|(_, images)| Tensor::full([images.size()[0]], 1.0 / images.size()[0] as f64, tch::kind::FLOAT_CPU))
            .collect();
        let images: Vec<&Tensor> = sets.iter().map(|(_, images)| images).collect();
        let images = Tensor::f_cat(&images, 0)?;
        let name = sets.into_iter().map(|(name, _)| name).collect::<Vec<_>>().join(" and ");
        Ok(Outliers { name, images, chances: Tensor::cat(&chances, 0), weight })
    }

    /// `count` of the images, drawn with replacement from libtorch's seeded generator, on
    /// `device`.
    pub fn draw(&self, count: i64, device: Device) -> Tensor {
        let picked = self.chances.multinomial(count, true).to_device(self.images.device());
        self.images.index_select(0, &picked).to_device(device)
    }

    /// How the recipe describes them.
    pub fn describe(outliers: Option<&Outliers>) -> String {
        outliers.map_or_else(
            || "none".to_owned(),
            |outliers| format!("{}, weight {}, towards even probabilities", outliers.name, outliers.weight),
        )
    }
}

/// The cross-entropy between the softmax of `logits` `[N, classes]` and even probabilities,
/// averaged over the batch: at its least, `ln(classes)`, when every class scores the same.
pub fn loss_towards_even(logits: &Tensor) -> Tensor {
    -logits.log_softmax(1, Kind::Float).mean_dim(1, false, Kind::Float).mean(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_is_least_when_every_class_scores_the_same() {
        let even = Tensor::full([4, 10], 3.0, tch::kind::FLOAT_CPU);
        assert!((loss_towards_even(&even).double_value(&[]) - 10f64.ln()).abs() < 1e-6);
        let confident = Tensor::from_slice(&[9.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]).view([1, 10]);
        assert!(loss_towards_even(&confident).double_value(&[]) > 10f64.ln() + 1.0);
    }

    #[test]
    fn draws_come_from_the_images_and_follow_the_seed() {
        let images = Tensor::arange(5, tch::kind::FLOAT_CPU).view([5, 1, 1, 1]);
        let outliers = Outliers::evenly(vec![("five".into(), images)], Outliers::WEIGHT).unwrap();
        tch::manual_seed(4);
        let first = outliers.draw(32, Device::Cpu);
        tch::manual_seed(4);
        assert!(first.equal(&outliers.draw(32, Device::Cpu)));
        assert_eq!(first.size(), [32, 1, 1, 1]);
        let values = Vec::<f32>::try_from(first.flatten(0, -1)).unwrap();
        assert!(
            values.iter().all(|value| (0.0..5.0).contains(value)) && values.iter().any(|value| *value != values[0])
        );
        assert_eq!(Outliers::describe(None), "none");
        assert_eq!(Outliers::describe(Some(&outliers)), "five, weight 0.5, towards even probabilities");
    }

    #[test]
    fn a_model_taking_pictures_as_they_are_sees_each_outlier_in_both_polarities() {
        let load = |procedure| {
            OutlierSet::Letters
                .load(procedure)
                .unwrap_or_else(|error| panic!("{error}: {}", OutlierSet::Letters.hint()))
        };
        let (digit_name, as_digits) = load(Preprocessing::Digit);
        let (image_name, as_images) = load(Preprocessing::Image);
        let count = as_digits.size()[0];
        assert_eq!(as_images.size(), [2 * count, 1, 28, 28]);
        assert!(!digit_name.contains("inverted"), "{digit_name}");
        assert!(image_name.ends_with(", each also inverted"), "{image_name}");
        let (typed, inverted) = (as_images.narrow(0, 0, count), as_images.narrow(0, count, count));
        // Typed by the image procedure, each page's top row stays light; the digit procedure
        // makes it black.
        let top_row = |images: &Tensor| images.narrow(2, 0, 1).amin(&[1, 2, 3][..], false).min().double_value(&[]);
        assert!(top_row(&typed) > 0.85 && top_row(&as_digits) < 1e-6);
        assert!((typed + inverted).allclose(
            &Tensor::ones([count, 1, 28, 28], tch::kind::FLOAT_CPU),
            1e-6,
            1e-6,
            false
        ));
    }

    #[test]
    fn a_small_set_is_drawn_as_often_as_a_large_one_and_an_empty_one_is_refused() {
        let large = Tensor::zeros([1000, 1, 1, 1], tch::kind::FLOAT_CPU);
        let small = Tensor::ones([10, 1, 1, 1], tch::kind::FLOAT_CPU);
        let outliers = Outliers::evenly(vec![("large".into(), large), ("small".into(), small)], 0.5).unwrap();
        assert_eq!(outliers.name, "large and small");
        tch::manual_seed(5);
        let share_of_small = outliers.draw(4000, Device::Cpu).mean(Kind::Float).double_value(&[]);
        assert!((share_of_small - 0.5).abs() < 0.03, "half the draws come from the small set: {share_of_small}");
        let empty = Tensor::zeros([0, 1, 1, 1], tch::kind::FLOAT_CPU);
        let error = Outliers::evenly(vec![("none".into(), empty)], 0.5).unwrap_err().to_string();
        assert!(error.contains("the outlier set none has no images"), "{error}");
    }
}
