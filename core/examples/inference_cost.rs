//! Per-image inference cost of each architecture, as the server runs it (one libtorch thread,
//! inference mode, no gradients): median over several timed rounds for batches of 1, 8 and
//! 32 images. Weights do not change the cost, so fresh networks are timed.
//!
//! `cargo run --release -p max-mnist-core --example inference_cost -- [ROUNDS]`
//! (bench/inference.sh runs it and formats the table for BENCHMARKS.md).

use std::time::Instant;

use max_mnist_core::network::{Architecture, Net};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|value| value.parse().ok()).unwrap_or(7).max(1);
    tch::set_num_threads(1);
    let _no_grad = tch::no_grad_guard();
    println!("| architecture | parameters | µs/image, batch 1 | µs/image, batch 8 | µs/image, batch 32 |");
    println!("|---|---:|---:|---:|---:|");
    for architecture in Architecture::ALL {
        let store = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&store.root(), architecture);
        let parameters: i64 = store.trainable_variables().iter().map(Tensor::numel).map(|n| n as i64).sum();
        let costs: Vec<String> =
            [1, 8, 32].iter().map(|&batch| format!("{:.0}", median_micros_per_image(&net, batch, rounds))).collect();
        println!("| {} | {parameters} | {} |", architecture.name(), costs.join(" | "));
    }
}

fn median_micros_per_image(net: &Net, batch: i64, rounds: usize) -> f64 {
    let inputs = Tensor::randn([batch, 1, 28, 28], (Kind::Float, Device::Cpu));
    let iterations = (2000 / batch).max(20);
    for _ in 0..iterations {
        let _ = net.forward_t(&inputs, false);
    }
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                let _ = net.forward_t(&inputs, false);
            }
            started.elapsed().as_secs_f64() * 1e6 / (iterations * batch) as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
