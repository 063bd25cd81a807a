#!/usr/bin/env bash
# Execute one chapter as a notebook, the way a reader (and nbval) runs it, and report its time.
# Usage: bash tools/run_chapter.sh book/contrastive.md [output-dir]
set -euo pipefail
chapter="$1"
out="${2:-/tmp/chapters}"
mkdir -p "$out"
name="$(basename "${chapter%.md}")"
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
start=$(date +%s%N)
(cd "$(dirname "$chapter")" && MPLBACKEND=agg "$python" -m jupytext --to ipynb --execute -o "$out/$name.ipynb" "$(basename "$chapter")")
echo "$chapter executed in $(( ($(date +%s%N) - start) / 1000000 )) ms -> $out/$name.ipynb"
