//! PNG pictures for a training run: a confusion heat map, grids of digit images, the sprite
//! sheet that TensorBoard's embedding projector shows, and reliability diagrams.
//!
//! A picture of where a model goes wrong is read at a glance, where a table of counts is not,
//! and a grid of the misclassified digits shows whether the mistakes are the model's or the
//! data's. Everything is drawn here on plain pixel buffers with the public-domain 8×8 bitmap
//! font of `font8x8`, so the project needs no plotting crate, no font files and no system
//! libraries, and the output is byte-for-byte reproducible.

use std::fs;
use std::path::Path;

use font8x8::{BASIC_FONTS, UnicodeFonts};
use image::codecs::png::PngEncoder;
use image::{GrayImage, ImageBuffer, Luma, PixelWithColorType, Rgb, RgbImage};

use crate::calibrate::ReliabilityBin;
use crate::{Error, Result};

/// The side of one glyph of the bitmap font, in pixels at scale 1.
const GLYPH: u32 = 8;
/// Space around the edges of a picture.
const MARGIN: u32 = 16;
/// The side of one heat-map cell at least; wide counts make it wider.
const CELL: u32 = 44;
const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([40, 40, 40]);
const GRID_LINE: Rgb<u8> = Rgb([225, 225, 225]);
/// A sequential white-to-dark-blue ramp (the stops of ColorBrewer's "Blues"), which reads as
/// "more" without suggesting a sign, and prints well in grey.
const RAMP: [[f64; 3]; 5] =
    [[247.0, 251.0, 255.0], [198.0, 219.0, 239.0], [107.0, 174.0, 214.0], [33.0, 113.0, 181.0], [8.0, 48.0, 107.0]];

/// One picture of a grid: a square grayscale image and the short text drawn under it.
#[derive(Debug, Clone, PartialEq)]
pub struct GridTile {
    /// `tile_side × tile_side` grayscale pixels, row by row, 0 black and 255 white.
    pub pixels: Vec<u8>,
    /// A short caption such as `"7>2"` (true 7, predicted 2); empty for none. The font covers
    /// printable ASCII only: other characters are drawn as `?`.
    pub caption: String,
}

/// Draws a confusion matrix as a heat map: one cell per (true, predicted) pair, coloured by the
/// share of its row (the true class) from white for none to dark blue for all, with the count
/// written in it, the class labels along both axes, a colour bar and a title.
///
/// Colouring by row share rather than by count keeps rare and common classes comparable. The
/// colour follows the square root of the share: a good model's mistakes are 1% of a row or
/// less, which a linear ramp leaves white, and they are what the picture is for.
/// `counts` is indexed `[true][predicted]` with `labels.len()` rows and columns; a missing
/// entry counts as 0.
pub fn heat_map(labels: &[String], counts: &[Vec<u64>], title: &str) -> RgbImage {
    let layout = HeatMapLayout::new(labels, counts, title);
    let mut image = RgbImage::from_pixel(layout.width, layout.height, BACKGROUND);
    layout.draw_text(&mut image, labels, title);
    layout.draw_cells(&mut image, labels.len(), counts);
    layout.draw_colour_bar(&mut image);
    image
}

// The heat map's proportions, in font scales and pixels.
const TITLE_SCALE: u32 = 2;
const TITLE_GAP: u32 = 20;
const CAPTION_SCALE: u32 = 2;
const CAPTION_GAP: u32 = 8;
const LABEL_SCALE: u32 = 2;
const LABEL_GAP: u32 = 10;
const BAR_GAP: u32 = 20;
const BAR_WIDTH: u32 = 14;
const BAR_LABEL_GAP: u32 = 6;
const ZERO_INK: Rgb<u8> = Rgb([185, 185, 185]);

/// Where the parts of a heat map go, in pixels; computed apart from the drawing so that the
/// image can be sized first and tests can find the cells.
#[derive(Debug, Clone, Copy)]
struct HeatMapLayout {
    /// The left edge of the grid of cells.
    left: u32,
    /// The top edge of the grid of cells.
    top: u32,
    /// The side of one cell.
    cell: u32,
    /// The side of the whole grid.
    grid: u32,
    /// Whether column labels fit their column across, or are turned to read upwards.
    upright_columns: bool,
    width: u32,
    height: u32,
}

impl HeatMapLayout {
    fn new(labels: &[String], counts: &[Vec<u64>], title: &str) -> HeatMapLayout {
        let n = labels.len();
        let cells = counts.iter().take(n).flat_map(|row| row.iter().take(n));
        let digits = cells.map(|count| count.to_string().len() as u32).max().unwrap_or(1);
        let cell = CELL.max(digits * GLYPH + 8);
        let grid = n as u32 * cell;
        let widest_label = labels.iter().map(|label| text_width(label, LABEL_SCALE)).max().unwrap_or(0);
        // Column labels wider than a cell are turned to read upwards so that they do not overlap.
        let upright_columns = widest_label <= cell;
        let column_labels_height = if upright_columns { GLYPH * LABEL_SCALE } else { widest_label };
        let caption_height = GLYPH * CAPTION_SCALE;
        let left = MARGIN + caption_height + LABEL_GAP + widest_label + LABEL_GAP;
        let top = MARGIN + GLYPH * TITLE_SCALE + TITLE_GAP + caption_height + CAPTION_GAP;
        let top = top + column_labels_height + LABEL_GAP;
        let colour_bar_width = BAR_GAP + BAR_WIDTH + BAR_LABEL_GAP + text_width("100%", 1);
        let width = (left + grid + colour_bar_width + MARGIN)
            .max(text_width(title, TITLE_SCALE) + 2 * MARGIN)
            .max(left + text_width("predicted", CAPTION_SCALE) + MARGIN);
        // Room for the colour bar's marks even when there are no classes.
        let height = top + grid.max(4 * GLYPH) + MARGIN;
        HeatMapLayout { left, top, cell, grid, upright_columns, width, height }
    }

    /// The title, the axis captions and the class labels along both axes.
    fn draw_text(&self, image: &mut RgbImage, labels: &[String], title: &str) {
        let HeatMapLayout { left, top, cell, grid, .. } = *self;
        draw_text(image, (self.width - text_width(title, TITLE_SCALE)) / 2, MARGIN, title, TITLE_SCALE, INK);
        let predicted_x = (left + grid / 2).saturating_sub(text_width("predicted", CAPTION_SCALE) / 2).max(left);
        let predicted_y = MARGIN + GLYPH * TITLE_SCALE + TITLE_GAP;
        draw_text(image, predicted_x, predicted_y, "predicted", CAPTION_SCALE, INK);
        let true_y = (top + grid / 2).saturating_sub(text_width("true", CAPTION_SCALE) / 2);
        draw_text_up(image, MARGIN, true_y, "true", CAPTION_SCALE, INK);

        let label_height = GLYPH * LABEL_SCALE;
        for (index, label) in labels.iter().enumerate() {
            let offset = index as u32 * cell;
            let label_width = text_width(label, LABEL_SCALE);
            let row_y = top + offset + (cell - label_height) / 2;
            draw_text(image, left - LABEL_GAP - label_width, row_y, label, LABEL_SCALE, INK);
            if self.upright_columns {
                let x = left + offset + (cell - label_width) / 2;
                draw_text(image, x, top - LABEL_GAP - label_height, label, LABEL_SCALE, INK);
            } else {
                let x = left + offset + (cell - label_height) / 2;
                draw_text_up(image, x, top - LABEL_GAP - label_width, label, LABEL_SCALE, INK);
            }
        }
    }

    /// The `n × n` cells, each filled by its share of its row and labelled with its count, and
    /// the lines between them.
    fn draw_cells(&self, image: &mut RgbImage, n: usize, counts: &[Vec<u64>]) {
        let HeatMapLayout { left, top, cell, grid, .. } = *self;
        let count = |row: usize, column: usize| counts.get(row).and_then(|r| r.get(column)).copied().unwrap_or(0);
        for row in 0..n {
            let row_total: u64 = (0..n).map(|column| count(row, column)).sum();
            for column in 0..n {
                let value = count(row, column);
                let share = if row_total == 0 { 0.0 } else { value as f64 / row_total as f64 };
                let fill = ramp(share.sqrt());
                let (x, y) = (left + column as u32 * cell, top + row as u32 * cell);
                fill_rect(image, x, y, cell, cell, fill);
                let text = value.to_string();
                // Zeros are the bulk of a good matrix: grey keeps them legible but out of the way.
                let ink = if value == 0 { ZERO_INK } else { contrasting(fill) };
                draw_text(image, x + (cell - text_width(&text, 1)) / 2, y + (cell - GLYPH) / 2, &text, 1, ink);
            }
        }
        let n = n as u32;
        for line in 0..=n {
            // The last line sits on the grid's last pixel row and column, inside the grid.
            let offset = (line * cell).min(grid.saturating_sub(1));
            let colour = if line == 0 || line == n { INK } else { GRID_LINE };
            fill_rect(image, left + offset, top, 1, grid, colour);
            fill_rect(image, left, top + offset, grid, 1, colour);
        }
    }

    /// The colour bar right of the grid, on the cells' square-root scale, with a few shares marked.
    fn draw_colour_bar(&self, image: &mut RgbImage) {
        let (bar_left, top) = (self.left + self.grid + BAR_GAP, self.top);
        let bar_height = self.height - top - MARGIN;
        let bar_bottom = top + bar_height - 1;
        for step in 0..bar_height {
            let position = 1.0 - f64::from(step) / f64::from((bar_height - 1).max(1));
            fill_rect(image, bar_left, top + step, BAR_WIDTH, 1, ramp(position));
        }
        // Marks are drawn from the bottom up; one that would touch the one below it is left out.
        let mut free_below = self.height;
        for (share, text) in [(0.0, "0%"), (0.01, "1%"), (0.1, "10%"), (0.5, "50%"), (1.0, "100%")] {
            let y = bar_bottom - (f64::sqrt(share) * f64::from(bar_height - 1)).round() as u32;
            let text_y = y.saturating_sub(GLYPH / 2).clamp(top, bar_bottom + 1 - GLYPH);
            if text_y + GLYPH + 2 > free_below {
                continue;
            }
            fill_rect(image, bar_left + BAR_WIDTH, y, 3, 1, INK);
            draw_text(image, bar_left + BAR_WIDTH + BAR_LABEL_GAP, text_y, text, 1, INK);
            free_below = text_y;
        }
    }
}

/// Lays out grayscale tiles in rows of `columns`, each enlarged `scale` times (nearest
/// neighbour, so digits stay sharp) on a white sheet with a gap between tiles, each caption
/// centred under its tile; with every caption empty no room is kept for captions. Columns are
/// widened to the widest caption when a caption is wider than a tile (`"Shirt>T-shirt/top"`),
/// so that captions never overlap.
///
/// Used for the misclassified test images (captions such as `"7>2"`) and for a sample of the
/// training set. A row has `columns` tiles at most and fewer when there are fewer tiles; a
/// tile's pixels beyond its `pixels` count as black.
pub fn image_grid(tiles: &[GridTile], tile_side: u32, columns: u32, scale: u32) -> RgbImage {
    const GAP: u32 = 8;
    const CAPTION_TOP: u32 = 6;
    let count = tiles.len() as u32;
    let columns = columns.max(1).min(count.max(1));
    let rows = count.div_ceil(columns);
    let scale = scale.max(1);
    let tile = tile_side * scale;
    // Captions are drawn as large as fits under a tile, up to twice the font's size.
    let caption_scale = if tiles.iter().all(|item| text_width(&item.caption, 2) <= tile) { 2 } else { 1 };
    let captioned = tiles.iter().any(|item| !item.caption.is_empty());
    let caption_height = if captioned { CAPTION_TOP + GLYPH * caption_scale } else { 0 };
    let widest_caption = tiles.iter().map(|item| text_width(&item.caption, caption_scale)).max().unwrap_or(0);
    let column = tile.max(widest_caption);
    let width = GAP + columns * (column + GAP);
    let height = GAP + rows * (tile + caption_height + GAP);
    let mut image = RgbImage::from_pixel(width, height, BACKGROUND);

    for (index, item) in tiles.iter().enumerate() {
        let index = index as u32;
        let x0 = GAP + index % columns * (column + GAP) + (column - tile) / 2;
        let y0 = GAP + index / columns * (tile + caption_height + GAP);
        for y in 0..tile {
            for x in 0..tile {
                let source = (y / scale * tile_side + x / scale) as usize;
                let value = item.pixels.get(source).copied().unwrap_or(0);
                image.put_pixel(x0 + x, y0 + y, Rgb([value; 3]));
            }
        }
        let caption_x = (x0 + tile / 2).saturating_sub(text_width(&item.caption, caption_scale) / 2);
        draw_text(&mut image, caption_x, y0 + tile + CAPTION_TOP, &item.caption, caption_scale, INK);
    }
    image
}

/// Draws reliability diagrams side by side, one panel per `(title, bins)`: for each bin of
/// top probability, a bar as high as the share of its answers that are right, over the
/// diagonal a perfectly calibrated model would follow. A bar below the diagonal is
/// overconfidence; an empty bin has no bar. Axes run from 0 to 1.
pub fn reliability_diagram(panels: &[(String, Vec<ReliabilityBin>)]) -> RgbImage {
    const PLOT: u32 = 240;
    const GAP: u32 = 40;
    const SCALE: u32 = 1;
    const BAR: Rgb<u8> = Rgb([33, 113, 181]);
    const DIAGONAL: Rgb<u8> = Rgb([220, 60, 40]);
    let title_height = GLYPH * SCALE + 10;
    let panel_width = GLYPH * SCALE + 6 + PLOT;
    let widest_title = panels.iter().map(|(title, _)| text_width(title, SCALE)).max().unwrap_or(0);
    let column = panel_width.max(widest_title);
    let count = panels.len().max(1) as u32;
    let width = 2 * MARGIN + count * column + (count - 1) * GAP;
    let height = 2 * MARGIN + title_height + PLOT + 6 + 2 * (GLYPH * SCALE + 4);
    let mut image = RgbImage::from_pixel(width, height, BACKGROUND);
    for (index, (title, bins)) in panels.iter().enumerate() {
        let left = MARGIN + index as u32 * (column + GAP);
        draw_text(&mut image, left, MARGIN, title, SCALE, INK);
        draw_text_up(
            &mut image,
            left,
            MARGIN + title_height + (PLOT - text_width("accuracy", SCALE)) / 2,
            "accuracy",
            SCALE,
            INK,
        );
        let (x0, y0) = (left + GLYPH * SCALE + 6, MARGIN + title_height);
        for line in 0..=4 {
            fill_rect(&mut image, x0, y0 + line * PLOT / 4, PLOT, 1, GRID_LINE);
            fill_rect(&mut image, x0 + line * PLOT / 4, y0, 1, PLOT, GRID_LINE);
        }
        let bar_width = PLOT / bins.len().max(1) as u32;
        for (bin_index, bin) in bins.iter().enumerate().filter(|(_, bin)| bin.count > 0) {
            let bar_height = (bin.accuracy.clamp(0.0, 1.0) * f64::from(PLOT)).round() as u32;
            let x = x0 + bin_index as u32 * bar_width;
            fill_rect(&mut image, x + 1, y0 + PLOT - bar_height, bar_width.saturating_sub(2), bar_height, BAR);
        }
        for step in 0..PLOT {
            fill_rect(&mut image, x0 + step, y0 + PLOT - 1 - step, 2, 2, DIAGONAL);
        }
        fill_rect(&mut image, x0, y0 + PLOT, PLOT, 1, INK);
        fill_rect(&mut image, x0, y0, 1, PLOT, INK);
        let axis_y = y0 + PLOT + 6;
        draw_text(&mut image, x0, axis_y, "0", SCALE, INK);
        draw_text(&mut image, x0 + PLOT - text_width("1", SCALE), axis_y, "1", SCALE, INK);
        let caption = "top probability";
        draw_text(
            &mut image,
            x0 + (PLOT - text_width(caption, SCALE)) / 2,
            axis_y + GLYPH * SCALE + 4,
            caption,
            SCALE,
            INK,
        );
    }
    image
}

/// Packs tiles into the sprite sheet that TensorBoard's embedding projector expects: a square
/// of `ceil(sqrt(n))` tiles a side, filled row by row from the top left, with no spacing, at
/// scale 1, the unused tail black. Tile `i` then belongs to row `i` of the embeddings.
pub fn sprite(tiles: &[Vec<u8>], tile_side: u32) -> GrayImage {
    let side = ceil_sqrt(tiles.len() as u32);
    let mut image = GrayImage::new(side * tile_side, side * tile_side);
    for (index, pixels) in tiles.iter().enumerate() {
        let index = index as u32;
        let (x0, y0) = (index % side * tile_side, index / side * tile_side);
        for (offset, &value) in pixels.iter().take((tile_side * tile_side) as usize).enumerate() {
            let offset = offset as u32;
            image.put_pixel(x0 + offset % tile_side, y0 + offset / tile_side, Luma([value]));
        }
    }
    image
}

/// Encodes an 8-bit image (an [`RgbImage`] or a [`GrayImage`]) as PNG in memory, for callers
/// that embed the bytes elsewhere (a TensorBoard image summary, an HTTP response).
///
/// # Errors
///
/// Only for an image the PNG format cannot hold, such as one with no pixels; the encoder's
/// error is carried as an [`std::io::Error`] so that callers can add their own context.
pub fn encode_png<P>(image: &ImageBuffer<P, Vec<u8>>) -> std::io::Result<Vec<u8>>
where
    P: PixelWithColorType<Subpixel = u8>,
{
    let mut bytes = Vec::new();
    image.write_with_encoder(PngEncoder::new(&mut bytes)).map_err(std::io::Error::other)?;
    Ok(bytes)
}

/// Encodes an 8-bit image as PNG and writes it to `path`, replacing any file there.
///
/// # Errors
///
/// [`Error::Io`] naming `path` when the image cannot be encoded (see [`encode_png`]) or the
/// file cannot be written.
pub fn save_png<P>(image: &ImageBuffer<P, Vec<u8>>, path: &Path) -> Result<()>
where
    P: PixelWithColorType<Subpixel = u8>,
{
    let bytes = encode_png(image).map_err(Error::io("cannot encode", path))?;
    fs::write(path, bytes).map_err(Error::io("cannot write", path))
}

/// The smallest `side` with `side * side >= n`.
fn ceil_sqrt(n: u32) -> u32 {
    let mut side = f64::from(n).sqrt() as u32;
    while side * side < n {
        side += 1;
    }
    side
}

/// The ramp's colour for a share in `0..=1`, interpolated linearly between its stops.
fn ramp(share: f64) -> Rgb<u8> {
    let position = share.clamp(0.0, 1.0) * (RAMP.len() - 1) as f64;
    let below = (position.floor() as usize).min(RAMP.len() - 2);
    let t = position - below as f64;
    let (low, high) = (RAMP[below], RAMP[below + 1]);
    Rgb(std::array::from_fn(|channel| (low[channel] + t * (high[channel] - low[channel])).round() as u8))
}

/// Black on light fills, white on dark ones, judged by perceived (Rec. 601) luminance.
fn contrasting(fill: Rgb<u8>) -> Rgb<u8> {
    let [r, g, b] = fill.0.map(f64::from);
    if 0.299 * r + 0.587 * g + 0.114 * b > 140.0 { Rgb([0, 0, 0]) } else { Rgb([255, 255, 255]) }
}

/// The width in pixels of `text` drawn at `scale`.
fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * GLYPH * scale
}

/// The set pixels of `text` in the font, as `(x, y)` with the text's top left at the origin,
/// at scale 1. A character the basic font lacks is drawn as `?`.
fn glyph_dots(text: &str) -> impl Iterator<Item = (u32, u32)> + '_ {
    text.chars().enumerate().flat_map(|(index, character)| {
        let glyph = BASIC_FONTS.get(character).or_else(|| BASIC_FONTS.get('?')).unwrap_or_default();
        let left = index as u32 * GLYPH;
        // Bit `i` of a row's byte is the row's column `i`, from the left.
        (0..GLYPH)
            .flat_map(move |y| (0..GLYPH).filter(move |&x| glyph[y as usize] >> x & 1 == 1).map(move |x| (left + x, y)))
    })
}

/// Draws `text` left to right with its top left at `(x, y)`, each font pixel a
/// `scale × scale` square; what falls outside the image is clipped.
fn draw_text(image: &mut RgbImage, x: u32, y: u32, text: &str, scale: u32, colour: Rgb<u8>) {
    for (dx, dy) in glyph_dots(text) {
        fill_rect(image, x + dx * scale, y + dy * scale, scale, scale, colour);
    }
}

/// Draws `text` turned a quarter turn anticlockwise, reading upwards, in the box whose top
/// left is `(x, y)`: `8 × scale` wide and as tall as the text is long. Used for the vertical
/// axis caption and for column labels too wide for their column.
fn draw_text_up(image: &mut RgbImage, x: u32, y: u32, text: &str, scale: u32, colour: Rgb<u8>) {
    let length = text_width(text, 1);
    for (dx, dy) in glyph_dots(text) {
        fill_rect(image, x + dy * scale, y + (length - 1 - dx) * scale, scale, scale, colour);
    }
}

/// Fills a rectangle, clipped to the image.
fn fill_rect(image: &mut RgbImage, x: u32, y: u32, width: u32, height: u32, colour: Rgb<u8>) {
    let (right, bottom) = ((x + width).min(image.width()), (y + height).min(image.height()));
    for py in y..bottom {
        for px in x..right {
            image.put_pixel(px, py, colour);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reliability_diagram_has_a_bar_per_filled_bin_up_to_its_accuracy() {
        let mut bins = vec![ReliabilityBin { count: 0, confidence: 0.0, accuracy: 0.0 }; 15];
        bins[14] = ReliabilityBin { count: 90, confidence: 0.98, accuracy: 0.5 };
        let image = reliability_diagram(&[("test, before".into(), bins.clone()), ("test, after".into(), bins)]);
        assert!(image.width() > 2 * 240 && image.height() > 240);
        // The last bin's bar is blue halfway up its plot and white above three quarters.
        let blue = |x: u32, y: u32| *image.get_pixel(x, y) == Rgb([33, 113, 181]);
        let (x0, y0) = (MARGIN + GLYPH + 6, MARGIN + GLYPH + 10);
        let bar_x = x0 + 14 * 16 + 4;
        assert!(blue(bar_x, y0 + 240 - 60) && !blue(bar_x, y0 + 40));
        assert!(!blue(x0 + 16 + 4, y0 + 240 - 2), "an empty bin has no bar");
    }

    fn digits() -> Vec<String> {
        (0..10).map(|digit| digit.to_string()).collect()
    }

    fn luminance(pixel: Rgb<u8>) -> u32 {
        pixel.0.iter().map(|&channel| u32::from(channel)).sum()
    }

    /// The colour near a cell's top left corner, away from its grid line and its count.
    fn cell_colour(image: &RgbImage, layout: HeatMapLayout, row: u32, column: u32) -> Rgb<u8> {
        *image.get_pixel(layout.left + column * layout.cell + 6, layout.top + row * layout.cell + 6)
    }

    #[test]
    fn heat_map_cells_darken_with_the_row_share() {
        let labels = digits();
        let mut counts = vec![vec![0u64; 10]; 10];
        counts[3][3] = 90;
        counts[3][5] = 10;
        counts[4][4] = 50;
        counts[4][9] = 50;
        let image = heat_map(&labels, &counts, "test");
        let layout = HeatMapLayout::new(&labels, &counts, "test");
        assert_eq!((image.width(), image.height()), (layout.width, layout.height));
        let full = cell_colour(&image, layout, 3, 3);
        let half = cell_colour(&image, layout, 4, 4);
        let tenth = cell_colour(&image, layout, 3, 5);
        let none = cell_colour(&image, layout, 3, 4);
        assert_eq!(half, cell_colour(&image, layout, 4, 9), "same share, same colour");
        assert!(luminance(full) < luminance(half), "{full:?} {half:?}");
        assert!(luminance(half) < luminance(tenth), "{half:?} {tenth:?}");
        assert!(luminance(tenth) < luminance(none), "{tenth:?} {none:?}");
        assert_eq!(none, ramp(0.0));
    }

    #[test]
    fn heat_map_size_follows_the_classes() {
        let small = heat_map(&digits()[..2], &[vec![1, 0], vec![0, 1]], "");
        let large = heat_map(&digits(), &vec![vec![1; 10]; 10], "");
        assert_eq!(large.width() - small.width(), 8 * CELL);
        assert_eq!(large.height() - small.height(), 8 * CELL);
        // Wide counts widen the cells so that the numbers fit.
        let wide = heat_map(&digits()[..2], &[vec![123_456_789, 0], vec![0, 1]], "");
        assert!(wide.width() > small.width());
    }

    #[test]
    fn heat_map_tolerates_no_classes_and_long_labels() {
        let empty = heat_map(&[], &[], "nothing");
        assert!(empty.width() >= text_width("nothing", 2));
        let labels = vec!["T-shirt/top".to_string(), "Trouser".to_string()];
        let image = heat_map(&labels, &[vec![5, 1], vec![0, 6]], "Fashion");
        assert!(image.height() > heat_map(&digits()[..2], &[vec![5, 1], vec![0, 6]], "Fashion").height());
    }

    #[test]
    fn contrasting_ink_is_readable() {
        assert_eq!(contrasting(ramp(0.0)), Rgb([0, 0, 0]));
        assert_eq!(contrasting(ramp(1.0)), Rgb([255, 255, 255]));
    }

    #[test]
    fn grid_size_counts_tiles_gaps_and_captions() {
        let tile = |caption: &str| GridTile { pixels: vec![128; 28 * 28], caption: caption.to_string() };
        let captioned: Vec<GridTile> = (0..7).map(|_| tile("7>2")).collect();
        let image = image_grid(&captioned, 28, 4, 2);
        // 4 columns of 56 + 5 gaps of 8; 2 rows of 56 + caption (6 + 16) + 3 gaps of 8.
        assert_eq!((image.width(), image.height()), (4 * 56 + 5 * 8, 2 * (56 + 22) + 3 * 8));
        assert_eq!(*image.get_pixel(8, 8), Rgb([128; 3]), "first tile's top left");
        assert_eq!(*image.get_pixel(7, 8), BACKGROUND, "gap before it");

        let plain: Vec<GridTile> = (0..3).map(|_| tile("")).collect();
        let image = image_grid(&plain, 28, 10, 1);
        assert_eq!((image.width(), image.height()), (3 * 28 + 4 * 8, 28 + 2 * 8), "no caption room, 3 columns");
    }

    #[test]
    fn captions_wider_than_a_tile_widen_the_columns_and_never_overlap() {
        let tile = |caption: &str| GridTile { pixels: vec![128; 28 * 28], caption: caption.to_string() };
        let tiles = [tile("Shirt>T-shirt/top"), tile("Bag>Sandal")];
        let image = image_grid(&tiles, 28, 2, 2);
        // 17 characters at scale 1 (scale 2 does not fit under a 56-pixel tile): 136 pixels.
        let column = 17 * 8;
        assert_eq!(image.width(), 8 + 2 * (column + 8));
        let tile_left = 8 + (column - 56) / 2;
        assert_eq!(*image.get_pixel(tile_left, 8), Rgb([128; 3]), "the tile is centred in its column");
        assert_eq!(*image.get_pixel(tile_left - 1, 8), BACKGROUND);
        let caption_row = 8 + 56 + 6;
        let inked = |x: u32| (caption_row..caption_row + 8).any(|y| *image.get_pixel(x, y) != BACKGROUND);
        assert!(!inked(8 + column + 4), "nothing is drawn in the gap between the columns");
    }

    #[test]
    fn grid_scales_by_nearest_neighbour() {
        let pixels = vec![0, 255, 255, 0];
        let image = image_grid(&[GridTile { pixels, caption: String::new() }], 2, 1, 3);
        let (x0, y0) = (8, 8);
        assert_eq!(*image.get_pixel(x0 + 2, y0 + 2), Rgb([0; 3]));
        assert_eq!(*image.get_pixel(x0 + 3, y0), Rgb([255; 3]));
        assert_eq!(*image.get_pixel(x0 + 5, y0 + 2), Rgb([255; 3]));
        assert_eq!(*image.get_pixel(x0 + 5, y0 + 5), Rgb([0; 3]));
    }

    #[test]
    fn sprite_is_a_square_of_tiles_without_spacing() {
        let tiles: Vec<Vec<u8>> = (0..10u8).map(|index| vec![index * 20 + 1; 28 * 28]).collect();
        let image = sprite(&tiles, 28);
        assert_eq!((image.width(), image.height()), (112, 112));
        assert_eq!(image.get_pixel(0, 0).0, [1]);
        assert_eq!(image.get_pixel(28, 0).0, [21], "tile 1 right after tile 0");
        assert_eq!(image.get_pixel(0, 28).0, [81], "tile 4 starts the second row");
        assert_eq!(image.get_pixel(28 + 27, 56 + 27).0, [181], "tile 9");
        assert_eq!(image.get_pixel(111, 111).0, [0], "unused tail");
        assert_eq!(sprite(&tiles[..9], 28).width(), 84);
        assert_eq!(sprite(&tiles[..1], 28).width(), 28);
    }

    #[test]
    fn ceil_sqrt_is_exact() {
        let sides: Vec<u32> = [0, 1, 2, 4, 5, 9, 10, 10_000, 10_001].into_iter().map(ceil_sqrt).collect();
        assert_eq!(sides, [0, 1, 2, 2, 3, 3, 4, 100, 101]);
    }

    #[test]
    fn draw_text_stays_in_its_box() {
        let mut image = RgbImage::from_pixel(60, 60, BACKGROUND);
        draw_text(&mut image, 10, 20, "AB", 2, INK);
        let inked: Vec<(u32, u32)> =
            image.enumerate_pixels().filter(|(_, _, pixel)| **pixel == INK).map(|(x, y, _)| (x, y)).collect();
        assert!(inked.len() > 40, "{} pixels", inked.len());
        assert!(inked.iter().all(|&(x, y)| (10..42).contains(&x) && (20..36).contains(&y)));
        assert!(inked.iter().any(|&(x, _)| x >= 26), "the second letter is drawn after the first");
    }

    #[test]
    fn draw_text_up_is_the_text_turned() {
        let mut across = RgbImage::from_pixel(16, 8, BACKGROUND);
        let mut up = RgbImage::from_pixel(8, 16, BACKGROUND);
        draw_text(&mut across, 0, 0, "L7", 1, INK);
        draw_text_up(&mut up, 0, 0, "L7", 1, INK);
        for (x, y, pixel) in across.enumerate_pixels() {
            assert_eq!(pixel, up.get_pixel(y, 15 - x), "({x}, {y})");
        }
    }

    #[test]
    fn drawing_off_the_edge_is_clipped() {
        let mut image = RgbImage::from_pixel(10, 10, BACKGROUND);
        draw_text(&mut image, 6, 6, "WWW", 3, INK);
        draw_text(&mut image, 100, 100, "x", 1, INK);
        assert!(image.pixels().any(|pixel| *pixel == INK));
    }

    #[test]
    fn png_round_trips() {
        let image = sprite(&[vec![7; 4], vec![200; 4]], 2);
        let bytes = encode_png(&image).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoded = image::load_from_memory(&bytes).unwrap().into_luma8();
        assert_eq!(decoded, image);

        let path = std::env::temp_dir().join(format!("report-kit-{}.png", std::process::id()));
        let rgb = image_grid(&[GridTile { pixels: vec![9; 4], caption: "1>7".to_string() }], 2, 1, 1);
        save_png(&rgb, &path).unwrap();
        assert_eq!(image::open(&path).unwrap().into_rgb8(), rgb);
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn save_png_reports_the_path() {
        let path = Path::new("/nonexistent-directory/picture.png");
        let error = save_png(&sprite(&[vec![0; 4]], 2), path).unwrap_err();
        assert!(error.to_string().starts_with("cannot write /nonexistent-directory/picture.png"), "{error}");
        let error = encode_png(&GrayImage::new(0, 0)).unwrap_err();
        assert!(!error.to_string().is_empty());
    }
}
