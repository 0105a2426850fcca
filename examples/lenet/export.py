#!/usr/bin/env python3
"""Export the course's LeNet as TorchScript, the way a user brings a model to max-mnist.

LeNet-5 as the PyTorch course writes it (two 5x5 convolutions with max-pooling, then three
fully connected layers), trained briefly (by default one epoch, Adam, batch 64) on MNIST's
raw IDX files, then traced with `torch.jit.trace` and saved with `.save`: the file
`package` takes. Pixels are normalised as MNIST's usual (mean 0.1307, std 0.3081), which
the package command repeats on the card. Deterministic for a given seed and thread count.

Usage: export.py [--data data/mnist] [--images 60000] [--epochs 1] [--output lenet.pt]
Prints the accuracy on MNIST's 10,000 test images.
"""

import argparse
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.1307, 0.3081


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def read_idx(path):
    raw = Path(path).read_bytes()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(raw[4 + 4 * dims :]), dtype=torch.uint8).reshape(shape)


def images(data, split):
    pixels = read_idx(data / f"{split}-images-idx3-ubyte").float().div(255).unsqueeze(1)
    return (pixels - MEAN) / STD, read_idx(data / f"{split}-labels-idx1-ubyte").long()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/mnist"), help="MNIST's raw IDX files (make data)")
    parser.add_argument("--images", type=int, default=60000, help="training images used")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("lenet.pt"))
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    train_x, train_y = images(args.data, "train")
    train_x, train_y = train_x[: args.images], train_y[: args.images]
    model = LeNet()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(args.epochs):
        model.train()
        for batch in torch.randperm(len(train_y)).split(64):
            optimiser.zero_grad()
            F.cross_entropy(model(train_x[batch]), train_y[batch]).backward()
            optimiser.step()

    model.eval()
    test_x, test_y = images(args.data, "t10k")
    with torch.no_grad():
        accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
    scripted = torch.jit.trace(model, torch.zeros(1, 1, 28, 28))
    scripted.save(str(args.output))
    print(f"test accuracy {accuracy:.4f}; TorchScript saved to {args.output}")


if __name__ == "__main__":
    main()
