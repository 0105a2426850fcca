//! The networks a model can be: the classifiers this project trains ([`load`] builds the one
//! a weights file names and prepares it for serving) and users' TorchScript modules
//! ([`TorchScriptNet`]); [`Network`] is either, as the wrapper runs it.
//!
//! Everything a network needs besides its tensors (input shape, labels, normalisation,
//! preprocessing) travels in the weights' metadata
//! ([`max_mnist_artifacts::format::ModelMetadata`]); serving reads it back from the weights,
//! so training and serving can never disagree.

mod serving;
mod torchscript;

use std::path::Path;

use max_mnist_artifacts::format::{InputShape, ModelMetadata};
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Device, Tensor};

pub use serving::ServingNet;
pub use torchscript::TorchScriptNet;
pub(crate) use torchscript::torch_reason;

use crate::{LoadError, Result};

/// A network ready to serve.
#[derive(Debug)]
pub enum Network {
    /// One of this project's architectures, with weights from the train bin.
    Trained(ServingNet),
    /// A user's TorchScript module.
    TorchScript(TorchScriptNet),
}

impl Network {
    /// `[N, channels, height, width]` normalised images → the network's scores, without
    /// gradients.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Network::Trained(net) => Ok(net.forward(xs)),
            Network::TorchScript(module) => module.forward(xs),
        }
    }
}

/// The input every architecture here takes: one 28×28 grayscale image.
pub const INPUT_SHAPE: InputShape = InputShape::grayscale(28);

/// Builds the network that `metadata` names, loads the tensors of the verified weights file
/// at `path` onto `device` and prepares it for serving. Refuses metadata the network cannot
/// take (an unknown architecture, another input shape, no labels).
pub fn load(path: &Path, metadata: &ModelMetadata, device: Device) -> Result<ServingNet, LoadError> {
    let invalid = |reason: String| LoadError::InvalidModel { path: path.to_owned(), reason };
    let architecture = Architecture::from_name(&metadata.architecture).ok_or_else(|| {
        let known: Vec<&str> = Architecture::ALL.iter().map(|architecture| architecture.name()).collect();
        invalid(format!("unknown architecture `{}` (known: {})", metadata.architecture, known.join(", ")))
    })?;
    if metadata.input_shape != INPUT_SHAPE {
        return Err(invalid(format!("{} takes {INPUT_SHAPE:?}, not {:?}", architecture.name(), metadata.input_shape)));
    }
    if metadata.labels.is_empty() {
        return Err(invalid("the metadata lists no labels".into()));
    }
    let mut store = nn::VarStore::new(device);
    let net = Net::new(&store.root(), architecture, metadata.labels.len() as i64);
    store.load(path).map_err(|error| invalid(error.to_string()))?;
    Ok(net.for_serving())
}

/// The networks this crate can build; the name travels in the weights' metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Architecture {
    /// Three 3×3 conv + batch-norm + ReLU + max-pool blocks (16, 32, 64 channels), then a
    /// 128-unit hidden layer with dropout: ~99k parameters, ~2 MMAC per image.
    #[serde(rename = "cnn-bn-16-32-64")]
    CnnBn16x32x64,
    /// The same shape with 12, 24 and 48 channels: ~70k parameters, ~1.2 MMAC per image,
    /// about 1.7 times the inference cost of 8-16-32 on the serving path.
    #[serde(rename = "cnn-bn-12-24-48")]
    CnnBn12x24x48,
    /// The same shape with 8, 16 and 32 channels: ~44k parameters, ~0.55 MMAC per image,
    /// about half the inference cost of 16-32-64; 99.43% on MNIST's test set with the default
    /// recipe.
    #[default]
    #[serde(rename = "cnn-bn-8-16-32")]
    CnnBn8x16x32,
}

/// The sizes that distinguish one [`Architecture`] from another.
struct Layout {
    /// Output channels of the three conv blocks.
    channels: [i64; 3],
    /// Units of the hidden fully connected layer.
    hidden: i64,
}

impl Architecture {
    /// The name stored in the weights' metadata and shown by `/model/metadata`.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::CnnBn16x32x64 => "cnn-bn-16-32-64",
            Architecture::CnnBn12x24x48 => "cnn-bn-12-24-48",
            Architecture::CnnBn8x16x32 => "cnn-bn-8-16-32",
        }
    }

    /// Every architecture, for `--help` and error messages.
    pub const ALL: [Architecture; 3] =
        [Architecture::CnnBn16x32x64, Architecture::CnnBn12x24x48, Architecture::CnnBn8x16x32];

    /// The architecture called `name` (see [`Architecture::name`]).
    pub fn from_name(name: &str) -> Option<Architecture> {
        Architecture::ALL.into_iter().find(|architecture| architecture.name() == name)
    }

    fn layout(self) -> Layout {
        match self {
            Architecture::CnnBn16x32x64 => Layout { channels: [16, 32, 64], hidden: 128 },
            Architecture::CnnBn12x24x48 => Layout { channels: [12, 24, 48], hidden: 128 },
            Architecture::CnnBn8x16x32 => Layout { channels: [8, 16, 32], hidden: 128 },
        }
    }
}

/// The classifier: maps `[N, 1, 28, 28]` normalised images to `[N, classes]` logits.
#[derive(Debug)]
pub struct Net {
    device: tch::Device,
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
        let conv_config = nn::ConvConfig { padding: CONV_PADDING, bias: false, ..Default::default() };
        let norm_config = nn::BatchNormConfig { eps: BATCH_NORM_EPS, ..Default::default() };
        ConvBlock {
            conv: nn::conv2d(path / "conv", in_channels, out_channels, 3, conv_config),
            norm: nn::batch_norm2d(path / "norm", out_channels, norm_config),
        }
    }

    /// The block's four operations, each shown to `visit` under `name/…`.
    fn forward_t(&self, xs: &Tensor, train: bool, name: &str, visit: &mut Visit) -> Tensor {
        let xs = xs.apply(&self.conv);
        visit(&format!("{name}/conv"), "Conv2D", &xs);
        let xs = xs.apply_t(&self.norm, train);
        visit(&format!("{name}/norm"), "FusedBatchNorm", &xs);
        let xs = xs.relu();
        visit(&format!("{name}/relu"), "Relu", &xs);
        let xs = xs.max_pool2d_default(POOL);
        visit(&format!("{name}/pool"), "MaxPool", &xs);
        xs
    }
}

/// What sees each operation's output as the network runs: its name, its kind and the tensor.
type Visit<'a> = dyn FnMut(&str, &'static str, &Tensor) + 'a;

/// One operation of the network, as a graph viewer shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct TracedOp {
    /// Its name, `block1/conv` and so on; each is fed by the one before.
    pub name: String,
    /// Its kind, in TensorFlow's words (`Conv2D`, `Relu`, `MatMul`, …), which TensorBoard's
    /// Graph tab knows.
    pub op: &'static str,
    /// The shape of its output.
    pub shape: Vec<i64>,
}

/// Zero padding around each 3×3 convolution's input, keeping its size.
const CONV_PADDING: i64 = 1;
/// Side of the max-pooling window (and its stride) after each block.
const POOL: i64 = 2;
/// Added to the running variance before batch norm divides by its square root.
const BATCH_NORM_EPS: f64 = 1e-5;

const DROPOUT: f64 = 0.3;

impl Net {
    /// Creates the network's variables under `root` for `classes` outputs, with names that do
    /// not depend on creation order (`block1.conv.weight`, ..., `output.bias`).
    pub fn new(root: &nn::Path, architecture: Architecture, classes: i64) -> Net {
        let Layout { channels, hidden } = architecture.layout();
        let mut in_channels = 1;
        let mut blocks = Vec::with_capacity(channels.len());
        for (index, out_channels) in channels.into_iter().enumerate() {
            blocks.push(ConvBlock::new(&(root / format!("block{}", index + 1)), in_channels, out_channels));
            in_channels = out_channels;
        }
        // 28 → 14 → 7 → 3 after three 2×2 poolings.
        let flat = in_channels * 3 * 3;
        Net {
            device: root.device(),
            blocks,
            hidden: nn::linear(root / "hidden", flat, hidden, Default::default()),
            output: nn::linear(root / "output", hidden, classes, Default::default()),
        }
    }
}

impl Net {
    /// Where the network's variables live; inputs must be there too.
    pub fn device(&self) -> tch::Device {
        self.device
    }

    /// The last hidden layer's activations `[N, hidden]` in inference mode: what the
    /// embedding projector shows.
    pub fn embed(&self, xs: &Tensor) -> Tensor {
        self.hidden_t(xs, false, &mut |_, _, _| {})
    }

    /// The network's operations in order, with the shapes they give for `xs` in inference
    /// mode (for TensorBoard's Graph tab), and the logits. It runs the same code as
    /// [`ModuleT::forward_t`].
    pub fn trace(&self, xs: &Tensor) -> (Vec<TracedOp>, Tensor) {
        let _no_grad = tch::no_grad_guard();
        let mut ops = vec![TracedOp { name: "input".into(), op: "Placeholder", shape: xs.size() }];
        let logits = self.run(xs, false, &mut |name, op, output| {
            ops.push(TracedOp { name: name.to_owned(), op, shape: output.size() })
        });
        (ops, logits)
    }

    fn hidden_t(&self, xs: &Tensor, train: bool, visit: &mut Visit) -> Tensor {
        let mut xs = xs.shallow_clone();
        for (index, block) in self.blocks.iter().enumerate() {
            xs = block.forward_t(&xs, train, &format!("block{}", index + 1), visit);
        }
        let xs = xs.flatten(1, -1);
        visit("flatten", "Reshape", &xs);
        let xs = xs.apply(&self.hidden);
        visit("hidden/linear", "MatMul", &xs);
        let xs = xs.relu();
        visit("hidden/relu", "Relu", &xs);
        xs
    }

    fn run(&self, xs: &Tensor, train: bool, visit: &mut Visit) -> Tensor {
        let xs = self.hidden_t(xs, train, visit).dropout(DROPOUT, train);
        visit("dropout", "Dropout", &xs);
        let logits = xs.apply(&self.output);
        visit("output/linear", "MatMul", &logits);
        logits
    }
}

impl ModuleT for Net {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.run(xs, train, &mut |_, _, _| {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_batch_of_images_to_one_logit_per_class_each() {
        for architecture in Architecture::ALL {
            let store = nn::VarStore::new(tch::Device::Cpu);
            let net = Net::new(&store.root(), architecture, 7);
            let logits = net.forward_t(&Tensor::zeros([3, 1, 28, 28], tch::kind::FLOAT_CPU), false);
            assert_eq!(logits.size(), [3, 7]);
            assert_eq!(net.embed(&Tensor::zeros([3, 1, 28, 28], tch::kind::FLOAT_CPU)).size(), [3, 128]);
        }
    }

    #[test]
    fn the_trace_lists_every_operation_with_its_shape_and_gives_the_forward_s_logits() {
        let store = nn::VarStore::new(tch::Device::Cpu);
        let net = Net::new(&store.root(), Architecture::CnnBn8x16x32, 10);
        let images = Tensor::rand([2, 1, 28, 28], tch::kind::FLOAT_CPU);
        let (ops, logits) = net.trace(&images);
        let names: Vec<&str> = ops.iter().map(|op| op.name.as_str()).collect();
        assert_eq!(names[..6], ["input", "block1/conv", "block1/norm", "block1/relu", "block1/pool", "block2/conv"]);
        assert_eq!(names[names.len() - 5..], ["flatten", "hidden/linear", "hidden/relu", "dropout", "output/linear"]);
        let shape = |name: &str| ops.iter().find(|op| op.name == name).unwrap().shape.clone();
        assert_eq!(shape("block1/conv"), [2, 8, 28, 28]);
        assert_eq!(shape("block3/pool"), [2, 32, 3, 3]);
        assert_eq!(shape("flatten"), [2, 288]);
        assert_eq!(shape("output/linear"), [2, 10]);
        assert!(logits.allclose(&net.forward_t(&images, false), 0.0, 0.0, false));
    }

    #[test]
    fn the_metadata_name_is_the_serialised_name_and_parses_back() {
        for architecture in Architecture::ALL {
            assert_eq!(serde_json::to_value(architecture).unwrap(), architecture.name());
            assert_eq!(Architecture::from_name(architecture.name()), Some(architecture));
        }
        assert_eq!(Architecture::from_name("resnet"), None);
    }

    #[test]
    fn variable_names_are_stable() {
        let store = nn::VarStore::new(tch::Device::Cpu);
        let _net = Net::new(&store.root(), Architecture::CnnBn16x32x64, 10);
        let mut names: Vec<String> = store.variables().into_keys().collect();
        names.sort();
        assert!(names.contains(&"block1.conv.weight".to_string()), "{names:?}");
        assert!(names.contains(&"block3.norm.running_var".to_string()), "{names:?}");
        assert!(names.contains(&"output.bias".to_string()), "{names:?}");
    }
}
