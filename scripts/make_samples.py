"""Writes samples/: MNIST test digits as the images users send, and Fashion-MNIST test images.

Run from the repository root after `make data`, with Pillow installed and Debian's
dataset-fashion-mnist package (`make samples` does all three):
    .venv/bin/pip install pillow && .venv/bin/python scripts/make_samples.py

- digit-0.png … digit-9.png: the first test image of each digit, 28x28 grayscale, as in MNIST;
- digit-7.jpg: the second test 7, scaled to 112x112, as a JPEG;
- digit-3-rgb.png: the second test 3 drawn in yellow ink, as RGB;
- digit-5-rgba.png: the second test 5 as white ink whose alpha is the stroke, as RGBA;
- fashion-<class>.png: the first Fashion-MNIST test image of each class, 28x28 grayscale;
- fashion-ankle-boot-rgb.jpg: the first test ankle boot, scaled to 84x84, as an RGB JPEG.
"""
import gzip
from pathlib import Path

from PIL import Image

DATA = Path("data/mnist")
FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["t-shirt-top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle-boot"]
SAMPLES = Path("samples")


def read_idx(path, header_len):
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data[header_len:]


def test_set(directory, suffix=""):
    """The test images' pixels and a picker of the n-th image of a class."""
    pixels = read_idx(directory / f"t10k-images-idx3-ubyte{suffix}", 16)
    labels = read_idx(directory / f"t10k-labels-idx1-ubyte{suffix}", 8)
    seen = {}
    for index, label in enumerate(labels):
        seen.setdefault(label, []).append(index)

    def image(label, occurrence):
        start = seen[label][occurrence] * 784
        return Image.frombytes("L", (28, 28), pixels[start:start + 784])

    return image


def main():
    digit = test_set(DATA)

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

    clothing = test_set(FASHION, ".gz")
    for label, name in enumerate(FASHION_CLASSES):
        clothing(label, 0).save(SAMPLES / f"fashion-{name}.png")
    clothing(9, 0).resize((84, 84), Image.BILINEAR).convert("RGB").save(SAMPLES / "fashion-ankle-boot-rgb.jpg",
                                                                          quality=90)


if __name__ == "__main__":
    main()
