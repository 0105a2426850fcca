//! The real server on 127.0.0.1 with the real models and the committed samples. All API tests
//! compile into this one binary.

mod app;
mod batching;
mod docs;
mod errors;
mod helpers;
mod hostile;
mod management;
mod models;
mod operations;
mod predict;
mod torchserve;
mod v2;
