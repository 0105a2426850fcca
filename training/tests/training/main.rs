//! The training crate's integration tests, in one binary: the train bin as a user runs it (its
//! output is what the server then serves, its runs are reproducible, its TensorBoard files and
//! reports say what TensorBoard itself reads), the data sets it knows and the custom ones it
//! takes, and `--download` against mirrors on 127.0.0.1.

mod datasets;
mod helpers;
mod mirrors;
mod predict_bin;
mod train_bin;
