//! The optimisers, written out rather than taken from libtorch's `torch::optim`, whose state
//! (momentum and moment estimates) tch does not let us read or set. Here the state is plain
//! tensors, so a checkpoint can hold it and a resumed run continues exactly where it stopped.
//! The updates are PyTorch's: `torch.optim.SGD` (dampening 0), `Adam` (L2 weight decay added
//! to the gradient) and `AdamW` (decoupled weight decay), with eps 1e-8; a test checks them
//! against libtorch's.

use std::collections::HashMap;

use tch::{Tensor, nn};

use crate::Result;

/// The optimiser and its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Stochastic gradient descent with momentum and (L2) weight decay.
    Sgd {
        /// Momentum factor.
        momentum: f64,
        /// L2 penalty.
        weight_decay: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// Adam with L2 weight decay added to the gradient.
    Adam {
        /// Decay of the first-moment estimate.
        beta1: f64,
        /// Decay of the second-moment estimate.
        beta2: f64,
        /// L2 penalty.
        weight_decay: f64,
    },
    /// Adam with decoupled weight decay (Loshchilov and Hutter).
    AdamW {
        /// Decay of the first-moment estimate.
        beta1: f64,
        /// Decay of the second-moment estimate.
        beta2: f64,
        /// Decoupled weight decay.
        weight_decay: f64,
    },
}

/// Added to Adam's denominator, as PyTorch's default.
const ADAM_EPSILON: f64 = 1e-8;
/// Names of the state tensors in a checkpoint: `first/<variable>`, `second/<variable>`.
const FIRST: &str = "first/";
const SECOND: &str = "second/";

impl Optimizer {
    /// A one-line description for the weights' metadata and TensorBoard.
    pub fn describe(&self) -> String {
        match *self {
            Optimizer::Sgd { momentum, weight_decay, nesterov } => {
                format!("sgd(momentum={momentum}, weight_decay={weight_decay}, nesterov={nesterov})")
            }
            Optimizer::Adam { beta1, beta2, weight_decay } => {
                format!("adam(betas=({beta1}, {beta2}), weight_decay={weight_decay})")
            }
            Optimizer::AdamW { beta1, beta2, weight_decay } => {
                format!("adamw(betas=({beta1}, {beta2}), weight_decay={weight_decay})")
            }
        }
    }

    /// The optimiser's short name.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "sgd",
            Optimizer::Adam { .. } => "adam",
            Optimizer::AdamW { .. } => "adamw",
        }
    }

    /// An optimiser of the trainable variables of `store`, at step 0.
    pub fn start(self, store: &nn::VarStore) -> OptimizerState {
        let mut variables: Vec<(String, Tensor)> =
            store.variables().into_iter().filter(|(_, tensor)| tensor.requires_grad()).collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = || variables.iter().map(|(_, tensor)| tensor.zeros_like()).collect();
        OptimizerState { settings: self, first: zeros(), second: zeros(), variables, steps: 0 }
    }
}

/// An optimiser at work: the variables it moves, the steps taken, and per variable the
/// momentum (SGD) or the first and second moment estimates (Adam, AdamW).
pub struct OptimizerState {
    settings: Optimizer,
    variables: Vec<(String, Tensor)>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    steps: i64,
}

impl OptimizerState {
    /// Back-propagates `loss` and takes one step at `learning_rate`.
    pub fn backward_step(&mut self, loss: &Tensor, learning_rate: f64) {
        for (_, variable) in &mut self.variables {
            variable.zero_grad();
        }
        loss.backward();
        self.step(learning_rate);
    }

    fn step(&mut self, learning_rate: f64) {
        let _no_grad = tch::no_grad_guard();
        self.steps += 1;
        let steps = self.steps as i32;
        for (index, (_, variable)) in self.variables.iter_mut().enumerate() {
            let gradient = variable.grad();
            if !gradient.defined() {
                continue;
            }
            let (first, second) = (&mut self.first[index], &mut self.second[index]);
            match self.settings {
                Optimizer::Sgd { momentum, weight_decay, nesterov } => {
                    let gradient = gradient + &*variable * weight_decay;
                    let _ = first.g_mul_scalar_(momentum).g_add_(&gradient);
                    let direction = if nesterov { gradient + &*first * momentum } else { first.shallow_clone() };
                    let _ = variable.g_sub_(&(direction * learning_rate));
                }
                Optimizer::Adam { beta1, beta2, weight_decay } | Optimizer::AdamW { beta1, beta2, weight_decay } => {
                    let gradient = if matches!(self.settings, Optimizer::AdamW { .. }) {
                        let _ = variable.g_mul_scalar_(1.0 - learning_rate * weight_decay);
                        gradient
                    } else {
                        gradient + &*variable * weight_decay
                    };
                    let _ = first.g_mul_scalar_(beta1).g_add_(&(&gradient * (1.0 - beta1)));
                    let _ = second.g_mul_scalar_(beta2).g_add_(&(&gradient * &gradient * (1.0 - beta2)));
                    let first_correction = 1.0 - beta1.powi(steps);
                    let second_correction = (1.0 - beta2.powi(steps)).sqrt();
                    let denominator = second.sqrt() / second_correction + ADAM_EPSILON;
                    let _ = variable.g_sub_(&(&*first / denominator * (learning_rate / first_correction)));
                }
            }
        }
    }

    /// The steps taken so far.
    pub fn steps(&self) -> i64 {
        self.steps
    }

    /// The state tensors, named for a checkpoint (`first/<variable>`, `second/<variable>`).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let named = |prefix: &str, tensors: &[Tensor]| {
            self.variables
                .iter()
                .zip(tensors)
                .map(|((name, _), tensor)| (format!("{prefix}{name}"), tensor.shallow_clone()))
                .collect::<Vec<_>>()
        };
        let mut state = named(FIRST, &self.first);
        state.extend(named(SECOND, &self.second));
        state
    }

    /// Sets the state to what [`OptimizerState::state`] returned after `steps` steps, refusing
    /// a state that misses a variable or has another shape.
    pub fn restore(&mut self, state: &HashMap<String, Tensor>, steps: i64) -> Result<()> {
        crate::checkpoint::copy_into(&self.state(), state)?;
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tch::Device;
    use tch::nn::{Module, OptimizerConfig};

    use super::*;

    /// A small network, its weights set from the seed, and a fixed batch.
    fn setup() -> (nn::VarStore, nn::Linear, Tensor, Tensor) {
        tch::manual_seed(7);
        let store = nn::VarStore::new(Device::Cpu);
        let layer = nn::linear(store.root() / "layer", 6, 3, Default::default());
        let inputs = Tensor::randn([8, 6], tch::kind::FLOAT_CPU);
        let targets = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2, 0, 1]);
        (store, layer, inputs, targets)
    }

    fn weights(store: &nn::VarStore) -> Vec<f32> {
        let mut variables: Vec<_> = store.variables().into_iter().collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        variables.iter().flat_map(|(_, tensor)| Vec::<f32>::try_from(&tensor.flatten(0, -1)).unwrap()).collect()
    }

    #[test]
    fn each_optimizer_moves_the_weights_as_libtorchs_does() {
        let (lr, wd) = (0.05, 0.01);
        let cases: [(Optimizer, Box<dyn Fn(&nn::VarStore) -> nn::Optimizer>); 4] = [
            (
                Optimizer::Sgd { momentum: 0.9, weight_decay: wd, nesterov: false },
                Box::new(move |store| nn::Sgd { momentum: 0.9, wd, ..Default::default() }.build(store, lr).unwrap()),
            ),
            (
                Optimizer::Sgd { momentum: 0.9, weight_decay: wd, nesterov: true },
                Box::new(move |store| {
                    nn::Sgd { momentum: 0.9, wd, nesterov: true, ..Default::default() }.build(store, lr).unwrap()
                }),
            ),
            (
                Optimizer::Adam { beta1: 0.9, beta2: 0.99, weight_decay: wd },
                Box::new(move |store| nn::Adam { beta2: 0.99, wd, ..Default::default() }.build(store, lr).unwrap()),
            ),
            (
                Optimizer::AdamW { beta1: 0.8, beta2: 0.999, weight_decay: wd },
                Box::new(move |store| nn::AdamW { beta1: 0.8, wd, ..Default::default() }.build(store, lr).unwrap()),
            ),
        ];
        for (ours, theirs) in cases {
            let (store, layer, inputs, targets) = setup();
            let mut optimizer = ours.start(&store);
            let (reference, reference_layer, _, _) = setup();
            let mut libtorch = theirs(&reference);
            for _ in 0..5 {
                optimizer.backward_step(&layer.forward(&inputs).cross_entropy_for_logits(&targets), lr);
                libtorch.backward_step(&reference_layer.forward(&inputs).cross_entropy_for_logits(&targets));
            }
            let (ours_now, theirs_now) = (weights(&store), weights(&reference));
            let largest = ours_now.iter().zip(&theirs_now).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(largest < 1e-6, "{}: differs from libtorch by {largest}", ours.describe());
            assert_eq!(optimizer.steps(), 5);
        }
    }

    /// Sets the variables of `store`, in name order, to `values` as [`weights`] lists them.
    fn set_weights(store: &nn::VarStore, values: &[f32]) {
        let mut variables: Vec<_> = store.variables().into_iter().collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        let _no_grad = tch::no_grad_guard();
        let mut offset = 0;
        for (_, mut variable) in variables {
            let count = variable.numel();
            variable.copy_(&Tensor::from_slice(&values[offset..offset + count]).view(variable.size().as_slice()));
            offset += count;
        }
    }

    #[test]
    fn a_restored_state_continues_as_if_never_stopped() {
        let adam = Optimizer::AdamW { beta1: 0.9, beta2: 0.999, weight_decay: 0.1 };
        let (store, layer, inputs, targets) = setup();
        let loss = || layer.forward(&inputs).cross_entropy_for_logits(&targets);
        let mut whole = adam.start(&store);
        whole.backward_step(&loss(), 0.1);
        let stopped_at = weights(&store);
        let state: HashMap<String, Tensor> =
            whole.state().into_iter().map(|(name, tensor)| (name, tensor.copy())).collect();
        whole.backward_step(&loss(), 0.1);
        let uninterrupted = weights(&store);

        set_weights(&store, &stopped_at);
        let mut resumed = adam.start(&store);
        resumed.restore(&state, 1).unwrap();
        resumed.backward_step(&loss(), 0.1);
        assert_eq!(weights(&store), uninterrupted);
        assert_eq!(resumed.steps(), 2);

        let missing: HashMap<String, Tensor> = state
            .iter()
            .filter(|(name, _)| *name != "second/layer.weight")
            .map(|(name, tensor)| (name.clone(), tensor.shallow_clone()))
            .collect();
        let error = adam.start(&store).restore(&missing, 1).err().unwrap().to_string();
        assert!(error.contains("no `second/layer.weight` tensor"), "{error}");
        let flattened = state.iter().map(|(name, tensor)| (name.clone(), tensor.view([-1]))).collect();
        let error = adam.start(&store).restore(&flattened, 1).err().unwrap().to_string();
        assert!(error.contains("`first/layer.weight` is [18], the network's is [3, 6]"), "{error}");
    }
}
