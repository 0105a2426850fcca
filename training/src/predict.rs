//! Offline classification of image files, with no server, through the serving wrapper
//! ([`ModelWrapper`]: the same `pre_process`, `predict` and `post_process` as a request), for
//! the `predict` bin. A file whose path names its class (`DIR/7/x.png`, or `x_7.png`) is
//! labelled, and labelled files make the same report as training.

use std::path::{Path, PathBuf};

use max_mnist_core::wrapper::{ModelWrapper, Prediction};
use serde::Serialize;
use tch::Tensor;

use crate::monitor::save_report;
use crate::report::ClassificationReport;
use crate::{Error, Result};

/// The extensions of the files a folder is searched for (a file named on the command line is
/// read whatever its name).
const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"];

/// The files to classify: each path that is not a folder as given, and each folder's image
/// files, searched recursively, in name order.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            images_under(path, &mut found)?;
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn images_under(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(Error::io("cannot read the folder", dir))? {
        let path = entry.map_err(Error::io("cannot read the folder", dir))?.path();
        if path.is_dir() {
            images_under(&path, found)?;
        } else if path
            .extension()
            .and_then(|extension| extension.to_str())
            .is_some_and(|extension| IMAGE_EXTENSIONS.contains(&extension.to_ascii_lowercase().as_str()))
        {
            found.push(path);
        }
    }
    Ok(())
}

/// The class `path` names, if any: its folder's name (`DIR/7/x.png`) or the end of its stem
/// after the last `_` (`x_7.png`), when that is one of `labels`.
pub fn label_of(path: &Path, labels: &[String]) -> Option<usize> {
    let class = |name: &str| labels.iter().position(|label| label == name);
    let folder = path.parent().and_then(Path::file_name).and_then(|name| name.to_str());
    let suffix =
        path.file_stem().and_then(|stem| stem.to_str()).and_then(|stem| stem.rsplit_once('_')).map(|(_, end)| end);
    folder.and_then(class).or_else(|| suffix.and_then(class))
}

/// One line of the output: a file and what the model says of it, or why it could not.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The file, as found.
    pub file: String,
    /// The predicted label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction: Option<String>,
    /// Its probability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f32>,
    /// Whether the image looks like one of the model's classes at all (none for a model
    /// without a domain threshold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_domain: Option<bool>,
    /// How much it looks like the model's training data (the log-sum-exp of the logits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_score: Option<f32>,
    /// The label the file's path names, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Why the file could not be classified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The probability of every class, in label order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probabilities: Vec<f32>,
}

/// Classifies `files` as one batch: each is read and preprocessed on its own (a file that
/// cannot be is an error row, the others go on), then the batch runs through the network.
pub fn classify(model: &ModelWrapper, files: &[PathBuf]) -> Result<Vec<Row>> {
    let labels = &model.card().labels;
    let prepared: Vec<std::result::Result<Tensor, String>> = files
        .iter()
        .map(|file| {
            let bytes = std::fs::read(file).map_err(|error| format!("cannot read it: {error}"))?;
            model.pre_process(&bytes).map(|prepared| prepared.tensor).map_err(|error| error.to_string())
        })
        .collect();
    let tensors: Vec<&Tensor> = prepared.iter().filter_map(|result| result.as_ref().ok()).collect();
    let mut predictions: std::vec::IntoIter<Prediction> = if tensors.is_empty() {
        Vec::new().into_iter()
    } else {
        model.post_process(&model.predict(&Tensor::stack(&tensors, 0))?)?.into_iter()
    };
    Ok(files
        .iter()
        .zip(prepared)
        .map(|(file, prepared)| {
            let outcome =
                prepared.and_then(|_| predictions.next().ok_or("the network gave no answer for it".to_owned()));
            Row::new(file, label_of(file, labels).map(|class| labels[class].clone()), outcome)
        })
        .collect())
}

/// The CSV header: file, prediction, probability, in_domain, domain_score, label, error, then
/// one column per class.
pub fn csv_header(labels: &[String]) -> String {
    let columns =
        ["file", "prediction", "probability", "in_domain", "domain_score", "label", "error"].map(str::to_owned);
    let classes = labels.iter().map(|label| format!("p_{label}"));
    columns.into_iter().chain(classes).map(|column| csv_field(&column)).collect::<Vec<_>>().join(",")
}

impl Row {
    /// The row of `file`, whose path names `label`: its prediction, or why there is none.
    fn new(file: &Path, label: Option<String>, outcome: std::result::Result<Prediction, String>) -> Row {
        let file = file.display().to_string();
        match outcome {
            Ok(prediction) => Row {
                file,
                prediction: Some(prediction.label),
                probability: Some(prediction.probability),
                in_domain: prediction.in_domain,
                domain_score: Some(prediction.domain_score),
                label,
                error: None,
                probabilities: prediction.probabilities,
            },
            Err(error) => Row {
                file,
                prediction: None,
                probability: None,
                in_domain: None,
                domain_score: None,
                label,
                error: Some(error),
                probabilities: Vec::new(),
            },
        }
    }

    /// The row as a CSV line under [`csv_header`].
    pub fn to_csv(&self, classes: usize) -> String {
        let optional = |text: &Option<String>| text.as_deref().map(csv_field).unwrap_or_default();
        let mut fields = vec![
            csv_field(&self.file),
            optional(&self.prediction),
            self.probability.map(|probability| probability.to_string()).unwrap_or_default(),
            self.in_domain.map(|in_domain| in_domain.to_string()).unwrap_or_default(),
            self.domain_score.map(|score| score.to_string()).unwrap_or_default(),
            optional(&self.label),
            optional(&self.error),
        ];
        fields.extend((0..classes).map(|class| self.probabilities.get(class).map(f32::to_string).unwrap_or_default()));
        fields.join(",")
    }

    /// The row as one JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
}

/// The report of the labelled rows that were classified, written into `dir` as training
/// writes its own; `None` when no row is labelled.
pub fn report(rows: &[Row], labels: &[String], dir: &Path) -> Result<Option<ClassificationReport>> {
    let class = |label: &Option<String>| label.as_ref().and_then(|label| labels.iter().position(|name| name == label));
    let (actual, predicted): (Vec<i64>, Vec<i64>) =
        rows.iter().filter_map(|row| Some((class(&row.label)? as i64, class(&row.prediction)? as i64))).unzip();
    if actual.is_empty() {
        return Ok(None);
    }
    let report = ClassificationReport::new(labels.to_vec(), &actual, &predicted);
    std::fs::create_dir_all(dir).map_err(Error::io("cannot create", dir))?;
    save_report(&report, dir, "true vs predicted")?;
    Ok(Some(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_names_its_class_by_folder_or_by_the_end_of_its_stem() {
        let labels: Vec<String> = ["0", "7", "Trouser"].map(str::to_owned).to_vec();
        assert_eq!(label_of(Path::new("set/7/a.png"), &labels), Some(1));
        assert_eq!(label_of(Path::new("set/scan_7.jpg"), &labels), Some(1));
        assert_eq!(label_of(Path::new("Trouser/x_0.png"), &labels), Some(2), "the folder first");
        assert_eq!(label_of(Path::new("photos/x_12.png"), &labels), None);
        assert_eq!(label_of(Path::new("x.png"), &labels), None);
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"7\""), "\"say \"\"7\"\"\"");
        assert_eq!(
            csv_header(&["T-shirt, top".to_owned()]),
            "file,prediction,probability,in_domain,domain_score,label,error,\"p_T-shirt, top\""
        );
    }
}
