//! A small TensorBoard event-file writer, so training runs can be inspected with the stock
//! `tensorboard --logdir runs` without pulling a TensorFlow or PyTorch logging stack into the
//! binary.
//!
//! An event file is a sequence of TFRecord frames, each holding one serialized `tensorboard.Event`
//! protobuf. Only the handful of messages needed for scalars, images, text, the hyper-parameter
//! plugin and the network's graph are mirrored here (see the private `proto` module); their field numbers follow the
//! `.proto` files that ship with the `tensorboard` Python package.
//!
//! The embedding projector does not read event files at all: it reads `projector_config.pbtxt`
//! from the run directory, which [`write_projector`] produces together with its TSV files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::{Error, Result};

/// One node of the graph [`EventWriter::graph`] logs.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphNode {
    /// Its name; a `/` groups nodes (`block1/conv` is drawn inside `block1`).
    pub name: String,
    /// Its operation, in TensorFlow's words (`Conv2D`, `Relu`, `MatMul`, …).
    pub op: String,
    /// The names of the nodes that feed it.
    pub inputs: Vec<String>,
    /// The shape of its output.
    pub shape: Vec<i64>,
}

/// The GraphDef version the graph says it was written by (PyTorch's writer says 22).
const GRAPH_PRODUCER: i32 = 22;

/// Protobuf messages mirrored by hand (no `protoc` at build time), trimmed to the fields we write.
/// Enum-typed fields are plain `int32`, which has the same wire encoding.
mod proto {
    use std::collections::BTreeMap;

    /// `tensorboard.DataType.DT_FLOAT` (tensorboard/compat/proto/types.proto).
    pub const DT_FLOAT: i32 = 1;
    /// `tensorboard.DataType.DT_STRING`.
    pub const DT_STRING: i32 = 7;
    /// `tensorboard.hparams.DataType` values (tensorboard/plugins/hparams/api.proto).
    pub const HPARAM_STRING: i32 = 1;
    pub const HPARAM_BOOL: i32 = 2;
    pub const HPARAM_FLOAT64: i32 = 3;
    /// `tensorboard.hparams.Status.STATUS_SUCCESS`.
    pub const STATUS_SUCCESS: i32 = 1;

    /// `tensorboard.Event` (tensorboard/compat/proto/event.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        #[prost(double, tag = "1")]
        pub wall_time: f64,
        #[prost(int64, tag = "2")]
        pub step: i64,
        #[prost(oneof = "EventWhat", tags = "3, 4, 5")]
        pub what: Option<EventWhat>,
    }

    /// The `what` oneof of `tensorboard.Event`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum EventWhat {
        #[prost(string, tag = "3")]
        FileVersion(String),
        /// A serialized [`GraphDef`].
        #[prost(bytes = "vec", tag = "4")]
        GraphDef(Vec<u8>),
        #[prost(message, tag = "5")]
        Summary(Summary),
    }

    /// `tensorboard.GraphDef` (tensorboard/compat/proto/graph.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphDef {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeDef>,
        #[prost(message, optional, tag = "4")]
        pub versions: Option<VersionDef>,
    }

    /// `tensorboard.VersionDef` (tensorboard/compat/proto/versions.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionDef {
        #[prost(int32, tag = "1")]
        pub producer: i32,
    }

    /// `tensorboard.NodeDef` (tensorboard/compat/proto/node_def.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeDef {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub op: String,
        #[prost(string, repeated, tag = "3")]
        pub input: Vec<String>,
        #[prost(btree_map = "string, message", tag = "5")]
        pub attr: BTreeMap<String, AttrValue>,
    }

    /// `tensorboard.AttrValue` (tensorboard/compat/proto/attr_value.proto): a list of shapes.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttrValue {
        #[prost(message, optional, tag = "1")]
        pub list: Option<ListValue>,
    }

    /// `tensorboard.AttrValue.ListValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListValue {
        #[prost(message, repeated, tag = "7")]
        pub shape: Vec<TensorShapeProto>,
    }

    /// `tensorboard.Summary` (tensorboard/compat/proto/summary.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        #[prost(message, repeated, tag = "1")]
        pub value: Vec<SummaryValue>,
    }

    /// `tensorboard.Summary.Value`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SummaryValue {
        #[prost(string, tag = "1")]
        pub tag: String,
        #[prost(message, optional, tag = "9")]
        pub metadata: Option<SummaryMetadata>,
        #[prost(oneof = "SummaryValueKind", tags = "2, 4, 8")]
        pub value: Option<SummaryValueKind>,
    }

    /// The `value` oneof of `tensorboard.Summary.Value`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum SummaryValueKind {
        #[prost(float, tag = "2")]
        SimpleValue(f32),
        #[prost(message, tag = "4")]
        Image(Image),
        #[prost(message, tag = "8")]
        Tensor(TensorProto),
    }

    /// `tensorboard.Summary.Image`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Image {
        #[prost(int32, tag = "1")]
        pub height: i32,
        #[prost(int32, tag = "2")]
        pub width: i32,
        #[prost(int32, tag = "3")]
        pub colorspace: i32,
        #[prost(bytes = "vec", tag = "4")]
        pub encoded_image_string: Vec<u8>,
    }

    /// `tensorboard.SummaryMetadata`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SummaryMetadata {
        #[prost(message, optional, tag = "1")]
        pub plugin_data: Option<PluginData>,
    }

    /// `tensorboard.SummaryMetadata.PluginData`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PluginData {
        #[prost(string, tag = "1")]
        pub plugin_name: String,
        #[prost(bytes = "vec", tag = "2")]
        pub content: Vec<u8>,
    }

    /// `tensorboard.TensorProto` (tensorboard/compat/proto/tensor.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int32, tag = "1")]
        pub dtype: i32,
        #[prost(message, optional, tag = "2")]
        pub tensor_shape: Option<TensorShapeProto>,
        #[prost(bytes = "vec", repeated, tag = "8")]
        pub string_val: Vec<Vec<u8>>,
    }

    /// `tensorboard.TensorShapeProto` (tensorboard/compat/proto/tensor_shape.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "2")]
        pub dim: Vec<Dim>,
    }

    /// `tensorboard.TensorShapeProto.Dim`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dim {
        #[prost(int64, tag = "1")]
        pub size: i64,
    }

    /// `tensorboard.hparams.HParamsPluginData` (tensorboard/plugins/hparams/plugin_data.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HParamsPluginData {
        #[prost(int32, tag = "1")]
        pub version: i32,
        #[prost(oneof = "HParamsData", tags = "2, 3, 4")]
        pub data: Option<HParamsData>,
    }

    /// The `data` oneof of `tensorboard.hparams.HParamsPluginData`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum HParamsData {
        #[prost(message, tag = "2")]
        Experiment(Experiment),
        #[prost(message, tag = "3")]
        SessionStartInfo(SessionStartInfo),
        #[prost(message, tag = "4")]
        SessionEndInfo(SessionEndInfo),
    }

    /// `tensorboard.hparams.Experiment` (tensorboard/plugins/hparams/api.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Experiment {
        #[prost(double, tag = "3")]
        pub time_created_secs: f64,
        #[prost(message, repeated, tag = "4")]
        pub hparam_infos: Vec<HParamInfo>,
        #[prost(message, repeated, tag = "5")]
        pub metric_infos: Vec<MetricInfo>,
    }

    /// `tensorboard.hparams.HParamInfo`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HParamInfo {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(int32, tag = "4")]
        pub r#type: i32,
    }

    /// `tensorboard.hparams.MetricInfo`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricInfo {
        #[prost(message, optional, tag = "1")]
        pub name: Option<MetricName>,
    }

    /// `tensorboard.hparams.MetricName`; an empty group means "the session's own run".
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricName {
        #[prost(string, tag = "1")]
        pub group: String,
        #[prost(string, tag = "2")]
        pub tag: String,
    }

    /// `tensorboard.hparams.SessionStartInfo` (tensorboard/plugins/hparams/plugin_data.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SessionStartInfo {
        #[prost(btree_map = "string, message", tag = "1")]
        pub hparams: BTreeMap<String, StructValue>,
        #[prost(double, tag = "5")]
        pub start_time_secs: f64,
    }

    /// `tensorboard.hparams.SessionEndInfo`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SessionEndInfo {
        #[prost(int32, tag = "1")]
        pub status: i32,
        #[prost(double, tag = "2")]
        pub end_time_secs: f64,
    }

    /// `google.protobuf.Value` (google/protobuf/struct.proto), without the null/struct/list kinds.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StructValue {
        #[prost(oneof = "StructValueKind", tags = "2, 3, 4")]
        pub kind: Option<StructValueKind>,
    }

    /// The `kind` oneof of `google.protobuf.Value`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum StructValueKind {
        #[prost(double, tag = "2")]
        Number(f64),
        #[prost(string, tag = "3")]
        Text(String),
        #[prost(bool, tag = "4")]
        Bool(bool),
    }
}

use proto::{StructValueKind, SummaryValueKind};

/// Plugin names and tags the hparams plugin looks for (tensorboard/plugins/hparams/metadata.py).
const HPARAMS_PLUGIN: &str = "hparams";
const HPARAMS_EXPERIMENT_TAG: &str = "_hparams_/experiment";
const HPARAMS_SESSION_START_TAG: &str = "_hparams_/session_start_info";
const HPARAMS_SESSION_END_TAG: &str = "_hparams_/session_end_info";

/// A hyper-parameter value, typed so the HPARAMS tab can sort and filter numbers as numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum HParam {
    /// Any numeric setting (learning rate, batch size, ...), shown as a float64 column.
    Number(f64),
    /// A categorical setting such as an optimizer or model name.
    Text(String),
    /// An on/off switch.
    Bool(bool),
}

/// Appends events to one `events.out.tfevents.*` file in a run directory; TensorBoard treats each
/// directory holding such files as one run.
///
/// Writes are buffered: call [`EventWriter::flush`] at points where a live TensorBoard should see
/// the data (the buffer is also flushed on drop).
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, named like TensorBoard's own writer
    /// (`events.out.tfevents.<unix-secs>.<hostname>.<pid>.<n>`, the last two so that a run
    /// resumed within the same second gets a file of its own), and writes the version header
    /// event that readers expect first. An existing file of the same name is never truncated:
    /// that is an error.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        static WRITERS: AtomicU64 = AtomicU64::new(0);
        fs::create_dir_all(dir).map_err(Error::io("cannot create", dir))?;
        let name = format!(
            "events.out.tfevents.{}.{}.{}.{}",
            now_secs() as u64,
            hostname(),
            std::process::id(),
            WRITERS.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let file =
            OpenOptions::new().write(true).create_new(true).open(&path).map_err(Error::io("cannot create", &path))?;
        let mut writer = EventWriter { path, out: BufWriter::new(file) };
        writer.write_event(0, proto::EventWhat::FileVersion("brain.Event:2".to_owned()))?;
        Ok(writer)
    }

    /// The event file being written, for log messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logs one point of a scalar curve (SCALARS tab).
    pub fn scalar(&mut self, tag: &str, step: i64, value: f32) -> Result<()> {
        self.write_value(step, tag, None, SummaryValueKind::SimpleValue(value))
    }

    /// Logs an already PNG-encoded image (IMAGES tab); `channels` is 1 (grey), 3 (RGB) or 4 (RGBA).
    /// The size is passed in rather than decoded so this module stays free of image codecs.
    pub fn image_png(
        &mut self,
        tag: &str,
        step: i64,
        png: &[u8],
        width: u32,
        height: u32,
        channels: u32,
    ) -> Result<()> {
        let image = proto::Image {
            height: to_i32(height),
            width: to_i32(width),
            colorspace: to_i32(channels),
            encoded_image_string: png.to_vec(),
        };
        self.write_value(step, tag, None, SummaryValueKind::Image(image))
    }

    /// Logs a Markdown document (TEXT tab), e.g. a run's configuration or a sample report.
    pub fn text(&mut self, tag: &str, step: i64, markdown: &str) -> Result<()> {
        let tensor = proto::TensorProto {
            dtype: proto::DT_STRING,
            tensor_shape: Some(proto::TensorShapeProto::default()),
            string_val: vec![markdown.as_bytes().to_vec()],
        };
        // The text plugin's content is a serialized `TextPluginData { version: 0 }`: no bytes.
        let metadata = plugin_metadata("text", Vec::new());
        self.write_value(step, tag, Some(metadata), SummaryValueKind::Tensor(tensor))
    }

    /// Registers this run with the HPARAMS tab: declares the hyper-parameters and the scalar tags
    /// to show as metrics (the experiment), then records this run's values (the session start).
    ///
    /// TensorBoard takes the experiment from one arbitrary run of the logdir, so every run of a
    /// logdir should pass the same names and metrics. Call [`EventWriter::end_session`] when
    /// training finishes so the run is shown as completed.
    pub fn hparams(&mut self, hparams: &[(&str, HParam)], metrics: &[&str]) -> Result<()> {
        let now = now_secs();
        let experiment = proto::Experiment {
            time_created_secs: now,
            hparam_infos: hparams
                .iter()
                .map(|(name, value)| proto::HParamInfo {
                    name: (*name).to_owned(),
                    r#type: match value {
                        HParam::Number(_) => proto::HPARAM_FLOAT64,
                        HParam::Text(_) => proto::HPARAM_STRING,
                        HParam::Bool(_) => proto::HPARAM_BOOL,
                    },
                })
                .collect(),
            metric_infos: metrics
                .iter()
                .map(|tag| proto::MetricInfo {
                    name: Some(proto::MetricName { group: String::new(), tag: (*tag).to_owned() }),
                })
                .collect(),
        };
        self.write_hparams(HPARAMS_EXPERIMENT_TAG, proto::HParamsData::Experiment(experiment))?;
        let start = proto::SessionStartInfo {
            hparams: hparams
                .iter()
                .map(|(name, value)| {
                    let kind = match value {
                        HParam::Number(x) => StructValueKind::Number(*x),
                        HParam::Text(s) => StructValueKind::Text(s.clone()),
                        HParam::Bool(b) => StructValueKind::Bool(*b),
                    };
                    ((*name).to_owned(), proto::StructValue { kind: Some(kind) })
                })
                .collect(),
            start_time_secs: now,
        };
        self.write_hparams(HPARAMS_SESSION_START_TAG, proto::HParamsData::SessionStartInfo(start))
    }

    /// Marks the session begun by [`EventWriter::hparams`] as successfully finished.
    pub fn end_session(&mut self) -> Result<()> {
        let end = proto::SessionEndInfo { status: proto::STATUS_SUCCESS, end_time_secs: now_secs() };
        self.write_hparams(HPARAMS_SESSION_END_TAG, proto::HParamsData::SessionEndInfo(end))
    }

    /// Logs the network's graph (GRAPHS tab): `nodes` in order, each with the names of the
    /// nodes that feed it and the shape of its output (the `_output_shapes` TensorBoard shows).
    pub fn graph(&mut self, nodes: &[GraphNode]) -> Result<()> {
        let node = nodes
            .iter()
            .map(|node| {
                let shape =
                    proto::TensorShapeProto { dim: node.shape.iter().map(|&size| proto::Dim { size }).collect() };
                let shapes = proto::AttrValue { list: Some(proto::ListValue { shape: vec![shape] }) };
                proto::NodeDef {
                    name: node.name.clone(),
                    op: node.op.clone(),
                    input: node.inputs.clone(),
                    attr: [("_output_shapes".to_owned(), shapes)].into(),
                }
            })
            .collect();
        let graph = proto::GraphDef { node, versions: Some(proto::VersionDef { producer: GRAPH_PRODUCER }) };
        self.write_event(0, proto::EventWhat::GraphDef(graph.encode_to_vec()))
    }

    /// Pushes buffered events to the file so a running TensorBoard picks them up.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(Error::io("cannot write", &self.path))
    }

    /// Hparams summaries carry their payload in the metadata and, like TensorBoard's own writer,
    /// an empty float vector as the tensor, at step 0.
    fn write_hparams(&mut self, tag: &str, data: proto::HParamsData) -> Result<()> {
        let content = proto::HParamsPluginData { version: 0, data: Some(data) }.encode_to_vec();
        let empty = proto::TensorProto {
            dtype: proto::DT_FLOAT,
            tensor_shape: Some(proto::TensorShapeProto { dim: vec![proto::Dim { size: 0 }] }),
            string_val: Vec::new(),
        };
        let metadata = plugin_metadata(HPARAMS_PLUGIN, content);
        self.write_value(0, tag, Some(metadata), SummaryValueKind::Tensor(empty))
    }

    fn write_value(
        &mut self,
        step: i64,
        tag: &str,
        metadata: Option<proto::SummaryMetadata>,
        value: SummaryValueKind,
    ) -> Result<()> {
        let value = proto::SummaryValue { tag: tag.to_owned(), metadata, value: Some(value) };
        self.write_event(step, proto::EventWhat::Summary(proto::Summary { value: vec![value] }))
    }

    fn write_event(&mut self, step: i64, what: proto::EventWhat) -> Result<()> {
        let event = proto::Event { wall_time: now_secs(), step, what: Some(what) };
        write_record(&mut self.out, &event.encode_to_vec()).map_err(Error::io("cannot write", &self.path))
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        // Nowhere to report an error from drop; callers wanting to know call `flush` first.
        let _ = self.out.flush();
    }
}

/// Writes the files the embedding projector (PROJECTOR tab) reads for one set of points:
/// `projector/<tensor_name>.tsv` (one row of floats per point),
/// `projector/<tensor_name>-metadata.tsv` (one label per point), optionally
/// `projector/<tensor_name>-sprite.png` (a grid of square thumbnails of `side` pixels, in point
/// order), and `projector_config.pbtxt` pointing at them with paths relative to `dir`.
///
/// `dir` should be a run directory (one holding an event file) or the logdir itself: the projector
/// only looks for the config there. The config lists this one embedding; an earlier config is
/// replaced. `tensor_name` must be a plain file name of ASCII letters, digits, `_`, `-` and `.`.
pub fn write_projector(
    dir: &Path,
    tensor_name: &str,
    embeddings: &[Vec<f32>],
    labels: &[String],
    sprite: Option<(&[u8], u32)>,
) -> Result<()> {
    let invalid = |message: String| Error::io("cannot write projector data to", dir)(invalid_input(message));
    let cols = validate_projector(tensor_name, embeddings, labels).map_err(invalid)?;
    let sub = dir.join("projector");
    fs::create_dir_all(&sub).map_err(Error::io("cannot create", &sub))?;

    let tensor_path = format!("projector/{tensor_name}.tsv");
    let mut tsv = String::new();
    for row in embeddings {
        let cells: Vec<String> = row.iter().map(f32::to_string).collect();
        tsv.push_str(&cells.join("\t"));
        tsv.push('\n');
    }
    write_file(&dir.join(&tensor_path), tsv.as_bytes())?;

    // A single-column metadata file has no header line.
    let metadata_path = format!("projector/{tensor_name}-metadata.tsv");
    let mut meta = labels.join("\n");
    meta.push('\n');
    write_file(&dir.join(&metadata_path), meta.as_bytes())?;

    let mut config = format!(
        "embeddings {{\n  tensor_name: \"{tensor_name}\"\n  tensor_path: \"{tensor_path}\"\n  \
         metadata_path: \"{metadata_path}\"\n  tensor_shape: {}\n  tensor_shape: {cols}\n",
        embeddings.len()
    );
    if let Some((png, side)) = sprite {
        let image_path = format!("projector/{tensor_name}-sprite.png");
        write_file(&dir.join(&image_path), png)?;
        config.push_str(&format!(
            "  sprite {{\n    image_path: \"{image_path}\"\n    single_image_dim: {side}\n    \
             single_image_dim: {side}\n  }}\n"
        ));
    }
    config.push_str("}\n");
    write_file(&dir.join("projector_config.pbtxt"), config.as_bytes())
}

/// Checks what TensorBoard would otherwise choke on later, returning the number of columns.
fn validate_projector(tensor_name: &str, embeddings: &[Vec<f32>], labels: &[String]) -> Result<usize, String> {
    let name_ok = !tensor_name.is_empty()
        && !tensor_name.starts_with('.')
        && tensor_name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if !name_ok {
        return Err(format!("tensor name {tensor_name:?} is not a plain file name"));
    }
    let cols = embeddings.first().map_or(0, Vec::len);
    if cols == 0 {
        return Err("no embeddings, or empty rows".to_owned());
    }
    for (i, row) in embeddings.iter().enumerate() {
        if row.len() != cols {
            return Err(format!("row {i} has {} values, row 0 has {cols}", row.len()));
        }
        if !row.iter().all(|x| x.is_finite()) {
            return Err(format!("row {i} has a non-finite value"));
        }
    }
    if labels.len() != embeddings.len() {
        return Err(format!("{} labels for {} rows", labels.len(), embeddings.len()));
    }
    if let Some(i) = labels.iter().position(|l| l.contains(['\t', '\n', '\r'])) {
        return Err(format!("label {i} contains a tab or line break"));
    }
    Ok(cols)
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    fs::write(path, contents).map_err(Error::io("cannot write", path))
}

fn plugin_metadata(plugin_name: &str, content: Vec<u8>) -> proto::SummaryMetadata {
    proto::SummaryMetadata { plugin_data: Some(proto::PluginData { plugin_name: plugin_name.to_owned(), content }) }
}

/// Writes one TFRecord frame: length, masked CRC of the length, data, masked CRC of the data.
fn write_record(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&masked_crc(&len).to_le_bytes())?;
    out.write_all(data)?;
    out.write_all(&masked_crc(data).to_le_bytes())
}

/// CRC-32C as TFRecord stores it, rotated and offset so CRCs of data containing CRCs stay strong.
fn masked_crc(data: &[u8]) -> u32 {
    crc32c::crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Image sizes and channel counts far below `i32::MAX`; saturate rather than wrap if not.
fn to_i32(x: u32) -> i32 {
    i32::try_from(x).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_matches_reference() {
        // The standard CRC-32C check value, and its mask ((crc >> 15) | (crc << 17)) + 0xa282ead8
        // worked out independently with a bitwise pure-Python CRC-32C.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xC78A_B0E5);
    }

    #[test]
    fn record_round_trip() {
        let data = b"hello tensorboard";
        let mut buf = Vec::new();
        write_record(&mut buf, data).unwrap();
        assert_eq!(buf.len(), 8 + 4 + data.len() + 4);
        let len_bytes: [u8; 8] = buf[..8].try_into().unwrap();
        assert_eq!(u64::from_le_bytes(len_bytes), data.len() as u64);
        assert_eq!(u32::from_le_bytes(buf[8..12].try_into().unwrap()), masked_crc(&len_bytes));
        assert_eq!(&buf[12..12 + data.len()], data);
        assert_eq!(u32::from_le_bytes(buf[12 + data.len()..].try_into().unwrap()), masked_crc(data));
    }

    #[test]
    fn writer_emits_version_then_scalar() {
        let dir = std::env::temp_dir().join(format!("tb-writer-test-{}", std::process::id()));
        let path = {
            let mut w = EventWriter::create(&dir).unwrap();
            w.scalar("loss", 7, 0.5).unwrap();
            w.path().to_owned()
        };
        let bytes = fs::read(&path).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let mut events = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let data = &rest[12..12 + len];
            assert_eq!(u32::from_le_bytes(rest[12 + len..16 + len].try_into().unwrap()), masked_crc(data));
            events.push(proto::Event::decode(data).unwrap());
            rest = &rest[16 + len..];
        }
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].what, Some(proto::EventWhat::FileVersion("brain.Event:2".into())));
        assert_eq!(events[1].step, 7);
        let Some(proto::EventWhat::Summary(summary)) = &events[1].what else { panic!("not a summary") };
        assert_eq!(summary.value[0].tag, "loss");
        assert_eq!(summary.value[0].value, Some(SummaryValueKind::SimpleValue(0.5)));
    }

    #[test]
    fn projector_validation() {
        let labels = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
        let ok = vec![vec![1.0, 2.0], vec![3.0, 4.0]];
        assert_eq!(validate_projector("digits", &ok, &labels(2)), Ok(2));
        let ragged = vec![vec![1.0, 2.0], vec![3.0]];
        assert!(validate_projector("digits", &ragged, &labels(2)).unwrap_err().contains("row 1"));
        assert!(validate_projector("digits", &ok, &labels(3)).unwrap_err().contains("3 labels for 2 rows"));
        assert!(validate_projector("digits", &[], &[]).is_err());
        assert!(validate_projector("../x", &ok, &labels(2)).is_err());
        assert!(validate_projector("", &ok, &labels(2)).is_err());
        let nan = vec![vec![1.0, f32::NAN], vec![3.0, 4.0]];
        assert!(validate_projector("digits", &nan, &labels(2)).is_err());
        let tabbed = vec!["a\tb".to_owned(), "c".to_owned()];
        assert!(validate_projector("digits", &ok, &tabbed).is_err());
    }

    #[test]
    fn write_projector_reports_invalid_input() {
        let dir = std::env::temp_dir().join(format!("tb-projector-test-{}", std::process::id()));
        let err = write_projector(&dir, "digits", &[vec![1.0]], &[], None).unwrap_err();
        assert!(matches!(&err, Error::Io { cause, .. } if cause.kind() == io::ErrorKind::InvalidInput), "{err}");
        assert!(!dir.exists(), "nothing is written for invalid input");
    }
}
