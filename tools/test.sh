#!/usr/bin/env bash
# The full test suite: ruff lint and format check, package tests, then every chapter executed as a
# notebook under nbval. Installs what it needs first: .venv (tools/setup.sh) and the system Chromium
# for the browser check of the site (tools/browser.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
# Empty when a Chromium is ready; otherwise why none can be had, and tests/test_site.py skips the
# browser tests with that reason (never under CI: there tools/browser.sh fails instead).
SITE_CHECK_SKIP="$(bash tools/browser.sh)"
export SITE_CHECK_SKIP
if [ -n "$SITE_CHECK_SKIP" ]; then
  echo "NOTE: $SITE_CHECK_SKIP"
  trap 'echo "NOTE: $SITE_CHECK_SKIP"' EXIT  # the last word, whatever the outcome
fi
export PATH="$PWD/.venv/bin:$PATH"
ruff check . && ruff format --check .   # settings in pyproject.toml
MPLBACKEND=agg python -m pytest tests --durations=10 "$@"
bash tools/nbval.sh
