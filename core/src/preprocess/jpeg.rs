//! Large JPEGs decoded at reduced scale, by libjpeg-turbo.
//!
//! A JPEG stores 8×8 blocks of DCT coefficients, and a decoder may compute each block at 1/2,
//! 1/4 or 1/8 of its size in the inverse DCT. A 12-megapixel phone photo decoded at 1/8 is
//! 504×378 pixels, all that the digit procedure's working copy needs (500 pixels or more),
//! for a fraction of the cost of decoding every pixel and shrinking them afterwards. The pixel limit
//! applies to what is actually decoded: the reduced picture, or for a progressive JPEG (whose
//! decoder keeps every coefficient of the full picture until the last scan) the full one.
//!
//! What no scale avoids is reading every coefficient of the entropy-coded data, which is most
//! of the time left. libjpeg-turbo (built from source by the `mozjpeg` crate, with its SIMD
//! code where `nasm` is installed) does that faster than the Rust decoders.
//!
//! Small pictures, JPEGs that libjpeg-turbo does not reduce (lossless, arithmetic-coded,
//! hierarchical, CMYK) and any it cannot read are left to the general path, so they are read
//! exactly as before.

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};
use mozjpeg::{ColorSpace, Decompress};

use crate::{Error, Result};

/// The marker that starts the entropy-coded data of a scan.
const START_OF_SCAN: u8 = 0xDA;
/// The marker that ends a JPEG.
const END_OF_IMAGE: u8 = 0xD9;
/// The start-of-frame markers of the sequential Huffman-coded processes (baseline and
/// extended), which a decoder reduces as it reads.
const SEQUENTIAL_FRAMES: [u8; 2] = [0xC0, 0xC1];
/// The start-of-frame marker of the progressive Huffman-coded process.
const PROGRESSIVE_FRAME: u8 = 0xC2;
/// The start of an APP1 segment that holds EXIF data, before the TIFF header.
const EXIF_HEADER: &[u8] = b"Exif\0\0";

/// The smallest picture a procedure can use without losing anything to the reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Needed {
    /// The longer side at least this long (the digit procedure's working copy).
    LongerSide(u32),
    /// The shorter side at least this long (a picture resized to cover the model's input,
    /// whichever way its orientation turns it).
    ShorterSide(u32),
}

impl Needed {
    /// Whether a picture of `width`×`height` is enough.
    fn met_by(self, width: u32, height: u32) -> bool {
        match self {
            Needed::LongerSide(side) => width.max(height) >= side,
            Needed::ShorterSide(side) => width.min(height) >= side,
        }
    }
}

/// The JPEG in `bytes`, of `width`×`height` pixels as its header says, decoded at the
/// smallest scale that still meets `needed`, with its EXIF orientation; `None` when that scale
/// is 1 or libjpeg-turbo cannot reduce or read it, so that the general path decodes it. A
/// picture that would decode to more than `max_pixels` pixels is refused with
/// [`Error::TooManyPixels`].
pub(crate) fn decode_reduced(
    bytes: &[u8],
    (width, height): (u32, u32),
    needed: Needed,
    max_pixels: u64,
) -> Result<Option<(DynamicImage, Orientation)>> {
    // Chosen from the header's size alone, so that a small JPEG costs no walk of its segments.
    let Some((eighths, (reduced_width, reduced_height))) = [1, 2, 4]
        .into_iter()
        .map(|eighths| (eighths, reduced((width, height), eighths)))
        .find(|&(_, (reduced_width, reduced_height))| needed.met_by(reduced_width, reduced_height))
    else {
        return Ok(None);
    };
    let header = Header::read(bytes);
    let decoded_pixels = match header.frame {
        Some(frame) if SEQUENTIAL_FRAMES.contains(&frame) => u64::from(reduced_width) * u64::from(reduced_height),
        Some(PROGRESSIVE_FRAME) => u64::from(width) * u64::from(height),
        _ => return Ok(None),
    };
    if decoded_pixels > max_pixels {
        return Err(Error::TooManyPixels { width, height, limit: max_pixels });
    }
    // libjpeg reports a fatal error by unwinding out of the decoder (the `mozjpeg` crate's
    // documented contract, which skips the panic hook); a JPEG it cannot read goes to the
    // general path, which names what is wrong with it.
    let decoded = std::panic::catch_unwind(|| decode_at(bytes, eighths, (width, height)))
        .ok()
        .and_then(|decoded| decoded.ok())
        .flatten();
    let orientation = header.exif.and_then(Orientation::from_exif_chunk).unwrap_or(Orientation::NoTransforms);
    Ok(decoded
        .filter(|image| (image.width(), image.height()) == (reduced_width, reduced_height))
        .map(|image| (image, orientation)))
}

/// `bytes` decoded by libjpeg-turbo at `eighths`/8 scale, in grey or RGB as it is stored;
/// `None` for colour spaces other than those (CMYK, YCCK), and, before anything is
/// allocated for the pixels, when libjpeg reads another size than `width`×`height`, the one
/// the pixel limit was checked against.
fn decode_at(bytes: &[u8], eighths: u8, (width, height): (u32, u32)) -> std::io::Result<Option<DynamicImage>> {
    let mut decompress = Decompress::new_mem(bytes)?;
    if decompress.size() != (width as usize, height as usize) {
        return Ok(None);
    }
    decompress.scale(eighths);
    let grey = match decompress.color_space() {
        ColorSpace::JCS_GRAYSCALE => true,
        ColorSpace::JCS_YCbCr | ColorSpace::JCS_RGB => false,
        _ => return Ok(None),
    };
    let mut started = if grey { decompress.grayscale()? } else { decompress.rgb()? };
    let (width, height) = (started.width() as u32, started.height() as u32);
    let pixels = started.read_scanlines::<u8>()?;
    started.finish()?;
    Ok(if grey {
        GrayImage::from_raw(width, height, pixels).map(DynamicImage::ImageLuma8)
    } else {
        RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8)
    })
}

/// The size of a `width`×`height` JPEG decoded at `eighths`/8 scale, rounded up as decoders
/// round it.
fn reduced((width, height): (u32, u32), eighths: u8) -> (u32, u32) {
    let eighths = u32::from(eighths);
    ((width * eighths).div_ceil(8), (height * eighths).div_ceil(8))
}

/// What the segments before a JPEG's first scan say about decoding it.
struct Header<'a> {
    /// The first start-of-frame marker: which coding process the JPEG uses.
    frame: Option<u8>,
    /// The first EXIF segment's data, from its TIFF header on.
    exif: Option<&'a [u8]>,
}

impl<'a> Header<'a> {
    /// The header of the JPEG in `bytes`.
    fn read(bytes: &'a [u8]) -> Header<'a> {
        let mut header = Header { frame: None, exif: None };
        for segment in Segments::new(bytes).take_while(|segment| segment.code != START_OF_SCAN) {
            match segment.code {
                // Start-of-frame markers, less DHT (0xC4), JPG (0xC8) and DAC (0xCC).
                0xC0..=0xCF if ![0xC4, 0xC8, 0xCC].contains(&segment.code) => {
                    header.frame = header.frame.or(Some(segment.code));
                }
                0xE1 => header.exif = header.exif.or(segment.payload.strip_prefix(EXIF_HEADER)),
                _ => {}
            }
        }
        header
    }
}

/// Whether a JPEG reaches its end-of-image marker, walking its segments from the start.
/// Whatever follows the end marker (a phone's appended video, padding) does not matter, and
/// an EXIF thumbnail's own end marker sits inside a segment that is skipped whole.
pub(crate) fn is_complete(bytes: &[u8]) -> bool {
    Segments::new(bytes).any(|segment| segment.code == END_OF_IMAGE)
}

/// One marker of a JPEG, and its segment's payload (after the length; empty for a marker
/// that has no segment).
struct Segment<'a> {
    code: u8,
    payload: &'a [u8],
}

/// The markers of a JPEG in order, as decoders walk them: each marker segment is skipped by
/// its length, and a scan's entropy-coded data up to the next marker (inside it, a 0xFF byte
/// is followed by 0x00 or a restart marker); stray bytes between segments are skipped. The walk
/// ends at the end-of-image marker, which it yields, or where the bytes run out.
struct Segments<'a> {
    bytes: &'a [u8],
    /// Where the next marker is looked for; `None` once the walk has ended.
    at: Option<usize>,
}

impl<'a> Segments<'a> {
    /// The walk of `bytes`, from past their start-of-image marker.
    fn new(bytes: &'a [u8]) -> Segments<'a> {
        Segments { bytes, at: Some(2) }
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        let bytes = self.bytes;
        let mut at = self.at.take()?;
        // A marker: 0xFF (after any stray bytes, which decoders skip, and fill bytes of 0xFF),
        // then its code.
        while bytes.get(at).is_some_and(|&byte| byte != 0xFF) {
            at += 1;
        }
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (Some(0xFF), Some(&code)) = (bytes.get(at), bytes.get(at + 1)) else { return None };
        at += 2;
        match code {
            END_OF_IMAGE => return Some(Segment { code, payload: &[] }),
            // Markers without a segment: restart markers, TEM, and a stuffed 0xFF00 out of place.
            0xD0..=0xD7 | 0x01 | 0x00 => {
                self.at = Some(at);
                return Some(Segment { code, payload: &[] });
            }
            _ => {}
        }
        let length = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
        let end = at + length;
        let payload = bytes.get((at + 2).min(end)..end)?;
        at = end;
        if code == START_OF_SCAN {
            // Entropy-coded data runs to the next 0xFF that is not 0xFF00 or a restart marker
            // (megabytes in a photo: memchr finds each 0xFF a vector of bytes at a time).
            loop {
                let Some(found) = bytes.get(at..).and_then(|rest| memchr::memchr(0xFF, rest)) else {
                    return Some(Segment { code, payload });
                };
                at += found;
                match bytes.get(at + 1) {
                    Some(0x00 | 0xD0..=0xD7) => at += 2,
                    Some(_) => break,
                    None => return Some(Segment { code, payload }),
                }
            }
        }
        self.at = Some(at);
        Some(Segment { code, payload })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::tests::{progressive_jpeg, sample};

    #[test]
    fn a_jpeg_is_complete_up_to_its_end_marker_whatever_follows_it() {
        for name in ["digit-7.jpg", "photo-4-exif.jpg", "photo-8-exif.jpg", "scan-3.jpg"] {
            let jpeg = sample(name);
            assert!(is_complete(&jpeg), "{name}");
            // A phone's appended video, or random bytes that end in a start-of-scan marker.
            assert!(is_complete(&[&jpeg[..], b"....ftypmp42\xFF\xDA\x00\x08"].concat()), "{name}");
            // Stray bytes between the start marker and the first segment.
            assert!(is_complete(&[&jpeg[..2], b"\x00\x00\xFF\x00", &jpeg[2..]].concat()), "{name}");
            for cut in [jpeg.len() - 2, jpeg.len() / 2, jpeg.len() / 4, 100, 2] {
                assert!(!is_complete(&jpeg[..cut]), "{name} cut at {cut}");
            }
        }
    }

    #[test]
    fn a_jpeg_libjpeg_cannot_read_goes_to_the_general_path() {
        let picture = image::GrayImage::from_fn(2048, 1536, |x, y| image::Luma([((x ^ y) % 256) as u8]));
        let mut jpeg = Vec::new();
        picture.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
        let decode = |bytes: &[u8]| decode_reduced(bytes, (2048, 1536), Needed::LongerSide(512), 1 << 24).unwrap();
        let (decoded, orientation) = decode(&jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height(), orientation), (512, 384, Orientation::NoTransforms));
        // A size other than the one the pixel limit was checked against: nothing is decoded.
        assert!(decode_at(&jpeg, 2, (2048, 1535)).unwrap().is_none());
        assert!(decode_at(&jpeg, 2, (2048, 1536)).unwrap().is_some());
        // A Huffman table that claims more codes than there are: libjpeg's fatal error.
        let table = jpeg.windows(2).position(|marker| marker == [0xFF, 0xC4]).unwrap();
        jpeg[table + 5..table + 21].fill(0xFF);
        assert!(decode(&jpeg).is_none());
    }

    #[test]
    fn the_header_names_the_coding_process_and_the_exif_orientation() {
        let header_of = |name: &str| {
            let jpeg = sample(name);
            let header = Header::read(&jpeg);
            (header.frame, header.exif.and_then(Orientation::from_exif_chunk))
        };
        assert_eq!(header_of("digit-7.jpg"), (Some(0xC0), None));
        assert_eq!(header_of("photo-4-exif.jpg").1, Some(Orientation::Rotate270));
        assert_eq!(header_of("photo-8-exif.jpg").1, Some(Orientation::Rotate90));
        assert_eq!(Header::read(&progressive_jpeg()).frame, Some(PROGRESSIVE_FRAME));
    }
}
