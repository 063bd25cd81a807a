#!/usr/bin/env bash
# Convert every chapter listed in _toc.yml to a notebook and execute it under nbval.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" MPLBACKEND=agg
out=_build/nbval
rm -rf "$out" && mkdir -p "$out"
chapters=$(python tools/toc_chapters.py)
for chapter in $chapters; do
  jupytext --quiet --to ipynb -o "$out/$(basename "${chapter%.md}").ipynb" "$chapter"
done
# Notebooks run from a copy of book/ so that relative paths in the chapters still work.
cp -r book/. "$out/" 2>/dev/null || true
find "$out" -name '*.md' -delete
cd "$out"
python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider --durations=0 -q *.ipynb
