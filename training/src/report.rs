//! A per-class classification report: confusion matrix, precision, recall, F1 and support.
//!
//! A single accuracy figure hides which digits a model gets wrong and what it mistakes them for
//! (a 4 read as a 9 is a different failure from a 1 read as a 7). This module turns the test
//! set's true and predicted class indices into the numbers a person needs to judge a model,
//! in three forms: JSON for tools, Markdown for the run's written report, and a few lines of
//! plain text for the terminal. It knows nothing of tensors or files so it can be tested on
//! hand-computed examples; the caller writes the strings wherever they belong.
//!
//! Divisions by zero follow scikit-learn's `zero_division=0`: a metric whose denominator is
//! zero (a class never predicted, a class with no examples) is reported as 0, never NaN, so
//! the JSON stays valid and the averages stay defined.

use std::fmt::Write as _;

use serde::Serialize;

/// The full report for one evaluation of a classifier over a labelled set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    /// The class names, in class-index order.
    pub labels: Vec<String>,
    /// Counts of examples by true class (row) and predicted class (column).
    pub confusion: Vec<Vec<u64>>,
    /// Precision, recall, F1 and support of each class, in class-index order.
    pub classes: Vec<ClassMetrics>,
    /// The fraction of examples whose prediction is their true class.
    pub accuracy: f64,
    /// The unweighted mean over classes: every class counts the same, however rare.
    pub macro_avg: Averages,
    /// The mean over classes weighted by support: every example counts the same.
    pub weighted_avg: Averages,
    /// The number of examples counted.
    pub total: u64,
}

/// The metrics of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// The class name.
    pub label: String,
    /// Of the examples predicted as this class, the fraction that truly are (0 if none was predicted).
    pub precision: f64,
    /// Of the examples truly of this class, the fraction predicted as it (0 if there are none).
    pub recall: f64,
    /// The harmonic mean of precision and recall (0 if both are 0).
    pub f1: f64,
    /// The number of examples truly of this class.
    pub support: u64,
}

/// Precision, recall and F1 averaged over classes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Averages {
    /// The averaged precision.
    pub precision: f64,
    /// The averaged recall.
    pub recall: f64,
    /// The averaged F1 (the average of per-class F1s, as scikit-learn reports it).
    pub f1: f64,
}

impl Averages {
    /// The mean of each metric over `classes`, each class weighted by `weight`.
    fn over(classes: &[ClassMetrics], weight: impl Fn(&ClassMetrics) -> f64) -> Averages {
        let weights: f64 = classes.iter().map(&weight).sum();
        let mean = |metric: fn(&ClassMetrics) -> f64| {
            ratio(classes.iter().map(|class| weight(class) * metric(class)).sum(), weights)
        };
        Averages {
            precision: mean(|class| class.precision),
            recall: mean(|class| class.recall),
            f1: mean(|class| class.f1),
        }
    }
}

/// `numerator / denominator`, or 0 when the denominator is 0 (scikit-learn's `zero_division=0`).
fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 { 0.0 } else { numerator / denominator }
}

impl ClassificationReport {
    /// Builds the report from the true and predicted class index of each example.
    ///
    /// Precondition: `actual` and `predicted` have the same length and every index lies in
    /// `0..labels.len()`; both come from the project's own data and model, so they are trusted.
    /// Debug builds assert it. Release builds never panic: a pair with an index out of range,
    /// and the tail of the longer slice, are left out of every count (including `total`).
    pub fn new(labels: Vec<String>, actual: &[i64], predicted: &[i64]) -> ClassificationReport {
        debug_assert_eq!(actual.len(), predicted.len(), "one prediction per example");
        let classes = labels.len();
        let index = |value: i64| usize::try_from(value).ok().filter(|&index| index < classes);
        let mut confusion = vec![vec![0u64; classes]; classes];
        for (&truth, &guess) in actual.iter().zip(predicted) {
            let (Some(row), Some(column)) = (index(truth), index(guess)) else {
                debug_assert!(false, "class index out of range: true {truth}, predicted {guess}, {classes} classes");
                continue;
            };
            confusion[row][column] += 1;
        }

        let total: u64 = confusion.iter().flatten().sum();
        let correct: u64 = (0..classes).map(|class| confusion[class][class]).sum();
        let metrics: Vec<ClassMetrics> = labels
            .iter()
            .enumerate()
            .map(|(class, label)| {
                let hits = confusion[class][class] as f64;
                let support: u64 = confusion[class].iter().sum();
                let predicted: u64 = confusion.iter().map(|row| row[class]).sum();
                let precision = ratio(hits, predicted as f64);
                let recall = ratio(hits, support as f64);
                let f1 = ratio(2.0 * precision * recall, precision + recall);
                ClassMetrics { label: label.clone(), precision, recall, f1, support }
            })
            .collect();

        let macro_avg = Averages::over(&metrics, |_| 1.0);
        let weighted_avg = Averages::over(&metrics, |class| class.support as f64);

        ClassificationReport {
            labels,
            confusion,
            classes: metrics,
            accuracy: ratio(correct as f64, total as f64),
            macro_avg,
            weighted_avg,
            total,
        }
    }

    /// The report as pretty-printed JSON, for tools and for keeping beside the model.
    ///
    /// # Panics
    ///
    /// Never: the report holds only strings, integers and floats (which serde_json writes as
    /// `null` were one ever non-finite), none of which can fail to serialize into a string.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report holds only strings, integers and floats")
    }

    /// The report as Markdown: the per-class table with the averages, the accuracy, and the
    /// confusion matrix, so a run's written report shows where the errors are.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("| class | precision | recall | F1 | support |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: |\n");
        for class in &self.classes {
            let (p, r, f1) = (class.precision, class.recall, class.f1);
            let label = escape_cell(&class.label);
            let _ = writeln!(out, "| {label} | {p:.4} | {r:.4} | {f1:.4} | {} |", class.support);
        }
        for (name, avg) in [("macro avg", &self.macro_avg), ("weighted avg", &self.weighted_avg)] {
            let (p, r, f1) = (avg.precision, avg.recall, avg.f1);
            let _ = writeln!(out, "| **{name}** | {p:.4} | {r:.4} | {f1:.4} | {} |", self.total);
        }
        let correct: u64 = (0..self.labels.len()).map(|class| self.confusion[class][class]).sum();
        let _ = writeln!(out, "\n**Accuracy:** {:.4} ({correct} of {} correct)\n", self.accuracy, self.total);

        out.push_str("| true \\ predicted |");
        for label in &self.labels {
            let _ = write!(out, " {} |", escape_cell(label));
        }
        out.push_str("\n| --- |");
        out.push_str(&" ---: |".repeat(self.labels.len()));
        out.push('\n');
        for (label, row) in self.labels.iter().zip(&self.confusion) {
            let _ = write!(out, "| **{}** |", escape_cell(label));
            for count in row {
                let _ = write!(out, " {count} |");
            }
            out.push('\n');
        }
        out
    }

    /// A few lines for the terminal: the accuracy, the three weakest classes by F1 and the
    /// three most frequent confusions, which are what a person looks at first after training.
    pub fn summary(&self) -> String {
        let mut out = format!("accuracy {:.2}% on {} examples", 100.0 * self.accuracy, self.total);
        // A class with neither examples nor predictions has F1 0 without being weak: leave it out.
        let mut weakest: Vec<(usize, &ClassMetrics)> = self
            .classes
            .iter()
            .enumerate()
            .filter(|&(class, metrics)| metrics.support > 0 || self.confusion.iter().any(|row| row[class] > 0))
            .collect();
        weakest.sort_by(|(a, x), (b, y)| x.f1.total_cmp(&y.f1).then(a.cmp(b)));
        if !weakest.is_empty() {
            let list: Vec<String> =
                weakest.iter().take(3).map(|(_, class)| format!("{} (F1 {:.4})", class.label, class.f1)).collect();
            let _ = write!(out, "\nweakest classes: {}", list.join(", "));
        }
        let confusions = self.most_confused(3);
        if !confusions.is_empty() {
            let list: Vec<String> = confusions
                .iter()
                .map(|&(truth, guess, count)| format!("{} → {}: {count}", self.labels[truth], self.labels[guess]))
                .collect();
            let _ = write!(out, "\nmost confused (true → predicted): {}", list.join(", "));
        }
        out
    }

    /// The `n` largest off-diagonal cells of the confusion matrix as `(true, predicted, count)`,
    /// by count descending, ties by true then predicted index; cells with count 0 are left out.
    pub fn most_confused(&self, n: usize) -> Vec<(usize, usize, u64)> {
        let mut cells: Vec<(usize, usize, u64)> = self
            .confusion
            .iter()
            .enumerate()
            .flat_map(|(truth, row)| row.iter().enumerate().map(move |(guess, &count)| (truth, guess, count)))
            .filter(|&(truth, guess, count)| truth != guess && count > 0)
            .collect();
        cells.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        cells.truncate(n);
        cells
    }
}

/// Escapes the one character that would break a Markdown table cell.
fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().copied().map(String::from).collect()
    }

    /// Three classes, ten examples. Confusion (rows true, columns predicted):
    ///
    /// ```text
    ///        a  b  c   support
    ///   a    3  1  0   4
    ///   b    0  2  1   3
    ///   c    1  0  2   3
    /// col    4  3  3
    /// ```
    ///
    /// precision a = 3/4, b = 2/3, c = 2/3; recall a = 3/4, b = 2/3, c = 2/3; so F1 = the same;
    /// accuracy = 7/10.
    fn example() -> ClassificationReport {
        let actual = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2];
        let predicted = [0, 0, 0, 1, 1, 1, 2, 2, 2, 0];
        ClassificationReport::new(labels(&["a", "b", "c"]), &actual, &predicted)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn counts_and_metrics_match_a_hand_calculation() {
        let report = example();
        assert_eq!(report.confusion, vec![vec![3, 1, 0], vec![0, 2, 1], vec![1, 0, 2]]);
        assert_eq!(report.total, 10);
        assert!(close(report.accuracy, 0.7));
        let expected = [(0.75, 0.75, 4), (2.0 / 3.0, 2.0 / 3.0, 3), (2.0 / 3.0, 2.0 / 3.0, 3)];
        for (class, (precision, recall, support)) in report.classes.iter().zip(expected) {
            assert!(close(class.precision, precision), "{class:?}");
            assert!(close(class.recall, recall), "{class:?}");
            assert!(close(class.f1, precision), "{class:?}");
            assert_eq!(class.support, support);
        }
        let macro_mean = (0.75 + 2.0 / 3.0 + 2.0 / 3.0) / 3.0;
        assert!(close(report.macro_avg.precision, macro_mean));
        assert!(close(report.macro_avg.f1, macro_mean));
        // Weighted by support 4, 3, 3: (3 + 2 + 2) / 10.
        assert!(close(report.weighted_avg.recall, 0.7));
        assert!(close(report.weighted_avg.precision, 0.7));
    }

    #[test]
    fn asymmetric_precision_and_recall() {
        // Class 0: 2 examples, both right; class 1: 2 examples, one predicted as 0.
        // precision 0 = 2/3, recall 0 = 1; precision 1 = 1, recall 1 = 1/2.
        let report = ClassificationReport::new(labels(&["x", "y"]), &[0, 0, 1, 1], &[0, 0, 0, 1]);
        let (x, y) = (&report.classes[0], &report.classes[1]);
        assert!(close(x.precision, 2.0 / 3.0) && close(x.recall, 1.0) && close(x.f1, 0.8));
        assert!(close(y.precision, 1.0) && close(y.recall, 0.5) && close(y.f1, 2.0 / 3.0));
        assert!(close(report.weighted_avg.f1, (0.8 * 2.0 + 2.0 / 3.0 * 2.0) / 4.0));
    }

    #[test]
    fn a_class_never_predicted_has_precision_zero() {
        let report = ClassificationReport::new(labels(&["a", "b", "c"]), &[0, 1, 2], &[0, 1, 1]);
        let c = &report.classes[2];
        assert_eq!((c.precision, c.recall, c.f1, c.support), (0.0, 0.0, 0.0, 1));
        assert!(report.to_json().contains("\"precision\": 0.0"));
    }

    #[test]
    fn empty_input_gives_zeros_not_nan() {
        let report = ClassificationReport::new(labels(&["a", "b"]), &[], &[]);
        assert_eq!(report.total, 0);
        assert_eq!(report.accuracy, 0.0);
        assert_eq!(report.macro_avg, Averages { precision: 0.0, recall: 0.0, f1: 0.0 });
        assert!(!report.to_json().contains("null"));
        assert_eq!(report.summary(), "accuracy 0.00% on 0 examples");
    }

    #[test]
    fn most_confused_orders_by_count_then_index() {
        let actual = [0, 0, 0, 1, 1, 2, 2, 2];
        let predicted = [1, 1, 2, 0, 0, 1, 2, 2];
        let report = ClassificationReport::new(labels(&["0", "1", "2"]), &actual, &predicted);
        assert_eq!(report.most_confused(10), vec![(0, 1, 2), (1, 0, 2), (0, 2, 1), (2, 1, 1)]);
        assert_eq!(report.most_confused(1), vec![(0, 1, 2)]);
        assert!(example().most_confused(0).is_empty());
    }

    #[test]
    fn json_has_every_field() {
        let value: serde_json::Value = serde_json::from_str(&example().to_json()).unwrap();
        assert_eq!(value["labels"], serde_json::json!(["a", "b", "c"]));
        assert_eq!(value["confusion"][0], serde_json::json!([3, 1, 0]));
        assert_eq!(value["classes"][0]["label"], "a");
        assert_eq!(value["classes"][0]["support"], 4);
        assert_eq!(value["accuracy"], 0.7);
        assert_eq!(value["total"], 10);
        assert!(value["macro_avg"]["f1"].is_f64());
        assert!(value["weighted_avg"]["recall"].is_f64());
    }

    #[test]
    fn markdown_has_the_tables() {
        let markdown = example().to_markdown();
        assert!(markdown.contains("| class | precision | recall | F1 | support |\n"), "{markdown}");
        assert!(markdown.contains("| a | 0.7500 | 0.7500 | 0.7500 | 4 |\n"), "{markdown}");
        assert!(markdown.contains("| b | 0.6667 | 0.6667 | 0.6667 | 3 |\n"), "{markdown}");
        assert!(markdown.contains("| **macro avg** | 0.6944 | 0.6944 | 0.6944 | 10 |\n"), "{markdown}");
        assert!(markdown.contains("| **weighted avg** | 0.7000 | 0.7000 | 0.7000 | 10 |\n"), "{markdown}");
        assert!(markdown.contains("**Accuracy:** 0.7000 (7 of 10 correct)"), "{markdown}");
        assert!(markdown.contains("| true \\ predicted | a | b | c |\n| --- | ---: | ---: | ---: |\n"), "{markdown}");
        assert!(markdown.contains("| **c** | 1 | 0 | 2 |\n"), "{markdown}");
    }

    #[test]
    fn markdown_escapes_pipes_in_labels() {
        let report = ClassificationReport::new(labels(&["a|b"]), &[0], &[0]);
        assert!(report.to_markdown().contains("| a\\|b | 1.0000 |"));
    }

    #[test]
    fn summary_names_weak_classes_and_confusions() {
        let summary = example().summary();
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(
            lines,
            [
                "accuracy 70.00% on 10 examples",
                "weakest classes: b (F1 0.6667), c (F1 0.6667), a (F1 0.7500)",
                "most confused (true → predicted): a → b: 1, b → c: 1, c → a: 1",
            ]
        );
    }

    #[test]
    fn summary_skips_classes_absent_from_the_data() {
        let report = ClassificationReport::new(labels(&["a", "b", "unused"]), &[0, 1], &[0, 1]);
        assert!(!report.summary().contains("unused"), "{}", report.summary());
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn out_of_range_pairs_are_not_counted() {
        let report = ClassificationReport::new(labels(&["a", "b"]), &[0, 1, 2, -1], &[0, 5, 1, 0]);
        assert_eq!(report.total, 1);
        assert_eq!(report.confusion, vec![vec![1, 0], vec![0, 0]]);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "class index out of range")]
    fn out_of_range_pairs_assert_in_debug_builds() {
        ClassificationReport::new(labels(&["a", "b"]), &[0, 2], &[0, 1]);
    }
}
