//! Calibration, fitted after training on images the network never trained on: a temperature
//! that makes the served probability mean what it says, and a domain threshold that tells an
//! input like none of the classes (a letter, a T-shirt, to a digit model) from one of them.
//!
//! A network's softmax is well calibrated on test images like its training images, and
//! overconfident on what users send: digits blurred by a thumbnail, a marker's thick strokes,
//! a slanted photo. So the temperature is fitted (by the lowest cross-entropy, temperature
//! scaling) on the validation split together with [`user_like_variants`] of it, which are what
//! such uploads look like once preprocessing has made them the network's input. Dividing the
//! logits by one number never changes which class wins, so accuracy stays as it was.
//!
//! The domain score is the log-sum-exp of the logits (the negative of their free energy, Liu
//! et al., 2020), and its threshold lets through [`IN_DOMAIN_PASS_RATE`] of the validation
//! split's images.
//!
//! Both are judged by the expected calibration error over [`CALIBRATION_BINS`] equal-width bins
//! of the top probability, on the test set and on its own user-like variants, which the fit
//! never saw.

use max_mnist_artifacts::format::{Calibration, Normalisation};
use max_mnist_core::network::Net;
use max_mnist_core::wrapper::{calibrated_probabilities as probabilities, domain_scores};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::Result;
use crate::augment::{Augmentation, Enlargement, thumbnail, widened};
use crate::data::Split;
use crate::train::evaluate;

/// Bins of the expected calibration error and of the reliability diagram.
pub const CALIBRATION_BINS: usize = 15;
/// The share of held-out in-domain images whose domain score reaches the threshold.
pub const IN_DOMAIN_PASS_RATE: f64 = 0.99;
/// The range searched for the temperature.
const TEMPERATURES: (f64, f64) = (0.05, 20.0);
/// The sides the `low-res` variant shrinks a 28-pixel image to, a quarter of the images each:
/// MNIST's digit is 20 of the 28 pixels tall, so these leave it 8 to 15 pixels tall.
const LOW_RES_SIDES: [i64; 4] = [11, 14, 17, 21];
/// Golden-section steps: each keeps 62% of the interval, so 60 reach far below f32's precision.
const SEARCH_STEPS: usize = 60;

/// What calibration fitted, and how served probabilities and the domain check fare with it.
#[derive(Clone, Debug, Serialize)]
pub struct CalibrationReport {
    /// What the weights' metadata gets.
    pub calibration: Calibration,
    /// The test set, each of its user-like variants, and all of those variants together.
    pub sets: Vec<SetCalibration>,
}

/// One set's figures at temperature 1 (before) and at the fitted temperature (after).
#[derive(Clone, Debug, Serialize)]
pub struct SetCalibration {
    /// `test`, `test, low-res`, ...
    pub name: String,
    /// How many images.
    pub images: usize,
    /// Top-1 accuracy, the same before and after.
    pub accuracy: f64,
    /// Expected calibration error before.
    pub ece_before: f64,
    /// Expected calibration error after.
    pub ece_after: f64,
    /// The share of its images the domain threshold lets through.
    pub in_domain: f64,
    /// The reliability diagram's bins before.
    pub bins_before: Vec<ReliabilityBin>,
    /// The reliability diagram's bins after.
    pub bins_after: Vec<ReliabilityBin>,
}

impl CalibrationReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a calibration report holds only strings, integers and floats")
    }

    /// The report as a Markdown table, one row a set.
    pub fn to_markdown(&self) -> String {
        let calibration = &self.calibration;
        let threshold = calibration.domain_threshold.map_or("none".to_owned(), |threshold| format!("{threshold:.3}"));
        let mut text = format!(
            "Temperature {:.3}, domain threshold {threshold}, fitted on {}.\n\n| set | images | accuracy | ECE \
             before | ECE after | in domain |\n|---|---:|---:|---:|---:|---:|\n",
            calibration.temperature, calibration.fitted_on
        );
        for set in &self.sets {
            text += &format!(
                "| {} | {} | {:.2}% | {:.2}% | {:.2}% | {:.2}% |\n",
                set.name,
                set.images,
                set.accuracy * 100.0,
                set.ece_before * 100.0,
                set.ece_after * 100.0,
                set.in_domain * 100.0
            );
        }
        text
    }
}

/// Fits the temperature on `validation` and, for `digits`, its user-like variants (which are
/// digit variants: they say nothing of other pictures), and the domain threshold on
/// `validation` alone, then measures both on `test` and its own variants.
pub(crate) fn calibrate(
    net: &Net,
    validation: &Split,
    test: &Split,
    normalisation: Normalisation,
    device: Device,
    digits: bool,
) -> Result<CalibrationReport> {
    // The logits of a split and of each of its variants, named ("" for the split itself); every
    // variant has the split's labels.
    let with_variants = |split: &Split| -> Result<Vec<(&'static str, Tensor)>> {
        let mut named = vec![("", evaluate(net, split, normalisation, device)?.logits)];
        let variants = if digits { user_like_variants(&split.images) } else { Vec::new() };
        for (name, images) in variants {
            let variant = Split { images, labels: split.labels.shallow_clone() };
            named.push((name, evaluate(net, &variant, normalisation, device)?.logits));
        }
        Ok(named)
    };
    let joined = |named: &[(&str, Tensor)]| {
        Tensor::cat(&named.iter().map(|(_, logits)| logits.shallow_clone()).collect::<Vec<_>>(), 0)
    };
    let repeated = |labels: &Tensor, times: usize| labels.repeat([times as i64]);

    let fitting = with_variants(validation)?;
    let temperature = fit_temperature(&joined(&fitting), &repeated(&validation.labels, fitting.len()));
    let domain_threshold =
        threshold_passing(&Vec::<f32>::try_from(&domain_scores(&fitting[0].1))?, IN_DOMAIN_PASS_RATE);
    let calibration = Calibration {
        temperature: temperature as f32,
        domain_threshold,
        fitted_on: format!(
            "temperature: the lowest cross-entropy on the {} validation images{}; domain threshold: passes {}% of \
             the validation images",
            validation.count(),
            if digits { " and their low-res, thick, thin and slanted variants" } else { "" },
            IN_DOMAIN_PASS_RATE * 100.0
        ),
    };

    let measured = with_variants(test)?;
    let mut sets = Vec::new();
    for (name, logits) in &measured {
        let name = if name.is_empty() { "test".to_owned() } else { format!("test, {name}") };
        sets.push(measure(name, logits, &test.labels, &calibration)?);
    }
    let variants = &measured[1..];
    if !variants.is_empty() {
        let labels = repeated(&test.labels, variants.len());
        sets.push(measure("test, all variants".to_owned(), &joined(variants), &labels, &calibration)?);
    }
    Ok(CalibrationReport { calibration, sets })
}

/// One set's figures under `calibration`.
fn measure(name: String, logits: &Tensor, labels: &Tensor, calibration: &Calibration) -> Result<SetCalibration> {
    let bins_before = reliability(&probabilities(logits, 1.0), labels)?;
    let bins_after = reliability(&probabilities(logits, f64::from(calibration.temperature)), labels)?;
    let images = labels.size()[0] as usize;
    let right = logits.argmax(-1, false).eq_tensor(labels).sum(Kind::Int64).int64_value(&[]);
    let in_domain = match calibration.domain_threshold {
        Some(threshold) => domain_scores(logits).ge(f64::from(threshold)).sum(Kind::Int64).int64_value(&[]),
        None => images as i64,
    };
    let share = |count: i64| if images == 0 { 0.0 } else { count as f64 / images as f64 };
    Ok(SetCalibration {
        name,
        images,
        accuracy: share(right),
        ece_before: expected_calibration_error(&bins_before),
        ece_after: expected_calibration_error(&bins_after),
        in_domain: share(in_domain),
        bins_before,
        bins_after,
    })
}

/// The answers whose top probability falls in one bin of a reliability diagram.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// How many answers.
    pub count: usize,
    /// Their mean top probability (0 for an empty bin).
    pub confidence: f64,
    /// The share of them that are right (0 for an empty bin).
    pub accuracy: f64,
}

/// The [`CALIBRATION_BINS`] bins of `probabilities` (`[N, classes]`) against the true `labels`.
pub fn reliability(probabilities: &Tensor, labels: &Tensor) -> Result<Vec<ReliabilityBin>> {
    let (confidence, predicted) = probabilities.max_dim(-1, false);
    let confidence = Vec::<f64>::try_from(&confidence.to_kind(Kind::Double))?;
    let right = Vec::<bool>::try_from(&predicted.eq_tensor(labels))?;
    let mut sums = vec![(0usize, 0.0, 0usize); CALIBRATION_BINS];
    for (confidence, right) in confidence.into_iter().zip(right) {
        let bin = ((confidence * CALIBRATION_BINS as f64) as usize).min(CALIBRATION_BINS - 1);
        sums[bin].0 += 1;
        sums[bin].1 += confidence;
        sums[bin].2 += usize::from(right);
    }
    Ok(sums
        .into_iter()
        .map(|(count, confidence, right)| {
            let share = |total: f64| if count == 0 { 0.0 } else { total / count as f64 };
            ReliabilityBin { count, confidence: share(confidence), accuracy: share(right as f64) }
        })
        .collect())
}

/// The expected calibration error of `bins`: each bin's gap between accuracy and confidence,
/// weighted by its share of the answers.
pub fn expected_calibration_error(bins: &[ReliabilityBin]) -> f64 {
    let total: usize = bins.iter().map(|bin| bin.count).sum();
    if total == 0 {
        return 0.0;
    }
    bins.iter().map(|bin| (bin.accuracy - bin.confidence).abs() * bin.count as f64 / total as f64).sum()
}

/// The temperature with the lowest mean cross-entropy of `logits / temperature` against
/// `labels`, searched between 0.05 and 20 (the loss is convex in the inverse temperature, so
/// golden-section search on its logarithm finds it).
pub fn fit_temperature(logits: &Tensor, labels: &Tensor) -> f64 {
    let loss = |log_temperature: f64| {
        (logits.to_kind(Kind::Double) / log_temperature.exp()).cross_entropy_for_logits(labels).double_value(&[])
    };
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut low, mut high) = (TEMPERATURES.0.ln(), TEMPERATURES.1.ln());
    let mut left = high - ratio * (high - low);
    let mut right = low + ratio * (high - low);
    let (mut left_loss, mut right_loss) = (loss(left), loss(right));
    for _ in 0..SEARCH_STEPS {
        if left_loss <= right_loss {
            (high, right, right_loss) = (right, left, left_loss);
            left = high - ratio * (high - low);
            left_loss = loss(left);
        } else {
            (low, left, left_loss) = (left, right, right_loss);
            right = low + ratio * (high - low);
            right_loss = loss(right);
        }
    }
    ((low + high) / 2.0).exp()
}

/// The highest threshold that at least `pass_rate` of `scores` reach.
pub fn threshold_passing(scores: &[f32], pass_rate: f64) -> Option<f32> {
    let mut sorted: Vec<f32> = scores.iter().copied().filter(|score| score.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    let failing = ((1.0 - pass_rate) * sorted.len() as f64).floor() as usize;
    sorted.get(failing.min(sorted.len().saturating_sub(1))).copied()
}

/// What a batch `[N, 1, H, W]` of images in [0, 1] (ink bright on dark, as the network sees
/// them) looks like when users send such pictures, one variant each, drawn from libtorch's
/// seeded generator:
///
/// - `low-res`: shrunk so that the digit is 8 to 15 pixels tall, and enlarged back, as a
///   thumbnail is; every other image blurred further;
/// - `thick`: strokes widened by 2 or 4 pixels (grey dilation), as a marker draws them;
/// - `thin`: only the middle of each stroke kept, as a fine pen draws it;
/// - `slanted`: turned up to 20°, resized by up to 20% and shifted by up to 10% of the side,
///   as a photo taken at an angle.
pub fn user_like_variants(images: &Tensor) -> Vec<(&'static str, Tensor)> {
    let count = images.size()[0];
    let quarters = |transform: &dyn Fn(i64, &Tensor) -> Tensor| {
        let parts: Vec<Tensor> = (0..4)
            .map(|quarter| {
                let (start, end) = (count * quarter / 4, count * (quarter + 1) / 4);
                transform(quarter, &images.narrow(0, start, end - start))
            })
            .collect();
        Tensor::cat(&parts, 0)
    };
    let low_res = quarters(&|quarter, part| {
        let enlargement = if quarter % 2 == 0 { Enlargement::Smooth } else { Enlargement::Blurred };
        thumbnail(part, LOW_RES_SIDES[quarter as usize], enlargement)
    });
    let thick = quarters(&|quarter, part| widened(part, if quarter % 2 == 0 { 1 } else { 2 }));
    let thin = images.pow_tensor_scalar(4);
    let slanted =
        Augmentation { max_rotation_degrees: 20.0, max_scale: 0.2, max_shift: 0.1, ..Augmentation::NONE }.apply(images);
    vec![("low-res", low_res), ("thick", thick), ("thin", thin), ("slanted", slanted)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_digits_are_calibrated_on_digit_variants() {
        tch::manual_seed(5);
        let store = tch::nn::VarStore::new(Device::Cpu);
        let net = Net::new(&store.root(), max_mnist_core::network::Architecture::default(), 10);
        let split = || Split {
            images: Tensor::rand([40, 1, 28, 28], tch::kind::FLOAT_CPU),
            labels: Tensor::randint(10, [40], (Kind::Int64, Device::Cpu)),
        };
        let (validation, test) = (split(), split());
        let normalisation = Normalisation { mean: 0.5, std: 0.5 };
        let names = |report: &CalibrationReport| report.sets.iter().map(|set| set.name.clone()).collect::<Vec<_>>();

        let digits = calibrate(&net, &validation, &test, normalisation, Device::Cpu, true).unwrap();
        assert_eq!(
            names(&digits),
            ["test", "test, low-res", "test, thick", "test, thin", "test, slanted", "test, all variants"]
        );
        assert!(digits.calibration.fitted_on.contains("slanted variants"), "{}", digits.calibration.fitted_on);

        let clothes = calibrate(&net, &validation, &test, normalisation, Device::Cpu, false).unwrap();
        assert_eq!(names(&clothes), ["test"]);
        assert!(!clothes.calibration.fitted_on.contains("variants"), "{}", clothes.calibration.fitted_on);
        assert!(
            clothes.calibration.fitted_on.starts_with("temperature: the lowest cross-entropy on the 40 validation")
        );
    }

    #[test]
    fn the_fitted_temperature_is_the_one_the_labels_were_drawn_with() {
        tch::manual_seed(3);
        let logits = Tensor::randn([20_000, 10], tch::kind::FLOAT_CPU) * 4.0;
        // Labels drawn from softmax(logits / 2.5): a model overconfident by that temperature.
        let labels = probabilities(&logits, 2.5).multinomial(1, true).squeeze_dim(1);
        let fitted = fit_temperature(&logits, &labels);
        assert!((fitted - 2.5).abs() < 0.1, "{fitted}");
        let before = expected_calibration_error(&reliability(&probabilities(&logits, 1.0), &labels).unwrap());
        let after = expected_calibration_error(&reliability(&probabilities(&logits, fitted), &labels).unwrap());
        assert!(before > 0.1 && after < 0.02, "ECE {before} before, {after} after");
    }

    #[test]
    fn the_calibration_error_weighs_each_bins_gap_by_its_share() {
        // Two answers at 0.95, both right; two at 0.55, one right.
        let probabilities = Tensor::from_slice(&[0.95f32, 0.05, 0.95, 0.05, 0.55, 0.45, 0.55, 0.45]).view([4, 2]);
        let bins = reliability(&probabilities, &Tensor::from_slice(&[0i64, 0, 0, 1])).unwrap();
        assert_eq!(bins.len(), CALIBRATION_BINS);
        assert_eq!(bins[14].count, 2);
        assert_eq!((bins[8].count, bins[8].accuracy), (2, 0.5));
        assert!((expected_calibration_error(&bins) - 0.05).abs() < 1e-6);
        assert_eq!(expected_calibration_error(&[]), 0.0);
    }

    #[test]
    fn the_threshold_lets_the_asked_share_through() {
        let scores: Vec<f32> = (0..1000).map(|score| score as f32).collect();
        let threshold = threshold_passing(&scores, 0.99).unwrap();
        assert_eq!(threshold, 10.0);
        assert_eq!(scores.iter().filter(|&&score| score >= threshold).count(), 990);
        assert_eq!(threshold_passing(&[f32::NAN, 2.0], 0.99), Some(2.0));
        assert_eq!(threshold_passing(&[], 0.99), None);
    }

    #[test]
    fn the_variants_change_strokes_and_resolution_but_keep_the_batch() {
        tch::manual_seed(1);
        // A bar two pixels wide, down the middle of a 28×28 image.
        let images = Tensor::zeros([8, 1, 28, 28], tch::kind::FLOAT_CPU);
        let _ = images.narrow(3, 13, 2).narrow(2, 6, 16).fill_(1.0);
        let ink = |images: &Tensor| images.sum(Kind::Float).double_value(&[]) / 8.0;
        let variants = user_like_variants(&images);
        let names: Vec<&str> = variants.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["low-res", "thick", "thin", "slanted"]);
        for (name, variant) in &variants {
            assert_eq!(variant.size(), images.size(), "{name}");
        }
        assert!(ink(&variants[1].1) > 2.0 * ink(&images), "thicker strokes carry more ink");
        let blurred = variants[0].1.gt(0.0).sum(Kind::Int64).int64_value(&[]);
        assert!(blurred > images.gt(0.0).sum(Kind::Int64).int64_value(&[]), "a thumbnail's edges spread");
    }
}
