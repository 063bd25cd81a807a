"""Running the ``tabresnet-course`` command line in tests, and checking what it printed.

Shared by test_cli.py and test_reliability.py: :func:`call` runs it in this process (no
interpreter start-up, so the many error cases stay fast), :func:`run_process` in a new one (what
a user's shell does); both return a ``subprocess.CompletedProcess``.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--epochs", "1", "--d-model", "16", "--num-blocks", "1", "--batch-size", "128", "--device", "cpu"]
ERROR = "tabresnet-course: error: "


def call(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``tabresnet-course ARGS`` in this process (in ``cwd`` if given); stdout and stderr captured."""
    from tabresnet_course.cli import main

    out, err = io.StringIO(), io.StringIO()
    where = contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext()
    with where, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse: --help, usage errors
            status = exit_.code
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())


def run_process(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m tabresnet_course ARGS`` in a new process (in ``cwd`` if given)."""
    return subprocess.run(
        [sys.executable, "-m", "tabresnet_course", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )


def stderr_lines(text: str) -> list[str]:
    """The lines a terminal would show: progress bars (redrawn with carriage returns) removed."""
    lines = (line.split("\r")[-1] for line in text.split("\n"))
    return [line for line in lines if line.strip() and "it/s]" not in line]


def assert_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Status 2, one line on stderr starting ``tabresnet-course: error:`` that holds every fragment."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(ERROR), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
