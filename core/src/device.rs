//! Choosing where tensors live: from a name a user types (`cpu`, `cuda`, `cuda:1`), failing
//! clearly when a GPU is asked for and there is none rather than silently using the CPU; or
//! the best device there is, for serving.
//!
//! libtorch's CUDA half (`libtorch_cuda.so` and the CUDA libraries it pulls in, about 250 MB
//! resident) is not linked into the binaries. It is loaded here, once, and only on a machine
//! with an NVIDIA driver, so that a CPU-only server stays small.

use std::path::Path;
use std::sync::OnceLock;

use tch::Device;

use crate::LoadError;

/// What choosing a device can fail with.
type Result<T> = std::result::Result<T, LoadError>;

/// Present when the NVIDIA kernel driver is loaded (on the host, and in GPU containers);
/// [`best_device`] loads nothing CUDA without it (an explicit `cuda` device still tries).
const NVIDIA_DRIVER: &str = "/proc/driver/nvidia/version";
/// libtorch's CUDA support, found through the binaries' rpath.
const TORCH_CUDA_LIBRARY: &str = "libtorch_cuda.so";

/// Loads libtorch's CUDA support, once per process, and returns whether CUDA can be used.
/// It must run before anything else asks libtorch about CUDA, which settles the answer once
/// per process.
pub fn enable_cuda() -> Result<bool> {
    static LOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    LOADED.get_or_init(load_torch_cuda).clone().map_err(LoadError::CudaLibrary)?;
    Ok(tch::Cuda::is_available())
}

/// The first GPU when this machine has an NVIDIA driver and CUDA works, else the CPU (with a
/// warning when a driver is there but CUDA is not usable). Without a driver nothing CUDA is
/// loaded.
pub fn best_device() -> Device {
    if !Path::new(NVIDIA_DRIVER).exists() {
        return Device::Cpu;
    }
    match enable_cuda() {
        Ok(true) => Device::Cuda(0),
        Ok(false) => {
            tracing::warn!("an NVIDIA driver is present but libtorch sees no CUDA device; running on the CPU");
            Device::Cpu
        }
        Err(error) => {
            tracing::warn!(%error, "running on the CPU");
            Device::Cpu
        }
    }
}

/// Maps `libtorch_cuda.so` (and the CUDA libraries it links) into the process for good; its
/// initialisers register CUDA's hooks and kernels with the libtorch already loaded.
fn load_torch_cuda() -> std::result::Result<(), String> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading runs the static initialisers of libtorch_cuda and the CUDA libraries,
    // which register with the libtorch already loaded and touch nothing of ours; the library
    // is never unloaded, so nothing registered dangles.
    let library = unsafe { Library::open(Some(TORCH_CUDA_LIBRARY), RTLD_NOW | RTLD_GLOBAL) };
    library.map(std::mem::forget).map_err(|error| error.to_string())
}

/// Parses `cpu`, `cuda` (the first GPU) or `cuda:N`; a GPU must be present.
pub fn parse_device(name: &str) -> Result<Device> {
    let unknown = || LoadError::Device(format!("unknown device `{name}` (use cpu, cuda or cuda:N)"));
    let device = match name.trim().to_ascii_lowercase().as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => Device::Cuda(0),
        other => {
            let index = other.strip_prefix("cuda:").ok_or_else(unknown)?;
            Device::Cuda(index.parse().map_err(|_| unknown())?)
        }
    };
    enable_cuda()?;
    let available = tch::Cuda::device_count();
    match device {
        Device::Cuda(index) if (index as i64) < available => Ok(device),
        _ => Err(LoadError::Device(format!("`{name}` asked for, but this machine has {available} CUDA device(s)"))),
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
    fn libtorch_cuda_loads_through_the_rpath() {
        // Whether CUDA then counts as available depends on which test asked libtorch first
        // (it settles that once per process), so only the loading itself is checked here.
        load_torch_cuda().unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(maps.contains(TORCH_CUDA_LIBRARY), "libtorch_cuda.so is not mapped");
    }

    #[test]
    fn a_missing_gpu_is_an_error_not_a_fallback() {
        let count = tch::Cuda::device_count();
        let error = parse_device(&format!("cuda:{count}")).unwrap_err().to_string();
        assert!(error.contains("CUDA device"), "{error}");
    }
}
