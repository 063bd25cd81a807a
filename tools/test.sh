#!/usr/bin/env bash
# The full test suite: ruff lint and format check, package tests, then every chapter executed as a
# notebook under nbval.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export PATH="$PWD/.venv/bin:$PATH" MPLBACKEND=agg
ruff check . && ruff format --check .   # settings in pyproject.toml
python -m pytest tests --durations=10 "$@"
bash tools/nbval.sh
