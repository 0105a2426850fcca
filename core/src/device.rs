//! Choosing where tensors live from a name a user types (`cpu`, `cuda`, `cuda:1`), failing
//! clearly when a GPU is asked for and there is none rather than silently using the CPU.

use tch::Device;

use crate::{Error, Result};

/// Parses `cpu`, `cuda` (the first GPU) or `cuda:N`; a GPU must be present.
pub fn parse_device(name: &str) -> Result<Device> {
    let unknown = || Error::InvalidSettings(format!("unknown device `{name}` (use cpu, cuda or cuda:N)"));
    let device = match name.trim().to_ascii_lowercase().as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => Device::Cuda(0),
        other => {
            let index = other.strip_prefix("cuda:").ok_or_else(unknown)?;
            Device::Cuda(index.parse().map_err(|_| unknown())?)
        }
    };
    let available = tch::Cuda::device_count();
    match device {
        Device::Cuda(index) if (index as i64) < available => Ok(device),
        _ => {
            Err(Error::InvalidSettings(format!("`{name}` asked for, but this machine has {available} CUDA device(s)")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_refuses_nonsense() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device(" CPU ").unwrap(), Device::Cpu);
        for bad in ["gpu", "cuda:x", "cuda:-1", ""] {
            assert!(parse_device(bad).unwrap_err().to_string().contains("unknown device"), "{bad}");
        }
    }

    #[test]
    fn a_missing_gpu_is_an_error_not_a_fallback() {
        let count = tch::Cuda::device_count();
        let error = parse_device(&format!("cuda:{count}")).unwrap_err().to_string();
        assert!(error.contains("CUDA device"), "{error}");
    }
}
