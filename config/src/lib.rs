//! Settings and published metadata of max-mnist: every knob of the server as a CLI flag with
//! an environment variable ([`settings::ServerSettings`]), and the model card and API
//! description shown by `/model/metadata` and the OpenAPI document ([`metadata`]).

pub mod metadata;
pub mod settings;
