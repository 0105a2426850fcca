# max-mnist in a container:
#   docker build -t max-mnist .
#   docker run -p 5000:5000 max-mnist
# A CUDA variant (all of libtorch's CUDA libraries, about 3.6 GB more):
#   docker build --build-arg accelerator=cuda -t max-mnist:cuda .
# It serves the committed models (mnist, fashion-mnist); other models by configuration:
#   docker run -p 5000:5000 -e MODELS=digits=https://example.org/buckets/digits max-mnist
# The build runs the same commands as CI and `make run` (scripts/setup-libtorch.sh, cargo).

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv nasm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/max-mnist
COPY . .

# Build, then keep under /opt/runtime, at the paths the binaries expect, only what the runtime
# stage takes: the two binaries without their debug info, and the libtorch libraries at the
# paths the server's rpath names. With accelerator=cpu (the default) these are only the
# libraries the server loads (libtorch_cpu, c10, gomp and the two CUDA runtime libraries
# libtorch_cpu links), as ldd lists them; with accelerator=cuda, all of torch/lib and nvidia/
# (about 3.6 GB more), for a GPU. The venv (torch from PyPI, 4.7 GB), target/, cargo's registry
# and pip's cache live in build caches rather than in a layer, so the build needs about 10 GB
# less disk and a second variant reuses the first one's build.
ARG accelerator=cpu
ARG site=/opt/max-mnist/.venv/lib/python3.11/site-packages
RUN --mount=type=cache,target=/opt/max-mnist/.venv \
    --mount=type=cache,target=/opt/max-mnist/target \
    --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/root/.cache/pip \
    make libtorch && cargo build --release --locked --bin max-mnist --bin healthcheck \
    && mkdir -p /opt/runtime/usr/local/bin \
    && strip --strip-debug -o /opt/runtime/usr/local/bin/max-mnist target/release/max-mnist \
    && strip --strip-debug -o /opt/runtime/usr/local/bin/max-mnist-healthcheck target/release/healthcheck \
    && case "$accelerator" in \
        cpu) ldd target/release/max-mnist | awk '$3 ~ /^\/opt\/max-mnist\// {print $3}' | xargs realpath \
                 | xargs cp --parents -t /opt/runtime ;; \
        cuda) mkdir -p /opt/runtime${site}/torch && cp -a ${site}/torch/lib /opt/runtime${site}/torch/ \
                 && cp -a ${site}/nvidia /opt/runtime${site}/ ;; \
        *) echo "accelerator must be cpu or cuda, not $accelerator" >&2; exit 1 ;; \
    esac

# The buckets are pinned by sha512sums.txt: a changed archive or checksums file fails the
# build. As in MAX's images, `--build-arg model_bucket=URL` fetches them from URL/<model>/
# (every file sha512sums.txt names under pretrained-model/) instead of taking the committed
# copies; they are checked all the same. The server verifies every model against its bucket
# again at start-up.
ARG model_bucket=
RUN if [ -n "$model_bucket" ]; then \
        for path in $(awk '{print $2}' sha512sums.txt); do \
            curl --fail --silent --show-error --location --proto '=http,https' \
                --max-filesize 1073741824 --output "$path" "${model_bucket%/}/${path#pretrained-model/}" \
                || exit 1; \
        done; \
    fi \
    && sha512sum -c sha512sums.txt

FROM debian:bookworm-slim
ARG site=/opt/max-mnist/.venv/lib/python3.11/site-packages
COPY --from=build /opt/runtime/ /
RUN ln -s ${site}/torch /opt/max-mnist/.libtorch \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin max-mnist
WORKDIR /opt/max-mnist
# The committed buckets, owned by root and read-only for the service user; each model is
# verified and unpacked into assets/<name>/ at start-up.
COPY --from=build /opt/max-mnist/pretrained-model pretrained-model
RUN mkdir assets && chown max-mnist assets
# The one folder the server writes. As a volume it stays writable under `docker run --read-only`.
VOLUME /opt/max-mnist/assets
USER max-mnist
EXPOSE 5000
ENV HOST=0.0.0.0 PORT=5000
# `docker ps` shows healthy once every model is verified and warmed up, unhealthy
# while draining. The image has no curl: a std-only binary asks /health/ready (src/bin/healthcheck.rs).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["max-mnist-healthcheck"]
ENTRYPOINT ["max-mnist"]
