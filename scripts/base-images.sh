#!/usr/bin/env bash
# The base images the Dockerfile names, made locally when no registry is reachable (these
# machines reach Debian's archive but not Docker Hub), so that `docker build` (podman here)
# runs the Dockerfile unchanged:
#   docker.io/library/debian:bookworm-slim  debootstrap --variant=minbase from apt's mirror;
#   docker.io/library/rust:1.95-bookworm    that image with build tools and the Rust toolchain
#                                           this machine's rustc runs from.
# The Rust image also trusts the certificate authorities this machine adds for its registry
# proxy (/usr/local/share/ca-certificates), as the host's pip and cargo do, so that the build
# stage can fetch torch and crates. Also makes rootful podman usable here: runc as the
# runtime, ulimits within the hard limits. An image already present is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
debian=docker.io/library/debian:bookworm-slim
rust=docker.io/library/rust:1.95-bookworm

if ! grep -qs '^runtime = "runc"' /etc/containers/containers.conf; then
    hard=$(ulimit -Hn)
    mkdir -p /etc/containers
    cat >/etc/containers/containers.conf <<CONF
[containers]
default_ulimits = ["nofile=$hard:$hard", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
fi

if ! podman image exists "$debian"; then
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    echo "base-images: debootstrap bookworm from ${mirror:-deb.debian.org} (about a minute)" >&2
    debootstrap --variant=minbase bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >/dev/null
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$debian" >/dev/null
fi

if ! podman image exists "$rust"; then
    # The toolchain rustc runs from (a rustup toolchain or a plain install): its bin/ holds
    # cargo and rustc themselves, so the image needs no rustup.
    sysroot=$(rustc --print sysroot)
    context=$(mktemp -d)
    trap 'rm -rf "$context"' EXIT
    cp -a "$sysroot" "$context/rust"
    mkdir -p "$context/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$context/ca-certificates/" 2>/dev/null || true
    cat >"$context/Containerfile" <<FILE
FROM $debian
RUN apt-get update && apt-get install -y --no-install-recommends build-essential ca-certificates curl git \\
        make pkg-config python3 && rm -rf /var/lib/apt/lists/*
COPY ca-certificates /usr/local/share/ca-certificates
RUN update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
COPY rust /usr/local/rust
ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/rust/bin:\$PATH
RUN cargo --version && rustc --version
FILE
    echo "base-images: $rust from this machine's $(rustc --version)" >&2
    podman build -q -t "$rust" "$context" >/dev/null
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'debian|rust' >&2
