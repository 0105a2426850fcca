"""Phone photos at phone-camera sizes: MNIST test digits written in ink on paper and
photographed at 12 MP (4032×3024, as most phones) and 48 MP (8000×6000).

As make_eval_sets.py's paper photos (same ink colours, paper texture, shadow and tilt), but at
full size, with sensor noise at every pixel and JPEG quality 95, so that files weigh what
phones' do (about 3.5 MB at 12 MP, 13 MB at 48 MP). A quarter are stored sideways with an
EXIF orientation tag. Writes DIR/<mp>mp/<index>-<label>.jpg and DIR/<mp>mp/labels.csv.

Usage: make_photos.py [--seed 1] [--count 20] [--out DIR] [--mnist data/mnist]
"""
import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "preprocess"))
from make_eval_sets import (PEN_INKS, balanced_draw, lighting, maybe_sideways, place, read_test_split,  # noqa: E402
                            smooth_noise, to_image, upscaled_ink)

SIZES = {12: (4032, 3024), 48: (8000, 6000)}


def phone_photo(rng, digit, width, height):
    """A landscape phone photo of `digit` in ink on paper, and how it was made."""
    short = min(width, height)
    scale = rng.uniform(0.25, 0.5) * short / 28
    ink_name = rng.choice(list(PEN_INKS))
    ink = upscaled_ink(digit, scale, rng.uniform(-10, 10))
    ink = gaussian_filter(ink, 0.1 * scale)
    coverage = place(rng, ink, height, width, margin=round(0.05 * short))[..., None]
    paper = np.array([rng.uniform(215, 245)] * 3, np.float32) - [0, 0, rng.uniform(0, 12)]
    texture = rng.uniform(3, 8) * smooth_noise(rng, height, width, cells=rng.integers(4, 10))
    page = (paper + texture[..., None]) * (1 - coverage) + np.array(PEN_INKS[ink_name], np.float32) * coverage
    shadow, shadow_name = lighting(rng, height, width)
    page *= shadow[..., None]
    page += rng.standard_normal(page.shape, dtype=np.float32) * np.float32(rng.uniform(4, 5))
    image = to_image(page)
    options = {"quality": 95}
    image, sideways = maybe_sideways(rng, image, options)
    return image, options, f"ink={ink_name} scale={scale:.0f} {shadow_name}{sideways}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results/photos/sets"))
    parser.add_argument("--mnist", type=Path, default=Path("data/mnist"))
    args = parser.parse_args()
    images, labels = read_test_split(args.mnist)
    for megapixels, (width, height) in SIZES.items():
        rng = np.random.default_rng([args.seed, megapixels])
        folder = args.out / f"{megapixels}mp"
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for index in balanced_draw(rng, labels, args.count):
            image, options, variant = phone_photo(rng, images[index], width, height)
            name = f"{index}-{labels[index]}.jpg"
            image.save(folder / name, **options)
            rows.append((name, int(labels[index]), int(index), variant))
        with open(folder / "labels.csv", "w", newline="") as file:
            csv.writer(file).writerows([("file", "label", "mnist_index", "variant"), *rows])


if __name__ == "__main__":
    main()
