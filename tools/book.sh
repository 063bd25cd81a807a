#!/usr/bin/env bash
# Build the executed book into _build/html. Any cell error or Sphinx warning fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
rm -rf _build/.doctrees _build/html
jupyter-book build . --all -W -n --keep-going
echo "book built: $PWD/_build/html/index.html"
