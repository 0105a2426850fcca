//! `cargo run --release`: the max-mnist server. Reads its settings from flags and
//! environment variables (`--help`), verifies the weights, serves until ctrl-c or SIGTERM.

use clap::Parser;
use max_mnist_api::{Application, shutdown, telemetry};
use max_mnist_config::settings::ServerSettings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = ServerSettings::parse();
    telemetry::init(&settings.log_level, settings.log_format);
    let application = Application::build(&settings).await?;
    application.run_until(shutdown::signal()).await?;
    Ok(())
}
