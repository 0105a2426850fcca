#!/usr/bin/env bash
# libtorch for tch, from PyPI: makes the project-local venv .venv with torch==2.13.0 (the
# exact version tch 0.26 requires) when it is missing or holds another version, and points
# the symlink .libtorch at the venv's `torch` package. .cargo/config.toml sets LIBTORCH to
# .libtorch, so plain `cargo build`, `cargo run` and `cargo test` need no variable set by hand.
# Re-running with a good venv does nothing but refresh the link.
set -euo pipefail

torch_version="2.13.0"
venv="${VENV:-.venv}"
python="${PYTHON:-python3}"

has_torch() {
    "$venv/bin/python" - "$torch_version" 2>/dev/null <<'PY'
import sys, importlib.metadata as metadata
sys.exit(0 if metadata.version("torch") == sys.argv[1] else 1)
PY
}

if ! has_torch; then
    echo "Installing torch==$torch_version into $venv (about 70 s and 4.7 GB, once)"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check "torch==$torch_version"
fi

torch_dir=$("$venv/bin/python" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("torch").origin))')
ln -sfn "$torch_dir" .libtorch
echo "libtorch: .libtorch -> $torch_dir"
