"""Writes samples/: MNIST test digits as the images users send.

Run from the repository root after `make data`, with Pillow installed:
    .venv/bin/pip install pillow && .venv/bin/python scripts/make_samples.py

- digit-0.png … digit-9.png: the first test image of each digit, 28x28 grayscale, as in MNIST;
- digit-7.jpg: the second test 7, scaled to 112x112, as a JPEG;
- digit-3-rgb.png: the second test 3 drawn in yellow ink, as RGB;
- digit-5-rgba.png: the second test 5 as white ink whose alpha is the stroke, as RGBA.
"""
from pathlib import Path

from PIL import Image

DATA = Path("data/mnist")
SAMPLES = Path("samples")


def read_idx(name, header_len):
    return (DATA / name).read_bytes()[header_len:]


def main():
    pixels = read_idx("t10k-images-idx3-ubyte", 16)
    labels = read_idx("t10k-labels-idx1-ubyte", 8)
    seen = {}
    for index, label in enumerate(labels):
        seen.setdefault(label, []).append(index)

    def digit(label, occurrence):
        start = seen[label][occurrence] * 784
        return Image.frombytes("L", (28, 28), pixels[start:start + 784])

    SAMPLES.mkdir(exist_ok=True)
    for label in range(10):
        digit(label, 0).save(SAMPLES / f"digit-{label}.png")
    digit(7, 1).resize((112, 112), Image.BILINEAR).save(SAMPLES / "digit-7.jpg", quality=90)
    three = digit(3, 1)
    Image.merge("RGB", (three, three.point(lambda v: v * 220 // 255), three.point(lambda v: 0))).save(
        SAMPLES / "digit-3-rgb.png")
    five = digit(5, 1)
    white = Image.new("L", five.size, 255)
    Image.merge("RGBA", (white, white, white, five)).save(SAMPLES / "digit-5-rgba.png")


if __name__ == "__main__":
    main()
