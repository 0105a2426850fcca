//! `cargo run --release`: the max-mnist server. Reads its settings from flags and
//! environment variables (`--help`), verifies the weights, serves until ctrl-c or SIGTERM.
//! A start-up failure prints one line saying what went wrong and exits with status 1.

use std::process::ExitCode;

use clap::Parser;
use max_mnist_api::{Application, shutdown, telemetry};
use max_mnist_config::settings::ServerSettings;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = ServerSettings::parse();
    let _logs = telemetry::init(&settings.log_level, settings.log_format);
    match serve(&settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: &ServerSettings) -> anyhow::Result<()> {
    let application = Application::build(settings).await?;
    application.run_until(shutdown::signal()).await?;
    Ok(())
}
