#!/usr/bin/env bash
# Create .venv and install the package with its book and test extras (idempotent).
# torch is pinned and installed first: an unpinned torch resolves to a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
stamp=".venv/.installed-$( (cat pyproject.toml; echo "$TORCH_SPEC") | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
echo "tools/setup.sh: installing $TORCH_SPEC, then this package with its book and test extras, into .venv/" >&2
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
"${pip[@]}" "$TORCH_SPEC" 2>&1 | grep -v "^WARNING: Location" || true
"${pip[@]}" -e ".[book,test]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, tabresnet_course, jupyter_book, nbval" # fail loudly if an install failed
rm -f .venv/.installed-*
touch "$stamp"
