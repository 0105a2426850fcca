//! The classifier network and the constants that training and serving must agree on.
//!
//! The constants here are the defaults training writes into the weights' metadata
//! ([`crate::artifact::ModelMetadata`]); serving reads them back from the weights, so the
//! two can never disagree.

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, ModuleT};

/// Side of the square grayscale image the network takes (MNIST's 28×28).
pub const INPUT_SIZE: u32 = 28;
/// Number of classes: the digits 0-9.
pub const NUM_CLASSES: i64 = 10;
/// Mean of MNIST's training pixels scaled to [0, 1].
pub const MNIST_MEAN: f32 = 0.1307;
/// Standard deviation of MNIST's training pixels scaled to [0, 1].
pub const MNIST_STD: f32 = 0.3081;

/// The class labels, in output order.
pub fn digit_labels() -> Vec<String> {
    (0..NUM_CLASSES).map(|digit| digit.to_string()).collect()
}

/// The networks this crate can build; the name travels in the weights' metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Architecture {
    /// Three 3×3 conv + batch-norm + ReLU + max-pool blocks (16, 32, 64 channels), then a
    /// 128-unit hidden layer with dropout: ~99k parameters, ~2 MMAC per image.
    #[serde(rename = "cnn-bn-16-32-64")]
    CnnBn16x32x64,
}

impl Architecture {
    /// The name stored in the weights' metadata and shown by `/model/metadata`.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::CnnBn16x32x64 => "cnn-bn-16-32-64",
        }
    }
}

/// The classifier: maps `[N, 1, 28, 28]` normalised images to `[N, 10]` logits.
#[derive(Debug)]
pub struct Net {
    blocks: Vec<ConvBlock>,
    hidden: nn::Linear,
    output: nn::Linear,
}

#[derive(Debug)]
struct ConvBlock {
    conv: nn::Conv2D,
    norm: nn::BatchNorm,
}

impl ConvBlock {
    fn new(path: &nn::Path, in_channels: i64, out_channels: i64) -> ConvBlock {
        let conv_config = nn::ConvConfig { padding: 1, bias: false, ..Default::default() };
        ConvBlock {
            conv: nn::conv2d(path / "conv", in_channels, out_channels, 3, conv_config),
            norm: nn::batch_norm2d(path / "norm", out_channels, Default::default()),
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv).apply_t(&self.norm, train).relu().max_pool2d_default(2)
    }
}

const DROPOUT: f64 = 0.3;

impl Net {
    /// Creates the network's variables under `root`, with names that do not depend on
    /// creation order (`block1.conv.weight`, ..., `output.bias`).
    pub fn new(root: &nn::Path, architecture: Architecture) -> Net {
        match architecture {
            Architecture::CnnBn16x32x64 => {
                let channels = [1, 16, 32, 64];
                let blocks = channels
                    .windows(2)
                    .enumerate()
                    .map(|(index, pair)| ConvBlock::new(&(root / format!("block{}", index + 1)), pair[0], pair[1]))
                    .collect();
                // 28 → 14 → 7 → 3 after three 2×2 poolings.
                let flat = 64 * 3 * 3;
                Net {
                    blocks,
                    hidden: nn::linear(root / "hidden", flat, 128, Default::default()),
                    output: nn::linear(root / "output", 128, NUM_CLASSES, Default::default()),
                }
            }
        }
    }
}

impl ModuleT for Net {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let features = self.blocks.iter().fold(xs.shallow_clone(), |xs, block| block.forward_t(&xs, train));
        features.flatten(1, -1).apply(&self.hidden).relu().dropout(DROPOUT, train).apply(&self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_batch_of_images_to_ten_logits_each() {
        let store = nn::VarStore::new(tch::Device::Cpu);
        let net = Net::new(&store.root(), Architecture::CnnBn16x32x64);
        let logits = net.forward_t(&Tensor::zeros([3, 1, 28, 28], tch::kind::FLOAT_CPU), false);
        assert_eq!(logits.size(), [3, NUM_CLASSES]);
    }

    #[test]
    fn the_metadata_name_is_the_serialised_name() {
        let architecture = Architecture::CnnBn16x32x64;
        assert_eq!(serde_json::to_value(architecture).unwrap(), architecture.name());
    }

    #[test]
    fn variable_names_are_stable() {
        let store = nn::VarStore::new(tch::Device::Cpu);
        let _net = Net::new(&store.root(), Architecture::CnnBn16x32x64);
        let mut names: Vec<String> = store.variables().into_keys().collect();
        names.sort();
        assert!(names.contains(&"block1.conv.weight".to_string()), "{names:?}");
        assert!(names.contains(&"block3.norm.running_var".to_string()), "{names:?}");
        assert!(names.contains(&"output.bias".to_string()), "{names:?}");
    }
}
