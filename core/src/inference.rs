//! The inference engine. One long-lived thread owns the model (tch modules are not `Sync`,
//! and libtorch keeps per-thread caches) and runs batches; decoding and preprocessing run on
//! a fixed pool of preprocessing threads, in parallel with it and never on the async
//! runtime's workers.
//!
//! An image's way through: [`InferenceEngine::classify`] hands the bytes to the preprocessing
//! pool; there `pre_process` turns them into a tensor, which goes straight into the inference
//! queue. Both stages hold at most `queue_capacity` images. A request's images enter the
//! first together or not at all, and one that does not fit is refused with
//! [`Error::Overloaded`] at once; an image that finds the second full is refused the same way.
//! So a flood costs neither unbounded memory (at most `queue_capacity` encoded uploads wait,
//! each within the body limit) nor unbounded waiting.
//!
//! The inference thread takes the first queued image, then whatever else is queued, up to
//! `max_batch_size`; while other images are still being preprocessed it waits for them, at
//! most `max_batch_delay` after the first. An idle server therefore answers a lone request at
//! once, and a busy one fills its batches. Each image carries its own reply channel, so every
//! caller gets its own answer; an image whose caller has gone (a client that hung up, a
//! request past its deadline) is dropped before its preprocessing or its forward pass.
//!
//! Each model has an engine of its own (its own thread, queues and preprocessing threads), so
//! that a flood of requests for one model does not queue in front of another's.
//!
//! The engine records, through the `metrics` facade, how long each image spent decoding and
//! waiting and how large and long each forward pass was, labelled with the model's name (the
//! names are in [`metric`]); the server renders them for Prometheus, and without a recorder
//! they cost nothing. libtorch's thread count is process-wide, so the server sets it once
//! before starting any engine (`tch::set_num_threads`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};

use tch::Tensor;
use tokio::sync::oneshot;

use max_mnist_artifacts::card::ModelCard;
use max_mnist_artifacts::format::ModelMetadata;
use metrics::{Counter, Histogram};

use crate::preprocess::{ModelInput, Prepared, Preprocessor};
use crate::wrapper::{ModelWrapper, Prediction};
use crate::{Error, LoadError, Result};

/// The names of the engine's metrics; each carries the label [`metric::MODEL_LABEL`].
pub mod metric {
    /// The label naming the model.
    pub const MODEL_LABEL: &str = "model";
    /// Histogram: seconds decoding and preprocessing one uploaded image.
    pub const DECODE_SECONDS: &str = "max_mnist_decode_seconds";
    /// Histogram: seconds one image waited, for a preprocessing thread and then for the
    /// inference thread.
    pub const QUEUE_SECONDS: &str = "max_mnist_queue_seconds";
    /// Histogram: seconds of one forward pass with its post-processing.
    pub const INFERENCE_SECONDS: &str = "max_mnist_inference_seconds";
    /// Histogram: images in one forward pass.
    pub const BATCH_SIZE: &str = "max_mnist_batch_size";
    /// Counter: images dropped unrun (before preprocessing or before inference) because their
    /// caller had gone.
    pub const ABANDONED_IMAGES: &str = "max_mnist_abandoned_images_total";
}

/// Sizes of the inference queue and batches.
#[derive(Clone, Copy, Debug)]
pub struct EngineSettings {
    /// Most images in one forward pass.
    pub max_batch_size: usize,
    /// Longest the inference thread waits, after the first image of a batch, for images still
    /// being preprocessed; zero runs whatever is queued at once.
    pub max_batch_delay: Duration,
    /// Most images waiting for preprocessing, and most waiting for the inference thread;
    /// beyond either, images are refused with [`Error::Overloaded`].
    pub queue_capacity: usize,
    /// Threads decoding and preprocessing images.
    pub preprocess_threads: usize,
}

/// The engine's metric handles, labelled with its model's name once at start.
#[derive(Clone)]
struct EngineMetrics {
    decode_seconds: Histogram,
    queue_seconds: Histogram,
    inference_seconds: Histogram,
    batch_size: Histogram,
    abandoned_images: Counter,
}

impl EngineMetrics {
    fn for_model(name: &str) -> EngineMetrics {
        let labels = [(metric::MODEL_LABEL, name.to_owned())];
        EngineMetrics {
            decode_seconds: metrics::histogram!(metric::DECODE_SECONDS, &labels),
            queue_seconds: metrics::histogram!(metric::QUEUE_SECONDS, &labels),
            inference_seconds: metrics::histogram!(metric::INFERENCE_SECONDS, &labels),
            batch_size: metrics::histogram!(metric::BATCH_SIZE, &labels),
            abandoned_images: metrics::counter!(metric::ABANDONED_IMAGES, &labels),
        }
    }
}

/// Sets libtorch's intra-op threads (at least one) for the inference threads started after
/// this call: the setting is process-wide and inherited, so a server makes it once, before
/// starting any engine.
pub fn set_torch_threads(threads: i32) {
    tch::set_num_threads(threads.max(1));
}

/// The answer for one image: the prediction and the input the network saw.
#[derive(Clone, Debug)]
pub struct Classification {
    /// What the model predicted.
    pub prediction: Prediction,
    /// What the network saw (for a digit model, the digit found, fitted and centred), before
    /// normalisation.
    pub input: ModelInput,
}

/// How many forward passes the inference thread has run, and over how many images: their
/// ratio is the mean batch size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Forward passes.
    pub batches: u64,
    /// Images in them.
    pub images: u64,
}

/// [`BatchCounts`] as the inference thread updates them.
#[derive(Default)]
struct BatchCounters {
    batches: AtomicU64,
    images: AtomicU64,
}

/// One preprocessed image waiting for the inference thread.
struct Job {
    prepared: Prepared,
    reply: oneshot::Sender<Result<Classification>>,
    /// How long it waited for a preprocessing thread.
    waited: Duration,
    /// When it entered the inference queue.
    queued_at: Instant,
}

/// A cloneable handle to the inference thread. The thread ends when the last handle is
/// dropped.
#[derive(Clone)]
pub struct InferenceEngine {
    jobs: SyncSender<Job>,
    /// Images handed to the preprocessing pool and not yet queued (or failed): what the
    /// inference thread may wait for.
    preprocessing: Arc<AtomicUsize>,
    preprocess_pool: Arc<rayon::ThreadPool>,
    queue_capacity: usize,
    counters: Arc<BatchCounters>,
    preprocessor: Preprocessor,
    card: Arc<ModelCard>,
    training: Option<Arc<ModelMetadata>>,
    metrics: EngineMetrics,
}

impl InferenceEngine {
    /// Starts a new inference thread, named after `name` (also the label of its metrics), that
    /// loads its model with `load` (libtorch's loaders run on the thread that will own the
    /// model) and then serves it; returns the handle once the model is loaded, or why it could
    /// not be.
    pub fn start(
        name: &str,
        settings: EngineSettings,
        load: impl FnOnce() -> Result<ModelWrapper, LoadError> + Send + 'static,
    ) -> Result<InferenceEngine, LoadError> {
        let queue_capacity = settings.queue_capacity.max(1);
        let (jobs, queue) = mpsc::sync_channel(queue_capacity);
        let preprocess_pool = rayon::ThreadPoolBuilder::new()
            .num_threads(settings.preprocess_threads.max(1))
            .thread_name({
                let name = name.to_owned();
                move |index| format!("preprocess-{name}-{index}")
            })
            .build()
            .map_err(|error| LoadError::EngineThreads(error.to_string()))?;
        let preprocessing = Arc::new(AtomicUsize::new(0));
        let counters = Arc::new(BatchCounters::default());
        let metrics = EngineMetrics::for_model(name);
        let batcher = Batcher {
            queue,
            preprocessing: preprocessing.clone(),
            max_batch_size: settings.max_batch_size.max(1),
            max_batch_delay: settings.max_batch_delay,
        };
        let (loaded, outcome) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(format!("inference-{name}"))
            .spawn({
                let counters = counters.clone();
                let metrics = metrics.clone();
                move || {
                    let model = match load() {
                        Ok(model) => model,
                        Err(error) => {
                            let _ = loaded.send(Err(error));
                            return;
                        }
                    };
                    let described = (model.preprocessor().clone(), model.card().clone(), model.training().cloned());
                    let _ = loaded.send(Ok(described));
                    run(model, batcher, &counters, &metrics)
                }
            })
            .map_err(|error| LoadError::EngineThreads(error.to_string()))?;
        let (preprocessor, card, training) = outcome
            .recv()
            .map_err(|_| LoadError::EngineThreads("the inference thread stopped while loading".into()))??;
        Ok(InferenceEngine {
            jobs,
            preprocessing,
            preprocess_pool: Arc::new(preprocess_pool),
            queue_capacity,
            counters,
            preprocessor,
            card: Arc::new(card),
            training: training.map(Arc::new),
            metrics,
        })
    }

    /// What serving needs to know about the model.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// How the weights were trained, for a model from this project's train bin.
    pub fn training(&self) -> Option<&ModelMetadata> {
        self.training.as_deref()
    }

    /// Forward passes run so far, and the images in them.
    pub fn batch_counts(&self) -> BatchCounts {
        BatchCounts {
            batches: self.counters.batches.load(Ordering::Relaxed),
            images: self.counters.images.load(Ordering::Relaxed),
        }
    }

    /// Runs the three steps on one encoded image: `pre_process` on the preprocessing pool, then
    /// `predict` and `post_process` on the inference thread, batched with other requests.
    pub async fn classify(&self, image: Vec<u8>) -> Result<Classification> {
        self.classify_all(vec![image]).await.pop().unwrap_or(Err(Error::InferenceStopped))
    }

    /// [`classify`](Self::classify) for several images at once, preprocessed in parallel;
    /// one result per image, in order. The images are admitted together: when they do not all
    /// fit in the queue, every one is refused with [`Error::Overloaded`] and none is run.
    pub async fn classify_all(&self, images: Vec<Vec<u8>>) -> Vec<Result<Classification>> {
        let decoders = images.into_iter().map(|image| {
            let decode_seconds = self.metrics.decode_seconds.clone();
            move |preprocessor: &Preprocessor| {
                let started = Instant::now();
                let prepared = preprocessor.pre_process(&image);
                decode_seconds.record(started.elapsed());
                prepared
            }
        });
        self.classify_prepared(decoders.collect()).await
    }

    /// [`classify_all`](Self::classify_all) for inputs given as pixels, which skip decoding
    /// and the search for the digit: `predict` and `post_process` only, batched and admitted
    /// the same way.
    pub async fn classify_pixels(&self, inputs: Vec<ModelInput>) -> Vec<Result<Classification>> {
        let preparations =
            inputs.into_iter().map(|input| move |preprocessor: &Preprocessor| Ok(preprocessor.prepare(input)));
        self.classify_prepared(preparations.collect()).await
    }

    /// Runs one forward pass of a single blank image, and one of a batch, so that the first
    /// client does not pay for libtorch's lazy set-up (allocations, oneDNN's kernels).
    pub async fn warm_up(&self) -> Result<()> {
        let blank = ModelInput::blank(self.card.input_shape);
        // Two images submitted together usually share a forward pass, which takes the batched
        // path (oneDNN on CPU); when the queue holds two.
        for batch_size in [1, self.queue_capacity.min(2)] {
            for result in self.classify_pixels(vec![blank.clone(); batch_size]).await {
                result?;
            }
        }
        Ok(())
    }

    /// Admits one image per `preparation` (all or none), runs each on the preprocessing pool
    /// to get the network's input, and waits for their answers, in order.
    async fn classify_prepared<Prepare>(&self, preparations: Vec<Prepare>) -> Vec<Result<Classification>>
    where
        Prepare: FnOnce(&Preprocessor) -> Result<Prepared> + Send + 'static,
    {
        let count = preparations.len();
        let admitted = self.preprocessing.fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
            waiting.checked_add(count).filter(|&total| total <= self.queue_capacity)
        });
        if admitted.is_err() {
            return preparations.iter().map(|_| Err(Error::Overloaded)).collect();
        }
        let answers: Vec<_> = preparations.into_iter().map(|prepare| self.submit(prepare)).collect();
        let mut results = Vec::with_capacity(count);
        for answer in answers {
            results.push(answer.await.unwrap_or(Err(Error::InferenceStopped)));
        }
        results
    }

    /// Starts an image, already counted in `preprocessing`, on its way: `prepare` runs on the
    /// preprocessing pool, its input goes into the inference queue. Returns where the answer
    /// will arrive; a closed channel means the inference thread is gone.
    fn submit<Prepare>(&self, prepare: Prepare) -> oneshot::Receiver<Result<Classification>>
    where
        Prepare: FnOnce(&Preprocessor) -> Result<Prepared> + Send + 'static,
    {
        let abandoned_images = self.metrics.abandoned_images.clone();
        let (reply, answer) = oneshot::channel();
        let preprocessing = self.preprocessing.clone();
        let preprocessor = self.preprocessor.clone();
        let jobs = self.jobs.clone();
        let admitted_at = Instant::now();
        self.preprocess_pool.spawn(move || {
            // A caller that went away (hung up, or past its deadline) no longer needs this image:
            // preprocessing it would only delay the callers still waiting.
            if reply.is_closed() {
                preprocessing.fetch_sub(1, Ordering::AcqRel);
                abandoned_images.increment(1);
                return;
            }
            let waited = admitted_at.elapsed();
            // A panic in preprocessing (a bug) fails this image; unwinding out of a pool
            // thread would abort the process.
            let prepared = std::panic::catch_unwind(AssertUnwindSafe(|| prepare(&preprocessor)))
                .unwrap_or(Err(Error::PreprocessingFailed));
            // Counted down before queueing: the batcher, woken by this image, must not wait for it.
            preprocessing.fetch_sub(1, Ordering::AcqRel);
            let refused = match prepared {
                Ok(prepared) => match jobs.try_send(Job { prepared, reply, waited, queued_at: Instant::now() }) {
                    Ok(()) => None,
                    Err(TrySendError::Full(job)) => Some((job.reply, Error::Overloaded)),
                    Err(TrySendError::Disconnected(job)) => Some((job.reply, Error::InferenceStopped)),
                },
                Err(error) => Some((reply, error)),
            };
            if let Some((reply, error)) = refused {
                // A caller that went away no longer needs its answer.
                let _ = reply.send(Err(error));
            }
        });
        answer
    }
}

/// The inference thread's side of the queue: how it gathers a batch.
struct Batcher {
    queue: Receiver<Job>,
    preprocessing: Arc<AtomicUsize>,
    max_batch_size: usize,
    max_batch_delay: Duration,
}

impl Batcher {
    /// The next batch: waits for a first image, then takes what is queued, and while images
    /// are still being preprocessed waits for them until the batch is full or `max_batch_delay`
    /// has passed since the first. `None` once every engine handle is gone.
    fn next_batch(&self) -> Option<Vec<Job>> {
        let first = self.queue.recv().ok()?;
        let deadline = Instant::now() + self.max_batch_delay;
        let mut batch = Vec::with_capacity(self.max_batch_size);
        batch.push(first);
        while batch.len() < self.max_batch_size {
            let next = match self.queue.try_recv() {
                Ok(job) => Some(job),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) => self.wait_for_more(deadline),
            };
            match next {
                Some(job) => batch.push(job),
                None => break,
            }
        }
        Some(batch)
    }

    /// An image that arrives before `deadline`, if any is still being preprocessed.
    fn wait_for_more(&self, deadline: Instant) -> Option<Job> {
        if self.preprocessing.load(Ordering::Acquire) == 0 {
            return None;
        }
        let left = deadline.checked_duration_since(Instant::now()).filter(|left| !left.is_zero())?;
        // Timed out, or every sender gone: either way, no more for this batch.
        self.queue.recv_timeout(left).ok()
    }
}

/// The inference thread's loop: gather a batch, drop the images nobody waits for any more,
/// run the rest, answer each caller.
fn run(model: ModelWrapper, batcher: Batcher, counters: &BatchCounters, metrics: &EngineMetrics) {
    // Grad mode is per thread: off for the life of this one.
    let _no_grad = tch::no_grad_guard();
    while let Some(mut batch) = batcher.next_batch() {
        let started = Instant::now();
        let gathered = batch.len();
        batch.retain(|job| !job.reply.is_closed());
        if batch.len() < gathered {
            metrics.abandoned_images.increment((gathered - batch.len()) as u64);
        }
        if batch.is_empty() {
            continue;
        }
        for job in &batch {
            let queued = job.waited + started.saturating_duration_since(job.queued_at);
            metrics.queue_seconds.record(queued);
        }
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.images.fetch_add(batch.len() as u64, Ordering::Relaxed);
        metrics.batch_size.record(batch.len() as f64);
        let tensors: Vec<Tensor> = batch.iter().map(|job| job.prepared.tensor.shallow_clone()).collect();
        // tch panics on libtorch errors; one bad batch must not end the thread for everyone.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            model.predict(&Tensor::stack(&tensors, 0)).and_then(|logits| model.post_process(&logits))
        }));
        metrics.inference_seconds.record(started.elapsed());
        let predictions = match outcome {
            Ok(Ok(predictions)) => predictions,
            Ok(Err(error)) => {
                tracing::error!(%error, batch = batch.len(), "inference failed");
                Vec::new()
            }
            Err(_) => {
                tracing::error!(batch = batch.len(), "inference panicked; its requests fail, the thread goes on");
                Vec::new()
            }
        };
        let mut predictions = predictions.into_iter();
        for job in batch {
            let answer = match predictions.next() {
                Some(prediction) => Ok(Classification { prediction, input: job.prepared.input }),
                None => Err(Error::InferenceFailed),
            };
            // A caller that went away no longer needs its answer.
            let _ = job.reply.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batcher over a fresh queue, with `preprocessing` images announced.
    fn batcher_over_new_queue(
        max_batch_size: usize,
        max_batch_delay: Duration,
        preprocessing: usize,
    ) -> (Batcher, SyncSender<Job>) {
        let (jobs, queue) = mpsc::sync_channel(64);
        let preprocessing = Arc::new(AtomicUsize::new(preprocessing));
        (Batcher { queue, preprocessing, max_batch_size, max_batch_delay }, jobs)
    }

    /// A job whose input is all `value`.
    fn job(value: f32) -> Job {
        let (reply, _answer) = oneshot::channel();
        Job {
            prepared: Prepared {
                tensor: Tensor::full([1, 28, 28], f64::from(value), tch::kind::FLOAT_CPU),
                input: ModelInput::blank(max_mnist_artifacts::format::InputShape::grayscale(28)),
            },
            reply,
            waited: Duration::ZERO,
            queued_at: Instant::now(),
        }
    }

    fn values(batch: &[Job]) -> Vec<f64> {
        batch.iter().map(|job| job.prepared.tensor.double_value(&[0, 0, 0])).collect()
    }

    #[test]
    fn takes_what_is_queued_up_to_the_batch_size_in_order_without_waiting() {
        let (batcher, jobs) = batcher_over_new_queue(4, Duration::from_secs(10), 0);
        for value in 0..10 {
            jobs.send(job(value as f32)).unwrap();
        }
        let started = Instant::now();
        assert_eq!(values(&batcher.next_batch().unwrap()), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(values(&batcher.next_batch().unwrap()), [4.0, 5.0, 6.0, 7.0]);
        assert_eq!(values(&batcher.next_batch().unwrap()), [8.0, 9.0]);
        // Nothing was being preprocessed, so the 10 s delay never applied.
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        drop(jobs);
        assert!(batcher.next_batch().is_none());
    }

    #[test]
    fn waits_for_an_image_still_being_preprocessed() {
        let (batcher, jobs) = batcher_over_new_queue(8, Duration::from_secs(10), 1);
        jobs.send(job(1.0)).unwrap();
        let preprocessing = batcher.preprocessing.clone();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            preprocessing.fetch_sub(1, Ordering::AcqRel);
            jobs.send(job(2.0)).unwrap();
        });
        assert_eq!(values(&batcher.next_batch().unwrap()), [1.0, 2.0]);
        late.join().unwrap();
    }

    #[test]
    fn gives_up_waiting_after_the_delay_and_a_zero_delay_never_waits() {
        let (batcher, jobs) = batcher_over_new_queue(8, Duration::from_millis(100), 1);
        jobs.send(job(1.0)).unwrap();
        let started = Instant::now();
        assert_eq!(values(&batcher.next_batch().unwrap()), [1.0]);
        assert!(started.elapsed() >= Duration::from_millis(100), "{:?}", started.elapsed());

        let (batcher, jobs) = batcher_over_new_queue(8, Duration::ZERO, 1);
        jobs.send(job(1.0)).unwrap();
        assert_eq!(values(&batcher.next_batch().unwrap()), [1.0]);
    }
}
