# The two set-up commands: `make run` serves the default model on port 5000, `make test` runs
# every test. Both first make sure libtorch is there (a project-local venv from PyPI).

.PHONY: run test train data samples libtorch test-tools

# Serve the verified pretrained model on http://0.0.0.0:5000 (Swagger UI at /).
run: libtorch
	cargo run --release

# Every test of the workspace (release profile, shared with `make run`; there are no doc tests).
test: libtorch test-tools
	cargo test --release --workspace --lib --bins --tests

# Retrain with the default recipe and republish pretrained-model/ and sha512sums.txt.
train: libtorch data
	cargo run --release --bin train

# MNIST's four raw IDX files into data/mnist, checked against their SHA-256.
data:
	scripts/fetch-mnist.sh data/mnist

# Regenerate samples/ from the MNIST test set (needs Pillow in the venv).
samples: libtorch data
	.venv/bin/python -m pip install --quiet pillow
	.venv/bin/python scripts/make_samples.py

libtorch:
	scripts/setup-libtorch.sh

# Tools the tests call: Python ones (TensorBoard's reader), pinned in scripts/requirements-test.txt,
# and Debian's chromium and chromium-driver for the `/app` browser test (apt, when missing).
test-tools: libtorch
	scripts/setup-test-tools.sh
