#!/usr/bin/env bash
# The Python tools the tests call, pinned in scripts/requirements-test.txt, into the project's
# venv (made by scripts/setup-libtorch.sh). pip skips what is already installed.
set -euo pipefail
venv="${VENV:-.venv}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
