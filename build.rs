//! Lets binaries and tests find libtorch without a hand-set `LD_LIBRARY_PATH`.
//!
//! torch-sys (`links = "tch"`) exports the directory holding libtorch as
//! `DEP_TCH_LIBTORCH_LIB` to the build scripts of packages that depend on it directly,
//! but passes the rpath only to its own C++ shim. Every package whose binaries or tests
//! link tch therefore uses this one script (`build = "../build.rs"`) to embed that
//! directory as an rpath. `libtorch_cuda.so` is deliberately not linked: on a machine without
//! a GPU its CUDA libraries would add about 250 MB to every process. `core`'s device module
//! loads it at run time (through this rpath) when an NVIDIA driver is present.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(libtorch_lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch_lib}");
    }
}
