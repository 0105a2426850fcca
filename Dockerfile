# max-mnist in a container:
#   docker build -t max-mnist .
#   docker run -p 5000:5000 max-mnist
# Another bucket: docker build --build-arg model_bucket=https://example.org/models -t max-mnist .
# The build runs the same commands as CI and `make run` (scripts/setup-libtorch.sh, cargo).

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/max-mnist
COPY . .
RUN make libtorch && cargo build --release --locked --bin max-mnist --bin healthcheck

# Fetch the weights from the bucket and verify them, MAX style. Unverified files fail the build.
ARG model_bucket=pretrained-model
ARG model_file=mnist-classifier.tar.gz
# Only the files listed in sha512sums.txt are kept, so nothing unlisted reaches the image.
RUN set -eu; mkdir -p assets /tmp/unpacked; \
    case "$model_bucket" in \
      http://*|https://*) curl -fsSL --retry 3 -o /tmp/model.tar.gz "$model_bucket/$model_file" ;; \
      *) cp "$model_bucket/$model_file" /tmp/model.tar.gz ;; \
    esac; \
    tar -xzf /tmp/model.tar.gz -C /tmp/unpacked --no-same-owner --no-same-permissions; \
    awk '{print $2}' sha512sums.txt | while read -r listed; do \
      install -m 0644 "/tmp/unpacked/${listed#assets/}" "$listed"; \
    done; \
    sha512sum -c sha512sums.txt; \
    rm -rf /tmp/model.tar.gz /tmp/unpacked

FROM debian:bookworm-slim
# The binary's rpath names /opt/max-mnist/.libtorch/lib: put libtorch (and the CUDA runtime
# libraries it links, found through its own $ORIGIN rpath) at the same paths.
ARG site=/opt/max-mnist/.venv/lib/python3.11/site-packages
COPY --from=build ${site}/torch/lib ${site}/torch/lib
COPY --from=build ${site}/nvidia ${site}/nvidia
RUN ln -s ${site}/torch /opt/max-mnist/.libtorch \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin max-mnist
WORKDIR /opt/max-mnist
COPY --from=build /opt/max-mnist/target/release/max-mnist /usr/local/bin/max-mnist
COPY --from=build /opt/max-mnist/target/release/healthcheck /usr/local/bin/max-mnist-healthcheck
# Verified weights and their checksums, owned by root and read-only for the service user.
COPY --from=build /opt/max-mnist/assets assets
COPY --from=build /opt/max-mnist/sha512sums.txt sha512sums.txt
USER max-mnist
EXPOSE 5000
ENV HOST=0.0.0.0 PORT=5000
# `docker ps` shows healthy once the weights are verified and the model warmed up, unhealthy
# while draining. The image has no curl: a std-only binary asks /health/ready (src/bin/healthcheck.rs).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["max-mnist-healthcheck"]
ENTRYPOINT ["max-mnist"]
