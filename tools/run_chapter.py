"""Execute one chapter as a notebook, the way a reader (and nbval) runs it, and report its time.

Usage: python tools/run_chapter.py book/contrastive.md [output-dir]
"""

import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient


def run_chapter(chapter: Path, out_dir: Path) -> float:
    notebook = jupytext.read(chapter)
    start = time.perf_counter()
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(chapter.parent)}}
    ).execute()
    elapsed = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, out_dir / f"{chapter.stem}.ipynb")
    return elapsed


if __name__ == "__main__":
    chapter = Path(sys.argv[1]).resolve()
    out_dir = Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/chapters")
    seconds = run_chapter(chapter, out_dir)
    print(f"{chapter.name} executed in {seconds:.1f} s -> {out_dir / (chapter.stem + '.ipynb')}")
