# The two set-up commands: `make run` serves the default models on port 5000, `make test` runs
# every test. Both first make sure libtorch is there (a project-local venv from PyPI).

.PHONY: image image-test run test train train-fashion checksums data fashion-data letter-fonts samples libtorch build-tools test-tools

# Serve the verified committed models, mnist (the default) and fashion-mnist, on
# http://0.0.0.0:5000 (Swagger UI at /).
run: libtorch build-tools
	cargo run --release

# Every test of the workspace (release profile, shared with `make run`; there are no doc tests).
test: libtorch build-tools test-tools
	cargo test --release --workspace --lib --bins --tests

# Retrain MNIST with the default recipe and republish pretrained-model/mnist/.
train: libtorch build-tools data fashion-data letter-fonts
	cargo run --release --bin train
	$(MAKE) checksums

# Retrain Fashion-MNIST and republish pretrained-model/fashion-mnist/ (the committed export is
# seed 3's).
train-fashion: libtorch build-tools data fashion-data letter-fonts
	cargo run --release --bin train -- --dataset fashion-mnist --seed 3
	$(MAKE) checksums

# sha512sums.txt pins every file of the committed buckets (`sha512sum -c sha512sums.txt`).
checksums:
	sha512sum pretrained-model/*/* > sha512sums.txt

# MNIST's four raw IDX files into data/mnist, checked against their SHA-256.
data:
	scripts/fetch-mnist.sh data/mnist

# Fashion-MNIST's four gzipped IDX files, from Debian's package (apt, when missing).
fashion-data:
	[ -d /usr/share/datasets/fashion-mnist ] || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)

# The fonts the outlier letters are typed in (training/src/letters.rs): other
# packages than those of bench/preprocess's evaluation letters (apt, when one is missing).
LETTER_FONT_PACKAGES = fonts-breip fonts-bwht fonts-femkeklaver fonts-sjfonts fonts-yusei-magic fonts-dejavu-core fonts-liberation
letter-fonts:
	dpkg -s $(LETTER_FONT_PACKAGES) >/dev/null 2>&1 \
		|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(LETTER_FONT_PACKAGES))

# Regenerate samples/ from the MNIST and Fashion-MNIST test sets (needs Pillow in the venv).
samples: libtorch data fashion-data
	.venv/bin/python -m pip install --quiet pillow
	.venv/bin/python scripts/make_samples.py

libtorch:
	scripts/setup-libtorch.sh

# nasm, for the SIMD code of the libjpeg-turbo that the `mozjpeg` crate builds (apt, when
# missing). Without it the build still succeeds, in plain C, and large JPEGs decode slower.
build-tools:
	command -v nasm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nasm)

# The container image, built from the Dockerfile as `docker build -t max-mnist .` builds it, with
# Debian's podman (no Docker engine here). When no registry has the base images the Dockerfile
# names, scripts/base-images.sh makes them first (debootstrap, and this machine's Rust).
# Rootful podman: run as root. Debian's packages are installed when one is missing.
image:
	command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null \
		|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc uidmap debootstrap)
	scripts/base-images.sh
	podman build --format docker -t max-mnist .

# The image run as the README says: samples, health check, non-root, read-only, SIGTERM, two
# containers behind Debian's nginx restarted one at a time, a tampered model_bucket.
image-test: image
	command -v nginx >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light)
	scripts/image-test.sh

# Tools the tests call: Python ones (TensorBoard's reader), pinned in scripts/requirements-test.txt,
# and Debian's chromium and chromium-driver for the `/app` browser test and dataset-fashion-mnist
# and the letter fonts for the training tests (apt, when missing).
test-tools: libtorch letter-fonts
	scripts/setup-test-tools.sh
