#!/usr/bin/env python3
"""The plain-PyTorch twin of `train` for the training-speed benchmark (bench/train.sh).

Same network (cnn-bn-8-16-32: three conv3x3+BN+ReLU+maxpool blocks, fc 128, dropout 0.3),
same batch size, optimiser (AdamW), warm-up + cosine schedule, augmentation (random affine
via affine_grid + grid_sample), validation split and thread count; the data is already in
memory as tensors, with no DataLoader. Prints one line per epoch:
    epoch N: ... S s, R img/s
in the same form as the train bin, timing the training steps only (validation excluded).

Usage: train_pytorch.py DATA_DIR EPOCHS THREADS [BATCH_SIZE]
"""

import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    raw = open(path, "rb").read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(raw[4 + 4 * dims :]), dtype=torch.uint8).reshape(shape)


def network():
    layers, channels = [], 1
    for out in (8, 16, 32):
        layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
        channels = out
    layers += [nn.Flatten(), nn.Linear(channels * 9, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10)]
    return nn.Sequential(*layers)


def augment(images, rotation=12.0, scale=0.1, shift=0.075):
    n = images.shape[0]
    uniform = lambda r: (torch.rand(n) * 2 - 1) * r
    angle, size = uniform(math.radians(rotation)), uniform(scale) + 1
    tx, ty = uniform(2 * shift), uniform(2 * shift)
    cos, sin = angle.cos() * size, angle.sin() * size
    theta = torch.stack([cos, -sin, tx, sin, cos, ty], 1).view(n, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def main():
    data_dir, epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    batch_size = int(sys.argv[4]) if len(sys.argv) > 4 else 128
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    images = read_idx(f"{data_dir}/train-images-idx3-ubyte").float().div(255).unsqueeze(1)
    labels = read_idx(f"{data_dir}/train-labels-idx1-ubyte").long()
    order = torch.randperm(len(labels))
    held_back = round(len(labels) * 0.1)
    validation, training = order[:held_back], order[held_back:]
    train_x, train_y = images[training], labels[training]
    val_x, val_y = images[validation], labels[validation]
    normalise = lambda x: (x - 0.1307) / 0.3081

    model = network()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.999), weight_decay=1e-4)
    count = len(train_y)
    steps = math.ceil(count / batch_size)
    total, step = steps * epochs, 0
    for epoch in range(1, epochs + 1):
        model.train()
        started = time.perf_counter()
        permutation = torch.randperm(count)
        for batch in range(steps):
            index = permutation[batch * batch_size : (batch + 1) * batch_size]
            inputs = normalise(augment(train_x[index]))
            lr = 3e-3 * (step + 1) / steps if step < steps else 3e-3 * 0.5 * (1 + math.cos(math.pi * (step - steps) / max(total - steps, 1)))
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = F.cross_entropy(model(inputs), train_y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()
            step += 1
        seconds = time.perf_counter() - started
        model.eval()
        with torch.no_grad():
            val_loss = F.cross_entropy(model(normalise(val_x)), val_y).item()
        print(f"epoch {epoch}: validation loss {val_loss:.4f}, {seconds:.1f} s, {count / seconds:.0f} img/s", flush=True)


if __name__ == "__main__":
    main()
