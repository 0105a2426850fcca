//! Per-image inference cost of each architecture (one libtorch thread, no gradients): the
//! network as trained, in eval mode, and as the server runs it ([`ServingNet`]: batch norm
//! folded, oneDNN layout on CPU). Median over several timed rounds for batches of 1, 8 and
//! 32 images. Weights do not change the cost, so fresh networks are timed.
//!
//! `cargo run --release -p max-mnist-core --example inference_cost -- [ROUNDS]`
//! (bench/inference.sh runs it and formats the table for BENCHMARKS.md).

use std::time::Instant;

use max_mnist_core::network::{Architecture, Net, ServingNet};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

/// A forward pass over a batch of images.
type Forward<'a> = &'a dyn Fn(&Tensor) -> Tensor;

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|value| value.parse().ok()).unwrap_or(7).max(1);
    tch::set_num_threads(1);
    let _no_grad = tch::no_grad_guard();
    println!("| architecture | parameters | path | µs/image, batch 1 | µs/image, batch 8 | µs/image, batch 32 |");
    println!("|---|---:|---|---:|---:|---:|");
    for architecture in Architecture::ALL {
        let store = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&store.root(), architecture, 10);
        let parameters: i64 = store.trainable_variables().iter().map(Tensor::numel).map(|n| n as i64).sum();
        let serving = net.for_serving();
        let paths: [(&str, Forward); 2] = [
            ("eval mode", &|inputs| net.forward_t(inputs, false)),
            ("serving", &|inputs| ServingNet::forward(&serving, inputs)),
        ];
        for (path, forward) in paths {
            let costs: Vec<String> = [1, 8, 32]
                .iter()
                .map(|&batch| format!("{:.0}", median_micros_per_image(forward, batch, rounds)))
                .collect();
            println!("| {} | {parameters} | {path} | {} |", architecture.name(), costs.join(" | "));
        }
    }
}

fn median_micros_per_image(forward: Forward, batch: i64, rounds: usize) -> f64 {
    let inputs = Tensor::randn([batch, 1, 28, 28], (Kind::Float, Device::Cpu));
    let iterations = (2000 / batch).max(20);
    for _ in 0..iterations {
        let _ = forward(&inputs);
    }
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                let _ = forward(&inputs);
            }
            started.elapsed().as_secs_f64() * 1e6 / (iterations * batch) as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
