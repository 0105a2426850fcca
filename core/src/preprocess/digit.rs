//! MNIST's own normalisation, applied to whatever a user uploads.
//!
//! MNIST digits are white strokes on black, scaled to fit a 20×20 box (keeping their aspect
//! ratio, grey levels from anti-aliasing) and placed in 28×28 so that their centre of mass
//! is the centre of the field. Users send dark ink on paper, photos with shadows, scans and
//! canvas drawings on transparent backgrounds, at any size and anywhere in the frame. The
//! steps, each a function below:
//!
//! 1. [`working_luminance`]: shrink large uploads, take the luminance, composite transparency
//!    onto the background the drawing assumes (white under dark ink, black under light ink);
//! 2. [`ink_bright`]: invert when the ink is darker than the background;
//! 3. [`remove_background`]: subtract the page's illumination, a smooth surface fitted to the
//!    image's blocks, which removes shadows, vignetting and lighting gradients but not strokes;
//! 4. [`find_ink`]: an Otsu threshold, then the connected strokes that make up the digit
//!    (specks and scanner edges are dropped), keeping the grey levels around them;
//! 5. [`fit_and_centre`]: crop to the ink, thicken strokes that would be thinner than MNIST's,
//!    scale to fit the box and place by centre of mass.
//!
//! An upload already in that form (an MNIST digit, as most API clients send) takes a shortcut,
//! [`already_mnist`], that skips the five steps.

use std::borrow::Cow;
use std::cmp::Ordering;

use image::imageops::{self, FilterType};
use image::metadata::Orientation;
use image::{DynamicImage, GenericImageView, ImageBuffer, Luma};

use crate::{Error, Result};

/// A grayscale image with values in [0, 1].
pub(crate) type Plane = ImageBuffer<Luma<f32>, Vec<f32>>;

/// MNIST's digits fit a box of this side inside a field of [`MNIST_FIELD`].
const MNIST_BOX: u32 = 20;
/// Side of MNIST's images.
const MNIST_FIELD: u32 = 28;
/// The least brightest pixel of an MNIST digit (254 or 255 in every test digit).
const MNIST_FULL_INK: u8 = 250;
/// A median absolute deviation times this is the standard deviation of normal noise.
const MAD_TO_DEVIATION: f64 = 1.4826;
/// Longest side the ink is looked for at; larger uploads are first shrunk by area averaging.
pub(crate) const WORKING_SIDE: u32 = 512;
/// The least longer side a large JPEG is decoded at for this procedure ([`super::jpeg`]),
/// which then uses the picture as it is, a few pixels under [`WORKING_SIDE`]: 500 is what a
/// 12-megapixel phone photo (4000 or 4032 pixels wide) gives at 1/8 scale, its cheapest.
pub(crate) const LEAST_WORKING_SIDE: u32 = 500;
/// Least contrast between ink and background, on a 0-1 scale, that counts as a digit.
const MIN_INK_CONTRAST: f32 = 0.12;
/// Bounds of the Otsu threshold, as fractions of the strongest ink contrast.
const THRESHOLD_BOUNDS: (f32, f32) = (0.2, 0.6);
/// Pixels within this distance of a stroke keep their grey level (anti-aliased edges).
const EDGE_RADIUS: u32 = 2;
/// Thinnest stroke, in pixels of the model's input, before strokes are thickened; MNIST's
/// strokes are 2 to 4 pixels wide.
const MIN_STROKE_WIDTH: f32 = 2.0;

/// The digit in `image`, turned upright by `orientation`, as `side × side` intensities (white
/// ink on black, in [0, 1]), or [`Error::NoDigit`] when nothing stands out from the background.
pub(crate) fn normalise(image: &DynamicImage, orientation: Orientation, side: u32) -> Result<Vec<f32>> {
    if image.width() == 0 || image.height() == 0 {
        return Err(Error::NoDigit);
    }
    if let Some(pixels) = already_mnist(image, orientation, side) {
        return Ok(pixels);
    }
    let luminance = ink_bright(working_luminance(image, orientation));
    let contrast = remove_background(&luminance);
    let ink = find_ink(&contrast).ok_or(Error::NoDigit)?;
    fit_and_centre(ink, side).ok_or(Error::NoDigit)
}

/// The shortcut: `image` itself, scaled so that its brightest pixel is 1, when it is already
/// what the five steps make: an 8-bit grayscale `side × side` image (`side` being MNIST's 28)
/// of white ink, nearly full white at its brightest, on an exactly black background, the
/// ink's bounding box 19 or 20 pixels on its longest side (the 20-pixel box; 3 of MNIST's
/// 10,000 test digits measure 19), its centre of mass within half a pixel of the centre and
/// its strokes at least [`MIN_STROKE_WIDTH`] wide. Every MNIST test digit qualifies, and the
/// steps would return it unchanged but for resampling; they cost 4-5 times as much as
/// decoding it.
fn already_mnist(image: &DynamicImage, orientation: Orientation, side: u32) -> Option<Vec<f32>> {
    let DynamicImage::ImageLuma8(gray) = image else { return None };
    if side != MNIST_FIELD || gray.dimensions() != (side, side) || !matches!(orientation, Orientation::NoTransforms) {
        return None;
    }
    let mut ink: Option<Bounds> = None;
    let (mut brightest, mut mass, mut moment_x, mut moment_y) = (0u8, 0u64, 0u64, 0u64);
    for (x, y, pixel) in gray.enumerate_pixels() {
        let value = pixel.0[0];
        if value > 0 {
            ink.get_or_insert(Bounds::point(x, y)).include(x, y);
            brightest = brightest.max(value);
            mass += u64::from(value);
            moment_x += u64::from(x) * u64::from(value);
            moment_y += u64::from(y) * u64::from(value);
        }
    }
    let fits_the_box = (MNIST_BOX - 1..=MNIST_BOX).contains(&ink?.longest_side());
    let centre = f64::from(side) / 2.0;
    let centred = |moment: u64| (moment as f64 / mass as f64 - centre).abs() <= 0.5;
    if brightest < MNIST_FULL_INK || !fits_the_box || !centred(moment_x) || !centred(moment_y) {
        return None;
    }
    let strokes =
        Plane::from_fn(side, side, |x, y| Luma([f32::from(u8::from(gray.get_pixel(x, y).0[0] >= brightest / 2))]));
    if stroke_width(&strokes) < MIN_STROKE_WIDTH {
        return None;
    }
    let brightest = f32::from(brightest);
    Some(gray.as_raw().iter().map(|&value| f32::from(value) / brightest).collect())
}

/// Step 1: the luminance of `image`, shrunk to fit [`WORKING_SIDE`] and then turned upright
/// by `orientation` (so that a large photo is never copied whole), with transparent pixels
/// composited onto white when the opaque pixels are dark, and onto black otherwise.
fn working_luminance(image: &DynamicImage, orientation: Orientation) -> Plane {
    let (width, height) = image.dimensions();
    let mut working = Cow::Borrowed(image);
    if width.max(height) > WORKING_SIDE {
        working = Cow::Owned(image.thumbnail(WORKING_SIDE, WORKING_SIDE));
    }
    if !matches!(orientation, Orientation::NoTransforms) {
        working.to_mut().apply_orientation(orientation);
    }
    let image = working.as_ref();
    let converted;
    let (bytes, channels) = if image.color().bytes_per_pixel() == image.color().channel_count() {
        (image.as_bytes(), usize::from(image.color().channel_count()))
    } else {
        converted = image.to_rgba8();
        (converted.as_raw().as_slice(), 4)
    };
    let has_alpha = channels == 2 || channels == 4;
    let luma_alpha: Vec<(f32, f32)> = bytes
        .chunks_exact(channels)
        .map(|pixel| {
            let luma = match channels {
                1 | 2 => f32::from(pixel[0]),
                _ => 0.2126 * f32::from(pixel[0]) + 0.7152 * f32::from(pixel[1]) + 0.0722 * f32::from(pixel[2]),
            };
            let alpha = if has_alpha { f32::from(pixel[channels - 1]) / 255.0 } else { 1.0 };
            (luma / 255.0, alpha)
        })
        .collect();
    let (opaque_luma, opaque_weight) = luma_alpha.iter().fold((0.0f64, 0.0f64), |(sum, weight), &(luma, alpha)| {
        (sum + f64::from(luma * alpha), weight + f64::from(alpha))
    });
    let background = if opaque_weight > 0.0 && opaque_luma / opaque_weight < 0.5 { 1.0 } else { 0.0 };
    let values = luma_alpha.iter().map(|&(luma, alpha)| luma * alpha + background * (1.0 - alpha)).collect();
    Plane::from_raw(image.width(), image.height(), values).expect("one value per pixel")
}

/// Step 2: `luminance` with bright ink. The background is the median of the border; the ink
/// lies on whichever side of it the image strays further (in 2×2 means, so that noise
/// does not count), which works for dark photos and for faint ink alike.
fn ink_bright(mut luminance: Plane) -> Plane {
    let background = border_median(&luminance);
    let (darkest, brightest) = smoothed_extremes(&luminance);
    if background - darkest > brightest - background {
        for pixel in luminance.pixels_mut() {
            pixel.0[0] = 1.0 - pixel.0[0];
        }
    }
    luminance
}

/// The value `numerator / denominator` of the way through `values` in `order` (1/2: the
/// median), by partial sorting; `values` must not be empty.
fn quantile<T: Copy>(values: &mut [T], numerator: usize, denominator: usize, order: fn(&T, &T) -> Ordering) -> T {
    *values.select_nth_unstable_by(values.len() * numerator / denominator, order).1
}

/// The median of the pixels in a ring along the image's edges.
fn border_median(plane: &Plane) -> f32 {
    let (width, height) = plane.dimensions();
    let ring = (width.min(height) / 32).max(1);
    let mut values: Vec<f32> = plane
        .enumerate_pixels()
        .filter(|(x, y, _)| *x < ring || *y < ring || *x >= width - ring || *y >= height - ring)
        .map(|(_, _, pixel)| pixel.0[0])
        .collect();
    quantile(&mut values, 1, 2, f32::total_cmp)
}

/// Step 3: how much brighter each pixel is than the background under it. The background
/// is the page's illumination: a smooth surface (a polynomial in x and y) fitted to the
/// typical level of each block of the image, leaving out the blocks the ink brightens, and
/// kept within those blocks' levels. It follows shadows, vignetting and lighting gradients,
/// but not the strokes, however thick, nor a blurred digit's halo.
fn remove_background(luminance: &Plane) -> Plane {
    let illumination = Illumination::fit(luminance);
    let width = luminance.width() as usize;
    let mut contrast = luminance.clone();
    for (y, row) in contrast.as_mut().chunks_exact_mut(width).enumerate() {
        let along_row = illumination.along_row(y as u32);
        for (x, value) in row.iter_mut().enumerate() {
            *value = (*value - along_row.at(x as u32)).max(0.0);
        }
    }
    contrast
}

/// The page's brightness as a polynomial in the pixel position, within the levels it was
/// fitted to.
struct Illumination {
    degree: u32,
    /// One per term `u^i v^j` with `i + j <= degree`, in [`Illumination::terms`] order.
    coefficients: Vec<f64>,
    width: u32,
    height: u32,
    /// The lowest and highest levels of the blocks the polynomial was fitted to. Beyond the
    /// blocks' centres and between them a polynomial can stray outside that range (a cubic
    /// fitted under a blurred digit's halo dips at the page's corners, which then stand out
    /// as ink), and no page is darker or brighter there than where it was measured.
    range: (f32, f32),
}

impl Illumination {
    /// Blocks whose level lies this many robust standard deviations above the fit are ink.
    /// 2.5 rather than 3 leaves a blurred digit's halo out of the fit more often (the
    /// low-resolution evaluation set, BENCHMARKS.md "Blurred thumbnails").
    const INK_DEVIATIONS: f64 = 2.5;
    /// The least spread of the background, so that a perfectly flat page does not make
    /// every faint block an outlier.
    const MIN_SPREAD: f64 = 0.02;
    /// Highest degree fitted (a cubic follows vignetting and curved shadows).
    const MAX_DEGREE: u32 = 3;
    /// Terms of a polynomial of [`Illumination::MAX_DEGREE`] in two variables.
    const MAX_TERMS: usize = 10;

    /// Fits the illumination of `plane` (bright ink on a darker background).
    fn fit(plane: &Plane) -> Illumination {
        let (width, height) = plane.dimensions();
        let grid = (width.max(height) / 8).clamp(4, 16);
        let degree = if grid >= 12 { Self::MAX_DEGREE } else { 1 };
        let blocks = Illumination::block_levels(plane, grid);
        let mut levels: Vec<f64> = blocks.iter().map(|block| block.2).collect();
        let median_level = quantile(&mut levels, 1, 2, f64::total_cmp);
        // Block levels are background wherever ink covers less than 60% of the block. Blocks
        // far above the current fit (thick strokes, which fill whole blocks) are left out of
        // the next one. The first fit is the median level, which ink covering fewer than half
        // the blocks cannot move: a least-squares fit to every block would rise under a
        // marker's strokes, widen the spread with them and keep them as background.
        let mut background = vec![true; blocks.len()];
        let median = median_level as f32;
        let mut fitted =
            Illumination { degree: 0, coefficients: vec![median_level], width, height, range: (median, median) };
        for _ in 0..4 {
            let residuals: Vec<f64> = blocks.iter().map(|&(x, y, level)| level - fitted.at_f64(x, y)).collect();
            let mut spread: Vec<f64> =
                residuals.iter().zip(&background).filter(|(_, inside)| **inside).map(|(r, _)| r.abs()).collect();
            let spread = (MAD_TO_DEVIATION * quantile(&mut spread, 1, 2, f64::total_cmp)).max(Self::MIN_SPREAD);
            background = residuals.iter().map(|residual| *residual <= Self::INK_DEVIATIONS * spread).collect();
            let Some(better) = Illumination::least_squares(&blocks, &background, degree, width, height) else {
                break;
            };
            fitted = better;
        }
        fitted
    }

    /// `(x, y, level)` of each block of a `grid × grid` division of `plane`: its centre and
    /// its 40th percentile, which is background even where strokes cross the block.
    fn block_levels(plane: &Plane, grid: u32) -> Vec<(f64, f64, f64)> {
        let (width, height) = plane.dimensions();
        let mut blocks = Vec::with_capacity((grid * grid) as usize);
        let mut values = Vec::new();
        for row in 0..grid {
            let (top, bottom) = (row * height / grid, ((row + 1) * height / grid).max(row * height / grid + 1));
            for column in 0..grid {
                let (left, right) =
                    (column * width / grid, ((column + 1) * width / grid).max(column * width / grid + 1));
                values.clear();
                for y in top..bottom.min(height) {
                    values.extend((left..right.min(width)).map(|x| plane.get_pixel(x, y).0[0]));
                }
                let level = quantile(&mut values, 2, 5, f32::total_cmp);
                blocks.push((f64::from(left + right) / 2.0, f64::from(top + bottom) / 2.0, f64::from(level)));
            }
        }
        blocks
    }

    /// The polynomial of `degree` closest to the `blocks` marked `background`, kept within
    /// their levels, or `None` when they do not determine it.
    fn least_squares(
        blocks: &[(f64, f64, f64)],
        background: &[bool],
        degree: u32,
        width: u32,
        height: u32,
    ) -> Option<Illumination> {
        // The terms need the shape alone; the range is what the blocks below give.
        let shape = Illumination { degree, coefficients: Vec::new(), width, height, range: (f32::MIN, f32::MAX) };
        let count = ((degree + 1) * (degree + 2) / 2) as usize;
        // The normal equations, as an augmented matrix, and the blocks' lowest and highest levels.
        let mut system = vec![vec![0.0f64; count + 1]; count];
        let mut range = (f32::INFINITY, f32::NEG_INFINITY);
        for (&(x, y, level), _) in blocks.iter().zip(background).filter(|(_, inside)| **inside) {
            range = (range.0.min(level as f32), range.1.max(level as f32));
            let terms = shape.terms(x, y);
            for (row, &left) in system.iter_mut().zip(&terms[..count]) {
                for (cell, &right) in row.iter_mut().zip(&terms[..count]) {
                    *cell += left * right;
                }
                row[count] += left * level;
            }
        }
        // Gaussian elimination with partial pivoting.
        for column in 0..count {
            let pivot = (column..count).max_by(|&a, &b| system[a][column].abs().total_cmp(&system[b][column].abs()))?;
            if system[pivot][column].abs() < 1e-9 {
                return None;
            }
            system.swap(column, pivot);
            let pivot_row = system[column].clone();
            for (_, row) in system.iter_mut().enumerate().filter(|(index, _)| *index != column) {
                let factor = row[column] / pivot_row[column];
                for (cell, pivot) in row.iter_mut().zip(&pivot_row).skip(column) {
                    *cell -= factor * pivot;
                }
            }
        }
        let coefficients = (0..count).map(|row| system[row][count] / system[row][row]).collect();
        Some(Illumination { coefficients, range, ..shape })
    }

    /// The polynomial's terms `u^i v^j` (by total degree, then `i`) at pixel (`x`, `y`),
    /// with coordinates scaled to [-1, 1]; those past the degree are 0.
    fn terms(&self, x: f64, y: f64) -> [f64; Self::MAX_TERMS] {
        let u = 2.0 * x / f64::from(self.width.max(1)) - 1.0;
        let v = 2.0 * y / f64::from(self.height.max(1)) - 1.0;
        let (u_powers, v_powers) = ([1.0, u, u * u, u * u * u], [1.0, v, v * v, v * v * v]);
        let mut terms = [0.0; Self::MAX_TERMS];
        let mut next = 0;
        for total in 0..=self.degree as usize {
            for i in 0..=total {
                terms[next] = u_powers[i] * v_powers[total - i];
                next += 1;
            }
        }
        terms
    }

    fn at_f64(&self, x: f64, y: f64) -> f64 {
        self.terms(x, y).iter().zip(&self.coefficients).map(|(term, coefficient)| term * coefficient).sum()
    }

    /// The illumination along row `y`: a polynomial in x alone.
    fn along_row(&self, y: u32) -> RowIllumination {
        let v = 2.0 * (f64::from(y) + 0.5) / f64::from(self.height.max(1)) - 1.0;
        let mut coefficients = [0.0; Self::MAX_DEGREE as usize + 1];
        let mut next = 0;
        for total in 0..=self.degree as i32 {
            for i in 0..=total {
                coefficients[i as usize] += self.coefficients[next] * v.powi(total - i);
                next += 1;
            }
        }
        RowIllumination { coefficients, width: self.width, range: self.range }
    }
}

/// [`Illumination`] along one row.
struct RowIllumination {
    /// Of `u^0` to `u^MAX_DEGREE`.
    coefficients: [f64; Illumination::MAX_DEGREE as usize + 1],
    width: u32,
    /// [`Illumination::range`].
    range: (f32, f32),
}

impl RowIllumination {
    /// The background's brightness at the centre of pixel `x` of the row.
    fn at(&self, x: u32) -> f32 {
        let u = 2.0 * (f64::from(x) + 0.5) / f64::from(self.width.max(1)) - 1.0;
        let polynomial = self.coefficients.iter().rev().fold(0.0, |sum, coefficient| sum * u + coefficient) as f32;
        polynomial.clamp(self.range.0, self.range.1)
    }
}

/// Each pixel replaced by the maximum over the square of `radius` around it (a grey
/// dilation), separably.
fn dilate(plane: &Plane, radius: u32) -> Plane {
    let (width, height) = plane.dimensions();
    let rows = dilate_rows(plane.as_raw(), width as usize, radius as usize);
    let columns = dilate_rows(&transpose(&rows, width as usize), height as usize, radius as usize);
    Plane::from_raw(width, height, transpose(&columns, height as usize)).expect("one value per pixel")
}

/// The lowest and highest means over every 2×2 window of `plane` (over single pixels along a
/// side one pixel long): its extremes without single-pixel noise.
fn smoothed_extremes(plane: &Plane) -> (f32, f32) {
    let (width, height) = (plane.width() as usize, plane.height() as usize);
    let values = plane.as_raw();
    let (window_width, window_height) = (width.min(2), height.min(2));
    let (mut lowest, mut highest) = (f32::MAX, f32::MIN);
    for top in 0..=height - window_height {
        for left in 0..=width - window_width {
            let sum: f32 = (top..top + window_height)
                .flat_map(|y| values[y * width + left..y * width + left + window_width].iter())
                .sum();
            let mean = sum / (window_width * window_height) as f32;
            (lowest, highest) = (lowest.min(mean), highest.max(mean));
        }
    }
    (lowest, highest)
}

/// The maximum over a window of `radius` along each row of `values` (rows of `length`).
fn dilate_rows(values: &[f32], length: usize, radius: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(values.len());
    for row in values.chunks_exact(length) {
        for x in 0..length {
            out.push(row[x.saturating_sub(radius)..(x + radius + 1).min(length)].iter().copied().fold(0.0, f32::max));
        }
    }
    out
}

/// Rows of `length` values turned into columns.
fn transpose(values: &[f32], length: usize) -> Vec<f32> {
    let rows = values.len() / length;
    let mut out = vec![0.0; values.len()];
    for (y, row) in values.chunks_exact(length).enumerate() {
        for (x, &value) in row.iter().enumerate() {
            out[x * rows + y] = value;
        }
    }
    out
}

/// Step 4: the digit's pixels, cropped to their bounding box, with their grey levels
/// stretched so that the strokes reach 1; `None` when there is no ink.
fn find_ink(contrast: &Plane) -> Option<Ink> {
    let contrast = &without_edge_strips(contrast);
    let strongest = smoothed_extremes(contrast).1;
    if strongest < MIN_INK_CONTRAST {
        return None;
    }
    let (low, high) = THRESHOLD_BOUNDS;
    let threshold = otsu_threshold(contrast, strongest).clamp(low * strongest, high * strongest);
    let components = Components::label(contrast, threshold);
    let kept = components.digit();
    if !kept.contains(&true) {
        return None;
    }
    // Only the part of the image around the digit matters from here on.
    let around = components.bounds(&kept).grown(EDGE_RADIUS).within(contrast.width(), contrast.height());
    let strokes = components.mask(&kept, &around);
    let contrast = around.crop(contrast);
    let mut stroke_levels: Vec<f32> = contrast
        .pixels()
        .zip(strokes.pixels())
        .filter(|(_, stroke)| stroke.0[0] > 0.0)
        .map(|(pixel, _)| pixel.0[0])
        .collect();
    let stroke_level = quantile(&mut stroke_levels, 9, 10, f32::total_cmp).max(f32::EPSILON);
    let near_stroke = dilate(&strokes, EDGE_RADIUS);
    let levels = Plane::from_fn(contrast.width(), contrast.height(), |x, y| {
        let near = near_stroke.get_pixel(x, y).0[0] > 0.0;
        Luma([if near { (contrast.get_pixel(x, y).0[0] / stroke_level).min(1.0) } else { 0.0 }])
    });
    Some(Ink { levels: Bounds::of(&levels)?.crop(&levels), stroke_width: stroke_width(&strokes) })
}

/// The mean width of the strokes in `mask` (1 inside, 0 outside): twice their area over their
/// outline, which is exact for long bars and rates a one-pixel hairline as 2.
fn stroke_width(mask: &Plane) -> f32 {
    let area = mask.pixels().filter(|pixel| pixel.0[0] > 0.0).count();
    2.0 * area as f32 / boundary_pixels(mask).max(1) as f32
}

/// Pixels of `mask` (1 inside, 0 outside) with a 4-neighbour outside it or off the edge.
fn boundary_pixels(mask: &Plane) -> usize {
    let (width, height) = mask.dimensions();
    let inside = |x: u32, y: u32| mask.get_pixel(x, y).0[0] > 0.0;
    mask.enumerate_pixels()
        .filter(|&(x, y, pixel)| {
            pixel.0[0] > 0.0
                && (x == 0
                    || y == 0
                    || x + 1 == width
                    || y + 1 == height
                    || !(inside(x - 1, y) && inside(x + 1, y) && inside(x, y - 1) && inside(x, y + 1)))
        })
        .count()
}

/// `contrast` without the strips along its edges (a scanner lid's shadow, the edge of the
/// sheet), which would otherwise set the threshold for the ink.
fn without_edge_strips(contrast: &Plane) -> Plane {
    let components = Components::label(contrast, MIN_INK_CONTRAST);
    let strips: Vec<bool> = std::iter::once(false)
        .chain(components.regions.iter().map(|region| region.bounds.is_edge_strip(components.width, components.height)))
        .collect();
    let values = contrast
        .as_raw()
        .iter()
        .zip(&components.labels)
        .map(|(&value, &label)| if strips[label as usize] { 0.0 } else { value })
        .collect();
    Plane::from_raw(contrast.width(), contrast.height(), values).expect("one value per pixel")
}

/// The digit found by [`find_ink`].
struct Ink {
    /// Intensities in [0, 1], cropped to the digit.
    levels: Plane,
    /// Mean stroke width in pixels of `levels`.
    stroke_width: f32,
}

/// Otsu's threshold on `plane`, whose values lie in `[0, strongest]` (mostly).
fn otsu_threshold(plane: &Plane, strongest: f32) -> f32 {
    const BINS: usize = 256;
    let mut histogram = [0u64; BINS];
    for pixel in plane.pixels() {
        histogram[((pixel.0[0] / strongest).clamp(0.0, 1.0) * (BINS - 1) as f32) as usize] += 1;
    }
    let total: u64 = histogram.iter().sum();
    let weighted_total: f64 = histogram.iter().enumerate().map(|(bin, &count)| bin as f64 * count as f64).sum();
    let (mut below, mut weighted_below) = (0u64, 0.0f64);
    let (mut best_bin, mut best_variance) = (0, 0.0f64);
    for (bin, &count) in histogram.iter().enumerate() {
        below += count;
        weighted_below += bin as f64 * count as f64;
        let above = total - below;
        if below == 0 || above == 0 {
            continue;
        }
        let mean_below = weighted_below / below as f64;
        let mean_above = (weighted_total - weighted_below) / above as f64;
        let variance = below as f64 * above as f64 * (mean_below - mean_above).powi(2);
        if variance > best_variance {
            (best_bin, best_variance) = (bin, variance);
        }
    }
    (best_bin as f32 + 0.5) / (BINS - 1) as f32 * strongest
}

/// The 8-connected regions of pixels above a threshold.
struct Components {
    width: u32,
    height: u32,
    /// Per pixel, row by row: 0 for background, else the region's number.
    labels: Vec<u32>,
    /// Per region (index = number - 1).
    regions: Vec<Region>,
}

/// How a region's pixels lie along its bounding box's edges.
#[derive(Clone, Copy, Debug, Default)]
struct Outline {
    /// Pixels within the region's [`Region::outline_margin`] of an edge.
    pixels: usize,
    /// One bit per corner of the box with a pixel within the margin of both its edges.
    corners: u8,
}

impl Outline {
    const ALL_CORNERS: u8 = 0b1111;
}

/// One connected region.
struct Region {
    area: usize,
    bounds: Bounds,
}

impl Region {
    /// How close to its own box's edges a pixel of a printed box's outline lies: a twelfth of
    /// the box's shorter side, and at least 2 pixels.
    fn outline_margin(&self) -> u32 {
        (self.bounds.width().min(self.bounds.height()) / 12).max(2)
    }

    /// Whether the region is a form's printed box: an outline, `outline.pixels` of its pixels
    /// within [`Region::outline_margin`] of its box's edges (85% at least), inked in all four
    /// corners (a squarish 0 is not), around an empty middle, and large for its line (a "1"
    /// is a thin bar, not a box).
    fn is_printed_box(&self, outline: Outline) -> bool {
        let (width, height) = (u64::from(self.bounds.width()), u64::from(self.bounds.height()));
        width.min(height) >= 8 * u64::from(self.outline_margin())
            && outline.corners == Outline::ALL_CORNERS
            && outline.pixels * 100 >= self.area * 85
            && self.area as u64 * 10 <= width * height * 3
    }

    /// Whether the region is flat like a printed rule (a line written on): horizontal, at
    /// least 8 times as long as it is tall. No whole digit is that flat.
    fn is_rule(&self) -> bool {
        self.bounds.width() >= 16 && self.bounds.width() >= 8 * self.bounds.height()
    }
}

impl Components {
    /// Labels the regions of `plane` brighter than `threshold`.
    fn label(plane: &Plane, threshold: f32) -> Components {
        let (width, height) = plane.dimensions();
        let index = |x: u32, y: u32| (y * width + x) as usize;
        let mut labels = vec![0u32; (width * height) as usize];
        let mut regions = Vec::new();
        let mut stack = Vec::new();
        for (x, y, pixel) in plane.enumerate_pixels() {
            if pixel.0[0] <= threshold || labels[index(x, y)] != 0 {
                continue;
            }
            let number = regions.len() as u32 + 1;
            let mut region = Region { area: 0, bounds: Bounds::point(x, y) };
            labels[index(x, y)] = number;
            stack.push((x, y));
            while let Some((x, y)) = stack.pop() {
                region.area += 1;
                region.bounds.include(x, y);
                for ny in y.saturating_sub(1)..(y + 2).min(height) {
                    for nx in x.saturating_sub(1)..(x + 2).min(width) {
                        if labels[index(nx, ny)] == 0 && plane.get_pixel(nx, ny).0[0] > threshold {
                            labels[index(nx, ny)] = number;
                            stack.push((nx, ny));
                        }
                    }
                }
            }
            regions.push(region);
        }
        Components { width, height, labels, regions }
    }

    /// Per region, how its pixels lie along its box's edges (within its
    /// [`Region::outline_margin`]).
    fn outlines(&self) -> Vec<Outline> {
        let mut outlines = vec![Outline::default(); self.regions.len()];
        for (index, &label) in self.labels.iter().enumerate() {
            let Some(number) = (label as usize).checked_sub(1) else { continue };
            let region = &self.regions[number];
            let (x, y) = (index as u32 % self.width, index as u32 / self.width);
            let (bounds, margin) = (region.bounds, region.outline_margin());
            let (left, right) = (x - bounds.left < margin, bounds.right - x < margin);
            let (top, bottom) = (y - bounds.top < margin, bounds.bottom - y < margin);
            let outline = &mut outlines[number];
            if left || right || top || bottom {
                outline.pixels += 1;
            }
            for (corner, inked) in [top && left, top && right, bottom && left, bottom && right].into_iter().enumerate()
            {
                if inked {
                    outline.corners |= 1 << corner;
                }
            }
        }
        outlines
    }

    /// Whether each label (0 for the background, then each region's number) belongs to the
    /// digit: the largest region and those near it or big enough, without specks, without
    /// scanner edges (thin regions that run along a border) and without a form's printed box
    /// around the digit or rule under it.
    fn digit(&self) -> Vec<bool> {
        let outlines = self.outlines();
        let candidate: Vec<bool> = self
            .regions
            .iter()
            .zip(outlines)
            .map(|(region, outline)| {
                !region.bounds.is_edge_strip(self.width, self.height) && !region.is_printed_box(outline)
            })
            .collect();
        let mut kept = vec![false; self.regions.len() + 1];
        // The digit's main stroke: the largest region that is not flat like a rule (unless all are).
        let largest = |flat_too: bool| {
            self.regions
                .iter()
                .zip(&candidate)
                .filter(|(region, candidate)| **candidate && (flat_too || !region.is_rule()))
                .map(|(region, _)| region)
                .max_by_key(|region| region.area)
        };
        let Some(main) = largest(false).or_else(|| largest(true)) else {
            return kept;
        };
        let surroundings = main.bounds.grown(main.bounds.longest_side() / 4);
        for (index, region) in self.regions.iter().enumerate() {
            // A rule wider than the digit (by a fifth) is the line it is written on; a shorter
            // flat stroke (a 5's flag, a 7's bar or a 2's base drawn apart) is part of it.
            let under_it =
                !std::ptr::eq(region, main) && region.is_rule() && region.bounds.width() * 5 >= main.bounds.width() * 6;
            kept[index + 1] = candidate[index]
                && !under_it
                && (region.area * 100 >= main.area * 15
                    || (region.area * 100 >= main.area * 2 && surroundings.overlaps(&region.bounds)));
        }
        kept
    }

    /// The box around the `kept` regions.
    fn bounds(&self, kept: &[bool]) -> Bounds {
        let mut kept_regions =
            self.regions.iter().zip(&kept[1..]).filter(|(_, kept)| **kept).map(|(region, _)| region.bounds);
        let first = kept_regions.next().unwrap_or(Bounds::point(0, 0));
        kept_regions.fold(first, |mut all, bounds| {
            all.include(bounds.left, bounds.top);
            all.include(bounds.right, bounds.bottom);
            all
        })
    }

    /// 1 where a pixel of `area` belongs to a `kept` region, else 0.
    fn mask(&self, kept: &[bool], area: &Bounds) -> Plane {
        Plane::from_fn(area.width(), area.height(), |x, y| {
            let label = self.labels[((y + area.top) * self.width + x + area.left) as usize];
            Luma([if kept[label as usize] { 1.0 } else { 0.0 }])
        })
    }
}

/// An inclusive pixel rectangle.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bounds {
    left: u32,
    top: u32,
    right: u32,
    bottom: u32,
}

impl Bounds {
    fn point(x: u32, y: u32) -> Bounds {
        Bounds { left: x, top: y, right: x, bottom: y }
    }

    /// The box around the non-zero pixels of `plane`, if any.
    fn of(plane: &Plane) -> Option<Bounds> {
        let mut bounds: Option<Bounds> = None;
        for (x, y, pixel) in plane.enumerate_pixels() {
            if pixel.0[0] > 0.0 {
                bounds.get_or_insert(Bounds::point(x, y)).include(x, y);
            }
        }
        bounds
    }

    fn include(&mut self, x: u32, y: u32) {
        self.left = self.left.min(x);
        self.top = self.top.min(y);
        self.right = self.right.max(x);
        self.bottom = self.bottom.max(y);
    }

    fn width(&self) -> u32 {
        self.right - self.left + 1
    }

    fn height(&self) -> u32 {
        self.bottom - self.top + 1
    }

    fn longest_side(&self) -> u32 {
        self.width().max(self.height())
    }

    /// The part of `self` inside a `width × height` image.
    fn within(&self, width: u32, height: u32) -> Bounds {
        Bounds { right: self.right.min(width - 1), bottom: self.bottom.min(height - 1), ..*self }
    }

    fn grown(&self, by: u32) -> Bounds {
        Bounds {
            left: self.left.saturating_sub(by),
            top: self.top.saturating_sub(by),
            right: self.right.saturating_add(by),
            bottom: self.bottom.saturating_add(by),
        }
    }

    fn overlaps(&self, other: &Bounds) -> bool {
        self.left <= other.right && other.left <= self.right && self.top <= other.bottom && other.top <= self.bottom
    }

    /// A thin strip along the edge it touches, spanning most of the image: the shadow of a
    /// scanner lid or the edge of a sheet, not a stroke.
    fn is_edge_strip(&self, width: u32, height: u32) -> bool {
        let along_top_or_bottom = (self.top == 0 || self.bottom == height - 1)
            && self.width() * 10 >= width * 9
            && self.height() * 5 <= height;
        let along_left_or_right = (self.left == 0 || self.right == width - 1)
            && self.height() * 10 >= height * 9
            && self.width() * 5 <= width;
        along_top_or_bottom || along_left_or_right
    }

    fn crop(&self, plane: &Plane) -> Plane {
        imageops::crop_imm(plane, self.left, self.top, self.width(), self.height()).to_image()
    }
}

/// Step 5: the cropped digit scaled to fit MNIST's box ([`MNIST_BOX`] pixels of [`MNIST_FIELD`]) with strokes at
/// least [`MIN_STROKE_WIDTH`] wide and its brightest pixel at 1, placed in the
/// `side × side` field with its centre of mass at the centre. `None` if nothing is left.
fn fit_and_centre(ink: Ink, side: u32) -> Option<Vec<f32>> {
    let digit_box = (side * MNIST_BOX).div_ceil(MNIST_FIELD);
    let levels = thicken(shrink(ink, 4 * digit_box), digit_box);
    let (width, height) = levels.dimensions();
    let scale = digit_box as f32 / width.max(height) as f32;
    let fitted_width = ((width as f32 * scale).round() as u32).clamp(1, digit_box);
    let fitted_height = ((height as f32 * scale).round() as u32).clamp(1, digit_box);
    let mut fitted = imageops::resize(&levels, fitted_width, fitted_height, FilterType::Triangle);

    let brightest = fitted.pixels().map(|pixel| pixel.0[0]).fold(0.0, f32::max);
    if brightest <= 0.0 {
        return None;
    }
    let (mut mass, mut moment_x, mut moment_y) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y, pixel) in fitted.enumerate_pixels_mut() {
        pixel.0[0] = (pixel.0[0] / brightest).clamp(0.0, 1.0);
        mass += pixel.0[0];
        moment_x += x as f32 * pixel.0[0];
        moment_y += y as f32 * pixel.0[0];
    }
    // MNIST's centres of mass sit at (14, 14) in pixel indices of the 28×28 field.
    let centre = side as f32 / 2.0;
    let left = (centre - moment_x / mass).round().clamp(0.0, (side - fitted_width) as f32) as i64;
    let top = (centre - moment_y / mass).round().clamp(0.0, (side - fitted_height) as f32) as i64;
    let mut field = Plane::new(side, side);
    imageops::replace(&mut field, &fitted, left, top);
    Some(field.into_raw())
}

/// `ink` shrunk (by area averaging) so that its longest side is at most `longest`, which
/// keeps [`thicken`] cheap on large photos.
fn shrink(ink: Ink, longest: u32) -> Ink {
    let (width, height) = ink.levels.dimensions();
    if width.max(height) <= longest {
        return ink;
    }
    let factor = longest as f32 / width.max(height) as f32;
    let size = |length: u32| ((length as f32 * factor).round() as u32).max(1);
    Ink {
        levels: imageops::resize(&ink.levels, size(width), size(height), FilterType::Triangle),
        stroke_width: ink.stroke_width * factor,
    }
}

/// The levels of `ink`, dilated when its strokes would come out thinner than
/// [`MIN_STROKE_WIDTH`] once scaled to fit `digit_box` (a fine pen on a large page).
fn thicken(ink: Ink, digit_box: u32) -> Plane {
    let (width, height) = ink.levels.dimensions();
    let scale = digit_box as f32 / width.max(height) as f32;
    let missing = MIN_STROKE_WIDTH / scale - ink.stroke_width;
    let radius = (missing / 2.0).ceil();
    if radius < 1.0 {
        return ink.levels;
    }
    let radius = radius as u32;
    let mut padded = Plane::new(width + 2 * radius, height + 2 * radius);
    imageops::replace(&mut padded, &ink.levels, i64::from(radius), i64::from(radius));
    dilate(&padded, radius)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printed_box_goes_and_a_squarish_zero_stays() {
        // A 4 px outline 100×160 with its corners inked (a box), and the same with its corners
        // cut (a 0 written squarish with a thin pen).
        let outline = |x: u32, y: u32, corners: bool| {
            let (inside_x, inside_y) = ((20..120).contains(&x), (20..180).contains(&y));
            let on_edge = inside_x && inside_y && !((24..116).contains(&x) && (24..176).contains(&y));
            let corner = !(30..110).contains(&x) && !(30..170).contains(&y);
            Luma([if on_edge && (corners || !corner) { 1.0 } else { 0.0 }])
        };
        for (corners, expected) in [(true, false), (false, true)] {
            let components = Components::label(&Plane::from_fn(140, 200, |x, y| outline(x, y, corners)), 0.5);
            assert_eq!(components.digit().contains(&true), expected, "corners inked: {corners}");
        }
    }

    #[test]
    fn a_rule_as_wide_as_the_digit_goes_and_a_shorter_flat_stroke_stays() {
        // A 60×90 blob (the digit's body), a 40×4 flag above it (a 5's, written apart), a 68×4
        // base under it (a 2's, as wide as the body) and a 100×4 line under that.
        let ink = |x: u32, y: u32| {
            let body = (70..130).contains(&x) && (60..150).contains(&y);
            let flag = (80..120).contains(&x) && (45..49).contains(&y);
            let base = (66..134).contains(&x) && (154..158).contains(&y);
            let rule = (50..150).contains(&x) && (166..170).contains(&y);
            Luma([if body || flag || base || rule { 1.0 } else { 0.0 }])
        };
        let components = Components::label(&Plane::from_fn(200, 200, ink), 0.5);
        let kept = components.digit();
        let kept_sizes: Vec<(u32, u32)> = components
            .regions
            .iter()
            .zip(&kept[1..])
            .filter(|(_, kept)| **kept)
            .map(|(region, _)| (region.bounds.width(), region.bounds.height()))
            .collect();
        assert_eq!(kept_sizes, [(40, 4), (60, 90), (68, 4)]);
    }

    /// A cubic illumination with every term non-zero, on a 300×200 image.
    fn cubic() -> Illumination {
        let coefficients = vec![0.5, 0.1, -0.2, 0.05, 0.03, -0.04, 0.02, -0.01, 0.015, -0.025];
        Illumination { degree: 3, coefficients, width: 300, height: 200, range: (f32::NEG_INFINITY, f32::INFINITY) }
    }

    #[test]
    fn evaluates_the_illumination_the_same_by_row_and_by_point() {
        let illumination = cubic();
        for (x, y) in [(0, 0), (299, 0), (17, 123), (150, 199), (299, 199)] {
            let by_point = illumination.at_f64(f64::from(x) + 0.5, f64::from(y) + 0.5) as f32;
            assert!((illumination.along_row(y).at(x) - by_point).abs() < 1e-5, "({x}, {y})");
        }
    }

    #[test]
    fn least_squares_recovers_a_cubic_and_refuses_what_does_not_determine_one() {
        let truth = cubic();
        let blocks: Vec<(f64, f64, f64)> = (0..16)
            .flat_map(|row| (0..16).map(move |column| (column as f64 * 19.0 + 9.0, row as f64 * 12.5 + 6.0)))
            .map(|(x, y)| (x, y, truth.at_f64(x, y)))
            .collect();
        let fitted = Illumination::least_squares(&blocks, &vec![true; blocks.len()], 3, 300, 200).unwrap();
        for (found, expected) in fitted.coefficients.iter().zip(&truth.coefficients) {
            assert!((found - expected).abs() < 1e-6, "{found} against {expected}");
        }
        // Every block at one point: a cubic cannot be told from a constant.
        let one_point = vec![(10.0, 10.0, 0.5); 16];
        assert!(Illumination::least_squares(&one_point, &[true; 16], 3, 300, 200).is_none());
    }

    #[test]
    fn a_markers_thick_strokes_stay_solid_and_the_page_stays_background() {
        // A 0 drawn with a marker (a ring 60 px wide, 40% of a clean 300×300 page), inverted as
        // `ink_bright` leaves it: bright ink on a dark page.
        let plane = Plane::from_fn(300, 300, |x, y| {
            let radius = (x as f32 - 150.0).hypot(y as f32 - 150.0);
            Luma([if (60.0..120.0).contains(&radius) { 0.96 } else { 0.02 }])
        });
        let contrast = remove_background(&plane);
        let level = |x: u32, y: u32| contrast.get_pixel(x, y).0[0];
        // The middle of the stroke as bright as its edges: the illumination did not rise under it.
        for (x, y) in [(150, 60), (150, 240), (60, 150), (240, 150), (86, 86)] {
            assert!(level(x, y) > 0.9, "stroke at ({x}, {y}): {}", level(x, y));
        }
        // The page, its corners and the ring's hole stay background.
        for (x, y) in [(2, 2), (297, 2), (2, 297), (297, 297), (150, 150)] {
            assert!(level(x, y) < 0.05, "page at ({x}, {y}): {}", level(x, y));
        }
    }

    #[test]
    fn a_blurred_digits_halo_does_not_turn_the_pages_corners_into_ink() {
        // A thumbnail enlarged and blurred: a soft glow over the middle of a clean 200×200 page,
        // bright ink fading into a wide halo, as `ink_bright` leaves it.
        let plane = Plane::from_fn(200, 200, |x, y| {
            let distance = (x as f32 - 100.0).hypot(y as f32 - 100.0);
            Luma([0.02 + 0.9 * (-(distance * distance) / (2.0 * 30.0 * 30.0)).exp()])
        });
        let contrast = remove_background(&plane);
        let level = |x: u32, y: u32| contrast.get_pixel(x, y).0[0];
        assert!(level(100, 100) > 0.5, "the glow's middle is ink: {}", level(100, 100));
        // A polynomial fitted under the halo bends down beyond it; the page must not follow.
        for (x, y) in [(0, 0), (199, 0), (0, 199), (199, 199), (5, 100), (100, 194)] {
            assert!(level(x, y) < 0.02, "page at ({x}, {y}): {}", level(x, y));
        }
    }

    #[test]
    fn follows_a_vignette_so_only_the_strokes_stand_out() {
        // A bright centre falling off to dark corners (after inversion: bright corners), and
        // one stroke.
        let plane = Plane::from_fn(400, 300, |x, y| {
            let (u, v) = (x as f32 / 200.0 - 1.0, y as f32 / 150.0 - 1.0);
            let stroke = if (190..200).contains(&x) && (100..200).contains(&y) { 0.6 } else { 0.0 };
            Luma([0.1 + 0.3 * (u * u + v * v) / 2.0 + stroke])
        });
        let contrast = remove_background(&plane);
        let background_left =
            contrast.pixels().map(|pixel| pixel.0[0]).filter(|&value| value < 0.3).fold(0.0, f32::max);
        assert!(background_left < 0.05, "{background_left}");
        assert!(contrast.get_pixel(195, 150).0[0] > 0.5);
    }
}
