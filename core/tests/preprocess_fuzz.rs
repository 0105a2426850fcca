//! A fuzz target for `pre_process`, run by proptest for a bounded number of cases in every
//! `make test`: whatever bytes arrive (random ones, real images of every supported format
//! with bytes flipped, cut or inserted, or headers declaring any size), preprocessing returns
//! a tensor of the network's shape or an error, and never panics or decodes past the pixel
//! limit. A failing case is shrunk and saved under `proptest-regressions/` to be replayed.

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use image::ImageFormat;
use max_mnist_core::preprocess::Preprocessor;
use proptest::prelude::*;

/// A pixel limit small enough that a header declaring more must be refused unread.
const MAX_PIXELS: u64 = 4_000_000;

fn preprocessor() -> Preprocessor {
    Preprocessor::mnist_digits(MAX_PIXELS)
}

/// A real digit and a real photo, in every supported format, and two large JPEGs.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
        let mut seeds = Vec::new();
        for name in ["digit-7.png", "photo-4-exif.jpg"] {
            let bytes = std::fs::read(samples.join(name)).unwrap();
            let decoded = image::load_from_memory(&bytes).unwrap().to_rgb8();
            for format in [
                ImageFormat::Png,
                ImageFormat::Jpeg,
                ImageFormat::Gif,
                ImageFormat::Bmp,
                ImageFormat::WebP,
                ImageFormat::Tiff,
            ] {
                let mut encoded = Cursor::new(Vec::new());
                decoded.write_to(&mut encoded, format).unwrap();
                seeds.push(encoded.into_inner());
            }
            seeds.push(bytes);
        }
        // Large enough for the reduced-scale JPEG path: a baseline photo and a progressive one.
        let photo = image::load_from_memory(&std::fs::read(samples.join("photo-4-exif.jpg")).unwrap()).unwrap();
        let mut large = Cursor::new(Vec::new());
        photo
            .resize_exact(1600, 1360, image::imageops::FilterType::Triangle)
            .to_rgb8()
            .write_to(&mut large, ImageFormat::Jpeg)
            .unwrap();
        seeds.push(large.into_inner());
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        seeds.push(std::fs::read(fixtures.join("digit-3-progressive-1600x1200.jpg")).unwrap());
        seeds
    })
}

/// Runs `pre_process` on `bytes`: a tensor of the network's shape, or an error; a panic
/// fails the property.
fn preprocess_is_total(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(tensor) = preprocessor().pre_process(bytes) {
        let tensor = tensor.tensor;
        prop_assert_eq!(tensor.size(), vec![1, 28, 28]);
        let values: Vec<f32> = tensor.flatten(0, -1).try_into().unwrap();
        prop_assert!(values.iter().all(|value| value.is_finite()));
    }
    Ok(())
}

/// One change to a file's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Overwrite { at: usize, value: u32 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), any::<u32>()).prop_map(|(at, value)| Mutation::Overwrite { at, value }),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        if bytes.is_empty() {
            break;
        }
        match mutation {
            Mutation::Flip { at, mask } => {
                let at = at % bytes.len();
                bytes[at] ^= mask;
            }
            Mutation::Truncate { at } => bytes.truncate(at % bytes.len()),
            Mutation::Insert { at, bytes: inserted } => {
                let at = at % bytes.len();
                bytes.splice(at..at, inserted.iter().copied());
            }
            Mutation::Overwrite { at, value } => {
                // Headers keep sizes in their first bytes: aim there half the time.
                let at = if value % 2 == 0 { at % bytes.len().min(64) } else { at % bytes.len() };
                let end = (at + 4).min(bytes.len());
                bytes[at..end].copy_from_slice(&value.to_be_bytes()[..end - at]);
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        preprocess_is_total(&bytes)?;
    }

    #[test]
    fn random_bytes_behind_a_real_signature_never_panic(
        seed in 0..16usize,
        tail in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let signature = &seeds()[seed % seeds().len()][..8];
        preprocess_is_total(&[signature, &tail].concat())?;
    }

    #[test]
    fn real_images_with_bytes_changed_never_panic(
        seed in 0..16usize,
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        preprocess_is_total(&mutate(seeds()[seed % seeds().len()].clone(), &mutations))?;
    }

    #[test]
    fn a_png_header_declaring_any_size_is_decoded_only_within_the_limit(width in 1..u32::MAX, height in 1..u32::MAX) {
        let mut png = seeds()[0].clone();
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        // The header's CRC-32 covers the chunk type and data: fix it, or the decoder stops there.
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..29]);
        png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        let result = preprocessor().pre_process(&png);
        if u64::from(width) * u64::from(height) > MAX_PIXELS {
            let refused = matches!(
                result,
                Err(max_mnist_core::Error::TooManyPixels { .. } | max_mnist_core::Error::SizeBeyondDecoding { .. })
            );
            prop_assert!(refused, "{}x{} got {:?}", width, height, result.map(|prepared| prepared.tensor.size()));
        }
    }
}
