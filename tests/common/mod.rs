//! What the tests of the server binary share: the binary, started with no setting taken from
//! the environment of whoever runs the tests.

use std::process::Command;

use clap::CommandFactory;
use max_mnist_config::settings::ServerSettings;

/// The server binary.
pub const SERVER: &str = env!("CARGO_BIN_EXE_max-mnist");

/// The server binary as a command whose settings come from its arguments alone: every
/// environment variable a setting reads (`API_KEY`, `MAX_BODY_BYTES`, `MODELS`, …) is
/// removed, so a variable set in the shell that runs the tests cannot change what they test.
pub fn server_command() -> Command {
    let mut command = Command::new(SERVER);
    for argument in ServerSettings::command().get_arguments() {
        if let Some(variable) = argument.get_env() {
            command.env_remove(variable);
        }
    }
    command
}
