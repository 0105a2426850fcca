//! Per-image cost of `pre_process` (decode, find the digit, fit and centre, normalise) on
//! one thread, for each image file given: the median over several timed rounds.
//!
//! `cargo run --release -p max-mnist-core --example preprocess_cost -- [--rounds N] FILE...`
//! (BENCHMARKS.md has the figures for the committed samples).

use std::path::PathBuf;
use std::time::Instant;

use max_mnist_core::preprocess::Preprocessor;

fn main() -> anyhow::Result<()> {
    let mut arguments: Vec<String> = std::env::args().skip(1).collect();
    let mut rounds = 7;
    if arguments.first().map(String::as_str) == Some("--rounds") {
        rounds = arguments.get(1).and_then(|value| value.parse().ok()).unwrap_or(rounds).max(1);
        arguments.drain(..2.min(arguments.len()));
    }
    let preprocessor = Preprocessor::mnist_digits(40_000_000);
    println!("| image | size | bytes | µs/image |");
    println!("|---|---|---:|---:|");
    for path in arguments.iter().map(PathBuf::from) {
        let bytes = std::fs::read(&path)?;
        let (width, height) = image::image_dimensions(&path)?;
        let _ = preprocessor.pre_process(&bytes)?;
        // About a quarter of a second per round, whatever the image costs.
        let started = Instant::now();
        let _ = preprocessor.pre_process(&bytes)?;
        let iterations = (0.25 / started.elapsed().as_secs_f64()).clamp(1.0, 5_000.0) as u32;
        let mut samples: Vec<f64> = (0..rounds)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..iterations {
                    let _ = preprocessor.pre_process(&bytes);
                }
                started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        let name = path.file_name().map(|name| name.to_string_lossy()).unwrap_or_default();
        println!("| {name} | {width}×{height} | {} | {:.0} |", bytes.len(), samples[samples.len() / 2]);
    }
    Ok(())
}
