"""The configuration a build of the book uses: _config.yml, plus the repository when it is published.

_config.yml names no repository, so the site shows no repository, issue or launch button: with
no real repository behind them they would lead nowhere. The download buttons (executed notebook,
MyST source) are always there. To publish the book from a repository, build it with

    BOOK_REPOSITORY_URL=https://github.com/<owner>/<repo> [BOOK_REPOSITORY_BRANCH=main] bash tools/book.sh

tools/book.sh then writes the configuration of ``published_config`` to _build/book_config.yml
(``python tools/book_config.py URL [BRANCH]``) and builds with ``--config`` pointing at it: the
repository and issue buttons, and the Binder and Colab launch buttons, link to that repository.
tools/site_check.py reads the configuration a site was built with (``built_config``) to know which
buttons it must find.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
BINDERHUB_URL = "https://mybinder.org"  # Binder installs binder/requirements.txt and opens a chapter in JupyterLab
COLAB_URL = "https://colab.research.google.com"  # Colab opens .ipynb files only
GITHUB_REPOSITORY = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+")


def published_config(url: str, branch: str = "main") -> dict:
    """_config.yml with the repository ``url`` (a GitHub repository: Binder and Colab need one) and
    every button that links to it turned on. Local extension paths become absolute, because
    jupyter-book reads them relative to the configuration file."""
    url = url.rstrip("/")
    if not GITHUB_REPOSITORY.fullmatch(url):
        raise ValueError(f"BOOK_REPOSITORY_URL must look like https://github.com/<owner>/<repo>, got {url!r}")
    config = yaml.safe_load(CONFIG.read_text())
    config["repository"].update(url=url, branch=branch)
    config["launch_buttons"].update(binderhub_url=BINDERHUB_URL, colab_url=COLAB_URL)
    config["html"].update(use_repository_button=True, use_issues_button=True)
    extensions = config["sphinx"].get("local_extensions") or {}
    config["sphinx"]["local_extensions"] = {name: str((ROOT / path).resolve()) for name, path in extensions.items()}
    return config


def built_config(html: Path) -> dict:
    """The configuration the site in ``html`` was built with: the book_config.yml that
    tools/book.sh wrote beside it for a published build, else _config.yml."""
    written = html.parent / "book_config.yml"
    return yaml.safe_load((written if written.is_file() else CONFIG).read_text())


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: python tools/book_config.py https://github.com/<owner>/<repo> [branch]")
    print(yaml.safe_dump(published_config(*sys.argv[1:]), sort_keys=False), end="")
