#!/usr/bin/env bash
# The full test suite: ruff lint and format check, package tests, then every chapter executed as a
# notebook under nbval.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check . && ruff format --check .   # settings in pyproject.toml
MPLBACKEND=agg python -m pytest tests --durations=10 "$@"
bash tools/nbval.sh
