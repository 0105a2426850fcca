//! A user's TorchScript module (from `torch.jit.trace` or `torch.jit.script`, then `.save`),
//! loaded by libtorch's own loader: no Python and no pickle at run time. libtorch reads the
//! module's zip archive and runs its TorchScript code in its interpreter, so a module is code:
//! it is loaded only after its bucket's checksums have verified it.

use std::path::Path;

use tch::{CModule, Device, Tensor};

use crate::{Error, LoadError, Result};

/// A TorchScript module in eval mode on its device.
#[derive(Debug)]
pub struct TorchScriptNet {
    module: CModule,
    device: Device,
}

impl TorchScriptNet {
    /// Loads the module at `path` onto `device` and puts it in eval mode. A file that is not a
    /// TorchScript archive (a pickled `state_dict` from `torch.save`, say) is refused with
    /// libtorch's reason.
    pub fn load(path: &Path, device: Device) -> Result<TorchScriptNet, LoadError> {
        let mut module = CModule::load_on_device(path, device).map_err(|error| LoadError::InvalidModel {
            path: path.to_owned(),
            reason: format!(
                "not a TorchScript module that libtorch can load ({}); export one with torch.jit.trace or \
                 torch.jit.script, then .save (a torch.save of a state_dict or a model is not TorchScript)",
                torch_reason(&error.to_string())
            ),
        })?;
        module.f_set_eval().map_err(|error| LoadError::InvalidModel {
            path: path.to_owned(),
            reason: format!("cannot switch the module to eval mode ({})", torch_reason(&error.to_string())),
        })?;
        Ok(TorchScriptNet { module, device })
    }

    /// `[N, channels, height, width]` normalised images → the module's output, without
    /// gradients. An output that is not a single tensor is an error.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        tch::no_grad(|| self.module.forward_ts(&[xs.to_device(self.device)])).map_err(Error::from)
    }
}

/// The line of a libtorch message that says what went wrong: a TorchScript failure ends
/// with the Python-style `RuntimeError: …` after both tracebacks; other messages say it first,
/// before a C++ backtrace.
pub(crate) fn torch_reason(message: &str) -> &str {
    let lines = || message.lines().map(str::trim).filter(|line| !line.is_empty());
    let is_error =
        |line: &&str| line.split_once(": ").is_some_and(|(kind, _)| kind.ends_with("Error") && !kind.contains(' '));
    lines().rfind(is_error).or_else(|| lines().next()).unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_the_error_line_after_the_tracebacks_or_else_the_first() {
        let failed = "The following operation failed in the TorchScript interpreter.\nTraceback of TorchScript\n  \
                      File \"code/__torch__.py\", line 23\n\nRuntimeError: mat1 and mat2 shapes cannot be multiplied\n";
        assert_eq!(torch_reason(failed), "RuntimeError: mat1 and mat2 shapes cannot be multiplied");
        let unreadable = "Internal torch error: PytorchStreamReader failed reading zip archive\nException raised from";
        assert_eq!(torch_reason(unreadable), "Internal torch error: PytorchStreamReader failed reading zip archive");
    }
}
