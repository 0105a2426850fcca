# max-mnist in a container:
#   docker build -t max-mnist .
#   docker run -p 5000:5000 max-mnist
# It serves the committed models (mnist, fashion-mnist); other models by configuration:
#   docker run -p 5000:5000 -e MODELS=digits=https://example.org/buckets/digits max-mnist
# The build runs the same commands as CI and `make run` (scripts/setup-libtorch.sh, cargo).

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/max-mnist
COPY . .
RUN make libtorch && cargo build --release --locked --bin max-mnist --bin healthcheck

# The committed buckets are pinned by sha512sums.txt: a changed archive or checksums file
# fails the build. The server verifies every model against its bucket again at start-up.
RUN sha512sum -c sha512sums.txt

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
# The committed buckets, owned by root and read-only for the service user; each model is
# verified and unpacked into assets/<name>/ at start-up.
COPY --from=build /opt/max-mnist/pretrained-model pretrained-model
RUN mkdir assets && chown max-mnist assets
USER max-mnist
EXPOSE 5000
ENV HOST=0.0.0.0 PORT=5000
# `docker ps` shows healthy once every model is verified and warmed up, unhealthy
# while draining. The image has no curl: a std-only binary asks /health/ready (src/bin/healthcheck.rs).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["max-mnist-healthcheck"]
ENTRYPOINT ["max-mnist"]
