#!/usr/bin/env bash
# Build the executed book into _build/html. Any cell error or Sphinx warning fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
rm -rf _build/.doctrees _build/html _build/book_config.yml
# Publishing: BOOK_REPOSITORY_URL=https://github.com/<owner>/<repo> (and BOOK_REPOSITORY_BRANCH,
# default main) turns on the repository, issue and launch buttons for that repository. Without
# it the site shows none of them (see _config.yml and tools/book_config.py).
config=_config.yml
if [ -n "${BOOK_REPOSITORY_URL:-}" ]; then
  mkdir -p _build
  config=_build/book_config.yml
  python tools/book_config.py "$BOOK_REPOSITORY_URL" "${BOOK_REPOSITORY_BRANCH:-main}" > "$config"
fi
jupyter-book build . --all -W -n --keep-going --config "$config"
echo "book built: $PWD/_build/html/index.html"
