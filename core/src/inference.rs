//! The inference thread: one long-lived thread owns the model (tch modules are not `Sync`,
//! and libtorch keeps per-thread caches), fed through a bounded channel. Each request
//! carries its own reply channel. Whatever is queued when the thread wakes is run as one
//! batch, up to `max_batch_size` images.
//!
//! Decoding (`pre_process`) runs on tokio's blocking pool, in parallel with forwards.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use tch::Tensor;
use tokio::sync::{mpsc, oneshot};

use crate::artifact::ModelMetadata;
use crate::preprocess::{ModelInput, Preprocessor};
use crate::wrapper::{ModelWrapper, Prediction};
use crate::{Error, Result};

/// Sizes of the inference queue and batches.
#[derive(Clone, Copy, Debug)]
pub struct EngineSettings {
    /// Most images in one forward pass.
    pub max_batch_size: usize,
    /// Most images waiting for the inference thread; further requests are refused with
    /// [`Error::Overloaded`].
    pub queue_capacity: usize,
    /// libtorch intra-op threads for the forward passes.
    pub torch_threads: i32,
}

struct Job {
    input: Tensor,
    reply: oneshot::Sender<Result<Prediction>>,
}

/// The answer for one image: the prediction and the input the network saw.
#[derive(Clone, Debug)]
pub struct Classification {
    /// What the model predicted.
    pub prediction: Prediction,
    /// What the network saw: the digit found, fitted and centred, before normalisation.
    pub input: ModelInput,
}

/// A cloneable handle to the inference thread. The thread ends when the last handle is
/// dropped.
#[derive(Clone)]
pub struct InferenceEngine {
    jobs: mpsc::Sender<Job>,
    preprocessor: Preprocessor,
    metadata: Arc<ModelMetadata>,
}

impl InferenceEngine {
    /// Moves `model` onto a new inference thread and returns the handle.
    pub fn start(model: ModelWrapper, settings: EngineSettings) -> Result<InferenceEngine> {
        // Threads inherit the setting, so it must be made before spawning.
        tch::set_num_threads(settings.torch_threads.max(1));
        let (jobs, queue) = mpsc::channel(settings.queue_capacity.max(1));
        let preprocessor = model.preprocessor().clone();
        let metadata = Arc::new(model.metadata().clone());
        std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || run(model, queue, settings.max_batch_size.max(1)))
            .map_err(|_| Error::InferenceStopped)?;
        Ok(InferenceEngine { jobs, preprocessor, metadata })
    }

    /// What came with the weights.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// Runs the three steps on one encoded image: `pre_process` on the blocking pool, then
    /// `predict` and `post_process` on the inference thread.
    pub async fn classify(&self, image: Vec<u8>) -> Result<Classification> {
        let preprocessor = self.preprocessor.clone();
        let (input, tensor) = tokio::task::spawn_blocking(move || {
            let input = preprocessor.model_input(&image)?;
            let tensor = preprocessor.to_tensor(&input);
            Ok::<_, Error>((input, tensor))
        })
        .await
        .map_err(|_| Error::PreprocessingFailed)??;
        let (reply, answer) = oneshot::channel();
        self.jobs.try_send(Job { input: tensor, reply }).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => Error::Overloaded,
            mpsc::error::TrySendError::Closed(_) => Error::InferenceStopped,
        })?;
        let prediction = answer.await.map_err(|_| Error::InferenceStopped)??;
        Ok(Classification { prediction, input })
    }
}

/// The inference thread's loop: wait for a job, take whatever else is queued, run the
/// batch, answer each caller.
fn run(model: ModelWrapper, mut queue: mpsc::Receiver<Job>, max_batch_size: usize) {
    let mut batch = Vec::with_capacity(max_batch_size);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch_size {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let inputs: Vec<Tensor> = batch.iter().map(|job| job.input.shallow_clone()).collect();
        // tch panics on libtorch errors; one bad batch must not end the thread for everyone.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            model.post_process(&model.predict(&Tensor::stack(&inputs, 0)))
        }));
        match outcome {
            Ok(Ok(predictions)) => {
                for (job, prediction) in batch.drain(..).zip(predictions) {
                    // A caller that went away no longer needs its answer.
                    let _ = job.reply.send(Ok(prediction));
                }
            }
            Ok(Err(error)) => {
                tracing::error!(%error, batch = batch.len(), "inference failed");
                batch.clear();
            }
            Err(_) => {
                tracing::error!(batch = batch.len(), "inference panicked; its requests fail, the thread goes on");
                batch.clear();
            }
        }
    }
}
