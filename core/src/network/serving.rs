//! The network prepared for serving. Training needs batch norm as its own layer; inference
//! does not: in eval mode it is an affine map per channel, folded here into the convolution
//! before it. On CPU the folded weights are also reordered once for oneDNN (MKL-DNN), and a
//! batch's activations stay in its blocked layout from the first convolution to the last
//! pooling, as `torch.jit.optimize_for_inference` does for the same network: about 5× faster
//! per image than eval mode at a batch of 32 (BENCHMARKS.md). oneDNN has a fixed cost per call
//! that makes a single image slower than plain convolutions, so a batch of one, and every
//! batch on CUDA or a libtorch without oneDNN, runs the folded weights through those.
//!
//! The logits equal [`Net`]'s in eval mode up to float rounding; a test holds them to 1e-4.
//! The two paths round differently, so an image's probabilities can differ in the sixth
//! decimal depending on whether it was batched alone or with others.

use tch::{Device, Tensor};

use super::{BATCH_NORM_EPS, CONV_PADDING, ConvBlock, Net, POOL};

/// The smallest batch worth oneDNN's fixed cost per call (measured on CPU: one image takes
/// about 0.2 ms through oneDNN and 0.09 ms through plain convolutions; two images take
/// 0.16 ms and 0.26 ms).
const ONE_DNN_MIN_BATCH: i64 = 2;

/// How a convolution's weights are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// oneDNN's blocked layout on CPU, reordered at load.
    OneDnn,
    /// Ordinary dense tensors on any device.
    Dense,
}

/// A convolution with the batch norm after it folded in.
#[derive(Debug)]
struct FoldedConv {
    weight: Tensor,
    bias: Tensor,
}

/// A fully connected layer, its weight stored transposed for `addmm`.
#[derive(Debug)]
struct FullyConnected {
    weight_transposed: Tensor,
    bias: Tensor,
}

impl FullyConnected {
    fn new(linear: &tch::nn::Linear) -> FullyConnected {
        let bias = match &linear.bs {
            Some(bias) => bias.detach(),
            None => Tensor::zeros([linear.ws.size()[0]], (linear.ws.kind(), linear.ws.device())),
        };
        FullyConnected { weight_transposed: linear.ws.detach().tr().contiguous(), bias }
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        self.bias.addmm(xs, &self.weight_transposed)
    }
}

/// [`Net`] in eval mode, folded and laid out for fast inference. Build it with
/// [`Net::for_serving`]; it keeps the tensors it needs alive, so the [`Net`] and its
/// variable store may be dropped.
#[derive(Debug)]
pub struct ServingNet {
    device: Device,
    /// The folded convolutions as dense tensors.
    blocks: Vec<FoldedConv>,
    /// The same for oneDNN, when the network is on CPU and libtorch has it.
    one_dnn_blocks: Option<Vec<FoldedConv>>,
    hidden: FullyConnected,
    output: FullyConnected,
}

impl Net {
    /// This network's inference path: batch norm folded into the convolutions, and on CPU the
    /// weights laid out for oneDNN too.
    pub fn for_serving(&self) -> ServingNet {
        tch::no_grad(|| {
            let folded = |layout| self.blocks.iter().map(|block| block.folded(layout)).collect();
            let one_dnn = self.device == Device::Cpu && tch::utils::has_mkldnn();
            ServingNet {
                device: self.device,
                blocks: folded(Layout::Dense),
                one_dnn_blocks: one_dnn.then(|| folded(Layout::OneDnn)),
                hidden: FullyConnected::new(&self.hidden),
                output: FullyConnected::new(&self.output),
            }
        })
    }
}

impl ConvBlock {
    /// The convolution with this block's batch norm (eval mode) folded in:
    /// `scale = γ / √(σ² + ε)`, `weight' = weight · scale`, `bias' = β − μ · scale`.
    fn folded(&self, layout: Layout) -> FoldedConv {
        let norm = &self.norm;
        let scale = (&norm.running_var + BATCH_NORM_EPS).rsqrt();
        let scale = match &norm.ws {
            Some(gamma) => gamma * scale,
            None => scale,
        };
        let shift = match &norm.bs {
            Some(beta) => beta - &norm.running_mean * &scale,
            None => -(&norm.running_mean * &scale),
        };
        let conv_bias = match &self.conv.bs {
            Some(bias) => bias * &scale,
            None => scale.zeros_like(),
        };
        let weight = (&self.conv.ws * scale.view([-1, 1, 1, 1])).contiguous().detach();
        let bias = (conv_bias + shift).detach();
        match layout {
            Layout::OneDnn => FoldedConv {
                weight: weight.to_mkldnn().mkldnn_reorder_conv2d_weight(
                    [CONV_PADDING, CONV_PADDING],
                    [1, 1],
                    [1, 1],
                    1,
                    None::<&[i64]>,
                ),
                bias: bias.to_mkldnn(),
            },
            Layout::Dense => FoldedConv { weight, bias },
        }
    }
}

impl ServingNet {
    /// `[N, 1, 28, 28]` normalised images → `[N, classes]` logits, on the network's device.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let xs = xs.to_device(self.device);
            let features = match &self.one_dnn_blocks {
                Some(blocks) if xs.size()[0] >= ONE_DNN_MIN_BATCH => one_dnn_features(blocks, &xs),
                _ => dense_features(&self.blocks, xs),
            };
            self.classify(&features)
        })
    }

    /// The same logits through the plain convolutions whatever the batch (for tests).
    #[cfg(test)]
    fn forward_dense(&self, xs: &Tensor) -> Tensor {
        tch::no_grad(|| self.classify(&dense_features(&self.blocks, xs.shallow_clone())))
    }

    /// The fully connected head: the conv blocks' features → logits.
    fn classify(&self, features: &Tensor) -> Tensor {
        self.output.forward(&self.hidden.forward(&features.flatten(1, -1)).relu())
    }
}

/// The three conv blocks on dense tensors.
fn dense_features(blocks: &[FoldedConv], xs: Tensor) -> Tensor {
    blocks.iter().fold(xs, |xs, block| {
        xs.conv2d(&block.weight, Some(&block.bias), [1, 1], [CONV_PADDING, CONV_PADDING], [1, 1], 1)
            .relu()
            .max_pool2d_default(POOL)
    })
}

/// The three conv blocks in oneDNN's layout, converted back to a dense tensor at the end.
fn one_dnn_features(blocks: &[FoldedConv], xs: &Tensor) -> Tensor {
    let blocked = blocks.iter().fold(xs.contiguous().to_mkldnn(), |xs, block| {
        let mut xs =
            xs.mkldnn_convolution(&block.weight, Some(&block.bias), [CONV_PADDING, CONV_PADDING], [1, 1], [1, 1], 1);
        xs.relu_().max_pool2d([POOL, POOL], [POOL, POOL], [0, 0], [1, 1], false)
    });
    blocked.to_dense(None, false)
}

#[cfg(test)]
mod tests {
    use tch::nn::{self, ModuleT};
    use tch::{Device, Kind};

    use super::*;
    use crate::network::Architecture;

    /// A network whose batch norms hold statistics far from the identity, so that folding
    /// them wrongly shows.
    fn trained_looking_net(architecture: Architecture) -> (nn::VarStore, Net) {
        tch::manual_seed(7);
        let store = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&store.root(), architecture, 10);
        tch::no_grad(|| {
            for (name, mut variable) in store.variables() {
                let random = Tensor::rand(variable.size(), (Kind::Float, Device::Cpu));
                if name.ends_with("running_var") {
                    variable.copy_(&(random * 3.0 + 0.1));
                } else if name.contains("norm") {
                    variable.copy_(&(random * 2.0 - 1.0));
                }
            }
        });
        (store, net)
    }

    #[test]
    fn serving_logits_equal_the_eval_mode_network() {
        for architecture in Architecture::ALL {
            let (_store, net) = trained_looking_net(architecture);
            let serving = net.for_serving();
            for batch in [1, 3, 32] {
                let images = Tensor::randn([batch, 1, 28, 28], (Kind::Float, Device::Cpu));
                let expected = tch::no_grad(|| net.forward_t(&images, false));
                let served = serving.forward(&images);
                assert_eq!(served.size(), expected.size());
                let difference = (served - &expected).abs().max().double_value(&[]);
                let scale = expected.abs().max().double_value(&[]);
                assert!(difference <= 1e-4 * scale.max(1.0), "{architecture:?}, batch {batch}: off by {difference}");
            }
        }
    }

    #[test]
    fn the_dense_path_gives_the_same_logits_for_a_batch() {
        let (_store, net) = trained_looking_net(Architecture::CnnBn8x16x32);
        let images = Tensor::randn([4, 1, 28, 28], (Kind::Float, Device::Cpu));
        let expected = tch::no_grad(|| net.forward_t(&images, false));
        let difference = (net.for_serving().forward_dense(&images) - expected).abs().max().double_value(&[]);
        assert!(difference < 1e-4, "off by {difference}");
    }

    #[test]
    fn libtorch_from_pypi_has_one_dnn_on_cpu() {
        let (_store, net) = trained_looking_net(Architecture::CnnBn8x16x32);
        assert!(net.for_serving().one_dnn_blocks.is_some(), "serving on CPU would be about 5x slower");
    }
}
