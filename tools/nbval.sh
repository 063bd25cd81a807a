#!/usr/bin/env bash
# Execute every chapter of _toc.yml as a notebook under nbval, twice over:
#  1. lax:    each chapter converted afresh with jupytext and executed; any cell error fails.
#  2. strict: the notebooks the book build executed (_build/jupyter_execute) are executed again
#             and every output must match the book's, after tools/nbval_sanitize.cfg
#             (cells tagged nbval-ignore-output, e.g. timings, are exempt, and so are the cells
#             that glue values into the prose: see tools/nbval_exempt_glue.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
unset MPLBACKEND  # kernels draw inline, as in the book build, so figure outputs compare
[ -d _build/jupyter_execute/book ] || bash tools/book.sh
sanitize="$PWD/tools/nbval_sanitize.cfg"

lax=_build/nbval/lax
strict=_build/nbval/strict
rm -rf _build/nbval && mkdir -p "$lax" "$strict"
for chapter in $(python tools/toc_chapters.py); do
  name="$(basename "${chapter%.md}")"
  jupytext --quiet --to ipynb -o "$lax/$name.ipynb" "$chapter"
  cp "_build/jupyter_execute/book/$name.ipynb" "$strict/$name.ipynb"
done
python tools/nbval_exempt_glue.py "$strict"/*.ipynb

echo "== nbval-lax: every chapter runs from a fresh jupytext conversion"
(cd "$lax" && python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider --durations=5 -q ./*.ipynb)
echo "== nbval strict: a second execution reproduces the book's outputs"
(cd "$strict" && python -m pytest --nbval --nbval-current-env --nbval-sanitize-with "$sanitize" \
  -p no:cacheprovider --durations=5 -q ./*.ipynb)
