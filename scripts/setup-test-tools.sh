#!/usr/bin/env bash
# The tools the tests call: the Python ones pinned in scripts/requirements-test.txt, into the
# project's venv (made by scripts/setup-libtorch.sh; pip skips what is already installed), and
# Debian's chromium and chromium-driver for the `/app` browser test (apt, only when missing).
set -euo pipefail
venv="${VENV:-.venv}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt

if [ ! -x /usr/bin/chromedriver ] || [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null; then
        as_root=(sudo)
    else
        echo "setup-test-tools: the browser test needs Debian's chromium and chromium-driver;" >&2
        echo "install them as root: apt-get install chromium chromium-driver" >&2
        exit 1
    fi
    echo "setup-test-tools: installing chromium and chromium-driver (apt)" >&2
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
