"""Realistic evaluation sets: MNIST test digits drawn the way users really send them.

The model never trained on the MNIST test set, so every image below has a known label and is
new to it. Each set stands for one kind of upload:

- paper-photo: a phone photo of ink on paper (texture, shadow, tilt, JPEG, a quarter of
  them upright only through their EXIF Orientation tag);
- scan: a flat scan, the digit small on a near-white page, some in faint pencil;
- canvas-transparent: an HTML canvas export, round-pen strokes on a transparent RGBA PNG;
- canvas-white / canvas-dark: the same strokes on an opaque white / black canvas;
- mnist-test: the 10,000 MNIST test images themselves, pixel for pixel (ignores --count);
- low-res: thumbnails, the digit 8 to 16 pixels tall, upscaled (blocky or blurry) and some
  blurred further;
- fonts: digits typed in handwriting-like fonts from Debian's packages (FONT_PACKAGES), each
  label rendered, not drawn from MNIST;
- thick-thin: the digit redrawn with a very thick marker or a very thin pen;
- boxed: a scan with the digit in a form's box, or on a line under it;
- perspective: a paper photo taken at a slant (a perspective warp of up to a sixth of the
  page).

And two out-of-domain sets, which no digit model should call a digit (label `none`):

- fashion-test: the 10,000 Fashion-MNIST test images (Debian's dataset-fashion-mnist),
  pixel for pixel (ignores --count);
- letters: letters typed like the fonts set, dark on a light page. O, o, I and l are left
  out: these fonts draw them as 0 and 1.

Writes DIR/<set>/<index>-<label>.<ext> (index: the MNIST test index) and DIR/<set>/labels.csv
(file, label, mnist_index, variant: how that image was made). Same --seed and --count, same
files. With --examples, also writes one contact sheet per set there (the committed ones are in
bench/preprocess/examples/).

Usage: make_eval_sets.py [--seed 1] [--count 1000] [--out DIR] [--mnist data/mnist] [--examples DIR]
"""
import argparse
import csv
import gzip
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps
from scipy.ndimage import distance_transform_edt, gaussian_filter
from skimage.morphology import skeletonize

# EXIF Orientation tag, and for each value the transpose that stores an upright image so
# that a reader applying the tag (as ImageOps.exif_transpose does) shows it upright again.
ORIENTATION = 0x0112
STORE_FOR_ORIENTATION = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}

# What out-of-domain images are labelled in labels.csv.
NOT_A_DIGIT = "none"
# The letters of the letters set: all but O, o, I and l, which these fonts draw as 0 and 1.
LETTERS = [letter for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if letter not in "OoIl"]

# Handwriting-like fonts and the Debian packages that install them (bench/preprocess.sh
# installs the packages).
FONT_PACKAGES = ["fonts-humor-sans", "fonts-comic-neue", "fonts-dancingscript", "fonts-dkg-handwriting",
                 "fonts-kaushanscript", "fonts-rufscript"]
FONTS = ["/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf",
         "/usr/share/fonts/opentype/comic-neue/ComicNeue-Regular.otf",
         "/usr/share/fonts/opentype/comic-neue/ComicNeue-Bold.otf",
         "/usr/share/fonts/opentype/comic-neue/ComicNeue-Italic.otf",
         "/usr/share/fonts/opentype/dancingscript/DancingScript-Regular.otf",
         "/usr/share/fonts/opentype/dancingscript/DancingScript-Bold.otf",
         "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
         "/usr/share/fonts/truetype/fifthhorseman/dkgBd.ttf",
         "/usr/share/fonts/opentype/kaushanscript/KaushanScript-Regular.otf",
         "/usr/share/fonts/truetype/rufscript/Rufscript010.ttf"]

PEN_INKS = {"black": (25, 25, 30), "blue": (25, 45, 150), "dark-red": (130, 25, 30), "pencil": (95, 95, 100)}
CANVAS_COLOURS = {"blue": (30, 90, 230), "red": (220, 40, 40), "green": (30, 150, 60), "purple": (130, 50, 180)}


def read_test_split(folder):
    """The test images (N, 28, 28) uint8 and labels of an IDX data set (MNIST: white ink on
    black), from its raw or gzipped files."""
    def read(name, header):
        raw = folder / name
        data = raw.read_bytes() if raw.exists() else gzip.decompress((folder / f"{name}.gz").read_bytes())
        return np.frombuffer(data[header:], np.uint8)
    return read("t10k-images-idx3-ubyte", 16).reshape(-1, 28, 28), read("t10k-labels-idx1-ubyte", 8)


def balanced_draw(rng, labels, count):
    """`count` distinct test indices, as even across the ten digits as `count` allows, shuffled."""
    picked = [rng.choice(np.flatnonzero(labels == digit), count // 10 + (digit < count % 10), replace=False)
              for digit in range(10)]
    return rng.permutation(np.concatenate(picked))


def ink_bbox(ink, threshold):
    """(top, left, bottom, right), exclusive, of the pixels above `threshold`."""
    ys, xs = np.nonzero(ink > threshold)
    return ys.min(), xs.min(), ys.max() + 1, xs.max() + 1


def upscaled_ink(digit, scale, angle=0.0):
    """The digit as ink coverage in [0, 1], upscaled smoothly, rotated, cropped to the ink."""
    size = round(28 * scale)
    image = Image.fromarray(digit.astype(np.float32) / 255, "F").resize((size, size), Image.BICUBIC)
    image = image.rotate(angle, Image.BICUBIC, expand=True)
    ink = np.clip(np.asarray(image), 0, 1)
    top, left, bottom, right = ink_bbox(ink, 0.02)
    return ink[top:bottom, left:right]


def place(rng, ink, height, width, margin):
    """`ink` pasted at a random spot of a (height, width) zero page, `margin` px from every edge."""
    page = np.zeros((height, width), np.float32)
    top = rng.integers(margin, height - ink.shape[0] - margin + 1)
    left = rng.integers(margin, width - ink.shape[1] - margin + 1)
    page[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
    return page


def smooth_noise(rng, height, width, cells):
    """Low-frequency noise with unit spread: a coarse random grid upscaled smoothly."""
    grid = rng.normal(size=(cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((width, height), Image.BICUBIC))


def lighting(rng, height, width):
    """A multiplicative shadow: a linear or radial fall-off darkening the page by up to 40%."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = rng.uniform(0.1, 0.4)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        ramp = xs * np.cos(angle) + ys * np.sin(angle)
        ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
        return 1 - depth * ramp, f"linear-shadow={depth:.2f}"
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    radius = np.hypot(ys - cy, xs - cx)
    return 1 - depth * (radius / radius.max()) ** 2, f"radial-shadow={depth:.2f}"


def to_image(pixels):
    """Float pixels in [0, 255] (H, W) or (H, W, channels) as an 8-bit image."""
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


def maybe_sideways(rng, image, options):
    """A quarter of the time, `image` stored turned, with the EXIF orientation tag (added to the
    save `options`) that turns it upright, as phones store photos; and a note for the variant."""
    if rng.random() >= 0.25:
        return image, ""
    orientation = int(rng.choice(list(STORE_FOR_ORIENTATION)))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    options["exif"] = exif
    return image.transpose(STORE_FOR_ORIENTATION[orientation]), f" exif-orientation={orientation}"


def paper_photo(rng, digit):
    """A phone photo of the digit written in ink on paper."""
    height = int(rng.integers(160, 641))
    width = int(np.clip(height * rng.uniform(0.6, 1.7), 160, 640))  # portrait to landscape
    scale = rng.uniform(3, min(10, 0.7 * min(height, width) / 28))
    ink_name = rng.choice(list(PEN_INKS))
    ink = upscaled_ink(digit, scale, rng.uniform(-10, 10))
    ink = gaussian_filter(ink, 0.15 * scale)  # pen bleed softens the upscaled edges
    if ink_name == "pencil":  # graphite: grainy and not fully covering
        ink *= np.clip(rng.uniform(0.55, 0.8) + 0.15 * rng.normal(size=ink.shape), 0, 1)
    coverage = place(rng, ink, height, width, margin=round(0.05 * min(height, width)))[..., None]

    paper = np.array([rng.uniform(215, 245)] * 3) + rng.uniform(-6, 6, 3) - [0, 0, rng.uniform(0, 12)]
    texture = rng.uniform(2, 5) * gaussian_filter(rng.normal(size=(height, width)), 0.6)
    texture += rng.uniform(3, 8) * smooth_noise(rng, height, width, cells=rng.integers(4, 10))
    page = (paper + texture[..., None]) * (1 - coverage) + np.array(PEN_INKS[ink_name]) * coverage
    shadow, shadow_name = lighting(rng, height, width)
    page *= shadow[..., None]
    contrast = rng.uniform(0.75, 0.95)  # haze and auto-exposure pull everything towards grey
    page = page.mean() + contrast * (page - page.mean())
    page = gaussian_filter(page, (rng.uniform(0.3, 1.0),) * 2 + (0,))  # focus
    page += rng.normal(0, rng.uniform(1, 4), page.shape)  # sensor noise
    image = to_image(page)

    quality = int(rng.integers(35, 91))
    variant = f"ink={ink_name} scale={scale:.1f} {shadow_name} contrast={contrast:.2f} jpeg={quality}"
    options = {"quality": quality}
    image, sideways = maybe_sideways(rng, image, options)
    return image, "jpg", options, variant + sideways


def scan(rng, digit):
    """A flat-bed scan of a page with the digit written small on it."""
    height, width = rng.integers(300, 801, size=2)
    top, _, bottom, _ = ink_bbox(digit, 127)
    digit_height = rng.uniform(40, 120)
    ink = upscaled_ink(digit, digit_height / (bottom - top), rng.uniform(-3, 3))
    coverage = place(rng, ink, height, width, margin=20)[..., None]

    paper = rng.uniform(242, 255) + rng.uniform(-4, 4, 3)
    faint = rng.random() < 0.3
    strength = rng.uniform(0.3, 0.5) if faint else rng.uniform(0.75, 0.92)
    page = paper * (1 - strength * coverage)
    page = gaussian_filter(page, (rng.uniform(0.3, 0.7),) * 2 + (0,))
    variant = f"digit-height={digit_height:.0f} {'pencil' if faint else 'ink'}={strength:.2f}"
    if rng.random() < 0.25:  # the scanner lid's dark edge along one border
        stripe = int(rng.integers(4, 26))
        side = int(rng.integers(4))
        page = np.rot90(page, side).copy()
        page[:, :stripe] = rng.uniform(15, 60)
        page = np.rot90(page, -side)
        variant += f" edge-stripe={stripe}"
    page += rng.normal(0, rng.uniform(1, 3), page.shape[:2])[..., None]
    image = to_image(page)
    if rng.random() < 0.5:
        image = image.convert("L")
    variant += f" mode={image.mode}"
    if rng.random() < 0.5:
        return image, "png", {}, variant
    quality = int(rng.integers(88, 96))
    return image, "jpg", {"quality": quality}, variant + f" jpeg={quality}"


def pen_strokes(rng, digit, pen_width=None):
    """The digit redrawn as a canvas drawing: its skeleton traced with a round pen, by default
    8 to 24 px wide, or `pen_width(digit_height)` px.

    Returns the canvas as stroke alpha in [0, 1] and a description of the drawing."""
    size = int(rng.integers(200, 401))
    top, left, bottom, right = ink_bbox(digit, 127)
    digit_height = rng.uniform(0.4, 0.9) * size
    pen = min(rng.uniform(8, 24), 0.16 * digit_height) if pen_width is None else pen_width(digit_height)
    scale = min((digit_height - pen) / (bottom - top), (0.85 * size - pen) / (right - left))
    ink = gaussian_filter(np.pad(upscaled_ink(digit, scale), round(pen)), 0.5 * scale)  # a hand's smooth path
    skeleton = skeletonize(ink > 0.4)
    distance = distance_transform_edt(~skeleton)
    alpha = np.clip(pen / 2 + 0.5 - distance, 0, 1)  # one antialiased pixel at the pen's edge
    top, left, bottom, right = ink_bbox(alpha, 0)
    canvas = place(rng, alpha[top:bottom, left:right], size, size, margin=4)
    return canvas, f"canvas={size} digit-height={digit_height:.0f} pen={pen:.1f}"


def canvas_transparent(rng, digit):
    """A canvas export: ink only where drawn, everything else fully transparent."""
    alpha, variant = pen_strokes(rng, digit)
    colour_name = "black" if rng.random() < 0.75 else rng.choice(list(CANVAS_COLOURS))
    colour = CANVAS_COLOURS.get(colour_name, (0, 0, 0))
    background = (0, 0, 0) if rng.random() < 0.75 else (255, 255, 255)  # RGB under alpha 0
    rgb = np.where(alpha[..., None] > 0, colour, background)
    pixels = np.dstack([rgb, 255 * alpha])
    return to_image(pixels), "png", {}, f"{variant} ink={colour_name} transparent-rgb={background[0]}"


def canvas_white(rng, digit):
    """A drawing app's export: dark ink on an opaque white canvas."""
    alpha, variant = pen_strokes(rng, digit)
    colour_name = "black" if rng.random() < 0.8 else "dark-blue"
    colour = np.array((0, 0, 0) if colour_name == "black" else (20, 40, 160))
    pixels = 255 * (1 - alpha[..., None]) + colour * alpha[..., None]
    return to_image(pixels), "png", {}, f"{variant} ink={colour_name}"


def canvas_dark(rng, digit):
    """The demo page's polarity, white ink on black, but at canvas size and off-centre."""
    alpha, variant = pen_strokes(rng, digit)
    return to_image(np.dstack([255 * alpha] * 3)), "png", {}, variant


def low_res(rng, digit):
    """A thumbnail or a tiny scan: the digit 8 to 16 px tall, upscaled blocky or smooth."""
    top, left, bottom, right = ink_bbox(digit, 30)
    margin = 3
    crop = np.pad(digit, margin)[top:bottom + 2 * margin, left:right + 2 * margin].astype(np.float32) / 255
    small_height = int(rng.integers(8, 17))
    small_width = max(4, round(crop.shape[1] * small_height / crop.shape[0]))
    small = np.asarray(Image.fromarray(crop, "F").resize((small_width, small_height), Image.BOX))
    dark_on_light = rng.random() < 0.7
    pixels = 255 * (1 - 0.9 * small) if dark_on_light else 255 * small
    factor = int(rng.integers(4, 17))
    resample_name = rng.choice(["nearest", "bilinear", "bicubic"])
    resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[resample_name]
    image = to_image(pixels).resize((small_width * factor, small_height * factor), resample)
    variant = f"digit-height={small_height} upscaled={factor}x {resample_name} {'dark-on-light' if dark_on_light else 'light-on-dark'}"
    if rng.random() < 0.4:
        sigma = rng.uniform(0.5, 2.0) * factor / 4
        image = to_image(gaussian_filter(np.asarray(image, np.float32), sigma))
        variant += f" blur={sigma:.1f}"
    return half_jpeg(rng, image, variant, 60, 91)


def half_jpeg(rng, image, variant, lowest, highest):
    """`image` as a PNG, or half the time as a JPEG of quality in [lowest, highest)."""
    if rng.random() < 0.5:
        quality = int(rng.integers(lowest, highest))
        return image, "jpg", {"quality": quality}, variant + f" jpeg={quality}"
    return image, "png", {}, variant


def typed(rng, text):
    """`text` (a digit or a letter) typed in a handwriting-like font, dark on a light page, a
    little tilted."""
    font_path = FONTS[int(rng.integers(len(FONTS)))]
    size = int(rng.integers(48, 161))
    font = ImageFont.truetype(font_path, size)
    glyph = Image.new("L", (3 * size, 3 * size), 0)
    ImageDraw.Draw(glyph).text((size, size // 2), str(text), font=font, fill=255)
    glyph = glyph.rotate(rng.uniform(-6, 6), Image.BICUBIC)
    ink = np.asarray(glyph, np.float32) / 255
    top, left, bottom, right = ink_bbox(ink, 0.05)
    ink = ink[top:bottom, left:right]
    height = int(ink.shape[0] + rng.integers(30, 200))
    width = int(ink.shape[1] + rng.integers(30, 200))
    coverage = place(rng, ink, height, width, margin=10)[..., None]
    paper = rng.uniform(225, 255)
    colour = np.array(rng.choice([(0, 0, 0), (20, 40, 150), (60, 60, 60)]))
    page = paper * (1 - coverage) + colour * coverage
    image = to_image(page)
    return half_jpeg(rng, image, f"font={Path(font_path).stem} size={size}", 75, 96)


def typed_letter(rng, letter):
    """`letter` as `typed` draws it, its variant naming the letter."""
    image, ext, options, variant = typed(rng, letter)
    return image, ext, options, f"letter={letter} {variant}"


def thick_thin(rng, digit):
    """The digit redrawn with a very thick marker (a quarter to a third of its height) or a very
    thin pen (1.5 to 3 px), dark on white."""
    thick = rng.random() < 0.5
    share, width = rng.uniform(0.22, 0.32), rng.uniform(1.5, 3.0)
    alpha, variant = pen_strokes(rng, digit, pen_width=lambda height: share * height if thick else width)
    pixels = 250 * (1 - alpha[..., None]) + 10 * alpha[..., None]
    return to_image(np.repeat(pixels, 3, axis=2)), "png", {}, f"{'marker' if thick else 'fine-pen'} {variant}"


def boxed(rng, digit):
    """A form: the digit written in a printed box, or on a printed line under it."""
    top, _, bottom, _ = ink_bbox(digit, 127)
    digit_height = rng.uniform(50, 140)
    ink = upscaled_ink(digit, digit_height / (bottom - top), rng.uniform(-4, 4))
    pad_y, pad_x = rng.uniform(0.1, 0.4, size=2) * digit_height
    box_height, box_width = int(ink.shape[0] + 2 * pad_y), int(ink.shape[1] + 2 * pad_x)
    height, width = box_height + int(rng.integers(40, 200)), box_width + int(rng.integers(40, 200))
    box_top = int(rng.integers(15, height - box_height - 15))
    box_left = int(rng.integers(15, width - box_width - 15))
    coverage = np.zeros((height, width), np.float32)
    ink_top, ink_left = box_top + int(pad_y), box_left + int(pad_x)
    coverage[ink_top:ink_top + ink.shape[0], ink_left:ink_left + ink.shape[1]] = ink
    lines = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(lines)
    line_width = int(rng.integers(1, 5))
    line_shade = int(rng.integers(120, 256))
    kind = "box" if rng.random() < 0.6 else "underline"
    if kind == "box":
        draw.rectangle([box_left, box_top, box_left + box_width, box_top + box_height], outline=line_shade, width=line_width)
    else:
        y = box_top + box_height
        draw.line([(box_left - 10, y), (box_left + box_width + 10, y)], fill=line_shade, width=line_width)
    coverage = np.maximum(coverage * rng.uniform(0.8, 0.95), np.asarray(lines, np.float32) / 255)
    paper = rng.uniform(240, 255)
    page = paper * (1 - coverage) + 20 * coverage
    page += rng.normal(0, rng.uniform(1, 3), page.shape)
    image = to_image(page)
    return half_jpeg(rng, image, f"{kind} line={line_width} shade={line_shade} digit-height={digit_height:.0f}", 80, 96)


def perspective(rng, digit):
    """A paper photo taken at a slant: the page seen smaller at each corner by up to a sixth of
    its size, the margin it leaves filled with more of the same paper (its edge pixels)."""
    image, ext, options, variant = paper_photo(rng, digit)
    # A photo stored turned keeps its EXIF tag: the warp of the stored picture is a warp of the
    # seen one too.
    width, height = image.size
    pad = int(np.ceil(max(width, height) / 6))
    padded = Image.fromarray(np.pad(np.asarray(image), ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
    moved = rng.uniform(0, 1 / 6, size=(4, 2)) * [width, height]
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
    # Each output corner looks further out than the page's corner: the page shrinks there.
    source = corners + pad + moved * [[-1, -1], [1, -1], [1, 1], [-1, 1]]
    # PIL maps each output pixel to ((a x + b y + c) / (g x + h y + 1), (d x + e y + f) / (…)):
    # solve for the 8 numbers that send the output's corners to the source corners.
    rows = []
    for (x, y), (u, v) in zip(corners, source):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    coefficients = np.linalg.solve(np.array(rows), source.reshape(-1))
    image = padded.transform((width, height), Image.PERSPECTIVE, tuple(coefficients), Image.BICUBIC)
    slant = (moved / [width, height]).max()
    return image, ext, options, f"{variant} slant={slant:.2f}"


RENDERERS = {"paper-photo": paper_photo, "scan": scan, "canvas-transparent": canvas_transparent,
             "canvas-white": canvas_white, "canvas-dark": canvas_dark, "low-res": low_res,
             "thick-thin": thick_thin, "boxed": boxed, "perspective": perspective}


def write_set(out, name, items):
    """Saves (index, label, image, ext, options, variant) items as DIR/<name>/ with labels.csv."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "labels.csv", "w", newline="") as listing:
        rows = csv.writer(listing)
        rows.writerow(["file", "label", "mnist_index", "variant"])
        for index, label, image, ext, options, variant in items:
            file = f"{index}-{label}.{ext}"
            image.save(folder / file, **options)
            rows.writerow([file, label, index, variant])


def contact_sheet(folder, path, count=8, height=128):
    """The first `count` images of a set, upright as their EXIF says, in two rows with labels.

    Transparent images are shown over a light checkerboard, as an image viewer would."""
    with open(folder / "labels.csv", newline="") as listing:
        rows = list(csv.DictReader(listing))[:count]
    tiles = []
    for row in rows:
        image = ImageOps.exif_transpose(Image.open(folder / row["file"]))
        image = image.resize((max(1, round(image.width * height / image.height)), height), Image.LANCZOS
                             if image.height > height else Image.NEAREST)
        if image.mode == "RGBA":
            squares = np.add.outer(np.arange(image.height) // 8, np.arange(image.width) // 8) % 2 == 1
            board = Image.fromarray(np.where(squares, 205, 235).astype(np.uint8)).convert("RGBA")
            image = Image.alpha_composite(board, image)
        tiles.append((image.convert("RGB"), row["label"]))
    per_row, gap, caption = (count + 1) // 2, 8, 14
    rows_of_tiles = [tiles[:per_row], tiles[per_row:]]
    sheet_width = max(sum(tile.width + gap for tile, _ in row) for row in rows_of_tiles) + gap
    sheet = Image.new("RGB", (sheet_width, 2 * (height + caption + gap) + gap), (128, 128, 128))
    draw = ImageDraw.Draw(sheet)
    for row_number, row in enumerate(rows_of_tiles):
        x, y = gap, gap + row_number * (height + caption + gap)
        for tile, label in row:
            sheet.paste(tile, (x, y))
            draw.text((x, y + height + 2), f"label {label}", fill=(255, 255, 255))
            x += tile.width + gap
    sheet.save(path, optimize=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="random seed: same seed, same sets")
    parser.add_argument("--count", type=int, default=1000, help="images per realistic set")
    parser.add_argument("--out", type=Path, default=Path("bench/results/preprocess/sets"))
    parser.add_argument("--mnist", type=Path, default=Path("data/mnist"), help="raw MNIST IDX files")
    parser.add_argument("--fashion-mnist", type=Path, default=Path("/usr/share/datasets/fashion-mnist"),
                        help="Fashion-MNIST's IDX files, raw or gzipped")
    parser.add_argument("--examples", type=Path, help="also write a contact sheet per set here")
    args = parser.parse_args()

    images, labels = read_test_split(args.mnist)
    write_set(args.out, "mnist-test", ((index, label, Image.fromarray(image), "png", {}, "original")
                                        for index, (image, label) in enumerate(zip(images, labels))))
    for number, (name, render) in enumerate(RENDERERS.items()):
        rng = np.random.default_rng([args.seed, number])
        picked = balanced_draw(rng, labels, args.count)
        write_set(args.out, name, ((index, labels[index], *render(rng, images[index])) for index in picked))
        print(f"{name}: {len(picked)} images in {args.out / name}")
    # Typed digits come from the fonts, not from MNIST: their index is their number in the set.
    rng = np.random.default_rng([args.seed, len(RENDERERS)])
    labels_typed = rng.permutation(np.arange(args.count) % 10)
    write_set(args.out, "fonts", ((index, label, *typed(rng, label)) for index, label in enumerate(labels_typed)))
    print(f"fonts: {args.count} images in {args.out / 'fonts'}")
    # Out of domain: every Fashion-MNIST test image as it is, and letters typed like the fonts set.
    clothes, _ = read_test_split(args.fashion_mnist)
    write_set(args.out, "fashion-test", ((index, NOT_A_DIGIT, Image.fromarray(image), "png", {}, "original")
                                          for index, image in enumerate(clothes)))
    rng = np.random.default_rng([args.seed, len(RENDERERS) + 1])
    letters = [LETTERS[int(rng.integers(len(LETTERS)))] for _ in range(args.count)]
    write_set(args.out, "letters", ((index, NOT_A_DIGIT, *typed_letter(rng, letter)) for index, letter in enumerate(letters)))
    print(f"fashion-test, letters: {len(clothes)} and {args.count} images")
    if args.examples:
        args.examples.mkdir(parents=True, exist_ok=True)
        for name in ["mnist-test", *RENDERERS, "fonts", "fashion-test", "letters"]:
            contact_sheet(args.out / name, args.examples / f"{name}.png")


if __name__ == "__main__":
    main()
