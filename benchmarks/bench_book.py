"""Book: execution time of every chapter of ``_toc.yml``, and of the whole book.

Each chapter runs as a notebook in a fresh kernel with ``tools/run_chapter.py`` (the way a
reader and nbval run it); its time includes the kernel's start. The whole book is the sum of
the chapters (Jupyter Book executes them one after another). Chapters run once each: a chapter
takes seconds to a minute, and its own cells already repeat the work many times.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Settings

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_LIMIT_S = 60.0
BOOK_LIMIT_S = 300.0


def chapters() -> list[str]:
    """Chapter files in reading order (``tools/toc_chapters.py``)."""
    output = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "toc_chapters.py")], check=True, capture_output=True, text=True
    ).stdout
    return [line.strip() for line in output.splitlines() if line.strip()]


def run(settings: Settings) -> dict[str, Any]:
    """The ``book`` section of the results."""
    results: dict[str, Any] = {"chapters": {}, "chapter_limit_s": CHAPTER_LIMIT_S, "book_limit_s": BOOK_LIMIT_S}
    with tempfile.TemporaryDirectory(prefix="bench_chapters_") as out:
        for chapter in chapters():
            started = time.perf_counter()
            process = subprocess.run(
                [sys.executable, str(ROOT / "tools" / "run_chapter.py"), str(ROOT / chapter), out],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            wall = time.perf_counter() - started
            match = re.search(r"executed in ([0-9.]+) s", process.stdout)
            results["chapters"][chapter] = {
                "seconds": float(match.group(1)) if match else None,
                "wall_seconds": wall,
                "ok": process.returncode == 0 and match is not None,
                "error": None if process.returncode == 0 else (process.stderr.strip().splitlines() or ["?"])[-1],
            }
    timed = [c["seconds"] for c in results["chapters"].values() if c["seconds"] is not None]
    results["total_seconds"] = sum(timed)
    results["all_ok"] = all(c["ok"] for c in results["chapters"].values())
    return results
