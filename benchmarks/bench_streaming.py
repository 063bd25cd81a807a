"""Streaming ``score``: end-to-end events per second and peak memory on files of two sizes.

A detector of the command line's default size (trained for 2 epochs on 5,000 clean generated
events: speed and memory do not depend on how well it is trained) scores JSON Lines files of
100,000 and 1,000,000 generated events (2,000 and 20,000 with ``--quick``) with
``python -m tabresnet_course score``, each in a fresh process, once (the 1M run takes minutes).
Reported: wall time from process start to exit (imports and loading the detector included) as
events per second, and the process's peak resident set size (``os.wait4``'s ``ru_maxrss``).
Streaming keeps memory flat: the larger file should need at most 1.2x the smaller's peak.

Run alone with ``python benchmarks/bench_streaming.py [--quick] [--keep DIR]``; ``--keep``
reuses (or writes) the generated files in DIR, since generating 1M events takes a minute.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/bench_streaming.py` from the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.common import Settings

SIZES = (100_000, 1_000_000)
QUICK_SIZES = (2_000, 20_000)
MEMORY_RATIO_TARGET = 1.2
MEMORY_LIMIT_BYTES = 2 * 1024**3


# Linux counts the memory a process had before exec in its peak RSS, so a child forked from this
# (large) benchmark process would report at least this process's size. A small launcher forks
# the command instead and reports the command's own peak.
LAUNCHER = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(process.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
"""


def cli(*args: Any, cwd: Path) -> tuple[float, int, float]:
    """Run ``python -m tabresnet_course ARGS``; returns its wall seconds, peak RSS in bytes and
    CPU seconds (user + system: what it cost, whatever else the machine was running)."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", LAUNCHER, sys.executable, "-m", "tabresnet_course", *map(str, args)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    code, peak_kib, cpu = completed.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"tabresnet-course {args[0]} failed: {completed.stderr.strip()}")
    return seconds, int(peak_kib) * 1024, float(cpu)  # Linux reports kilobytes


def prepare(directory: Path, sizes: tuple[int, ...]) -> None:
    """The baseline, the detector and the event files, unless ``directory`` has them already."""
    if not (directory / "detector").exists():
        cli(
            "generate",
            "--events",
            5000,
            "--no-anomalies",
            "--seed",
            7,
            "--out",
            "baseline.jsonl",
            "--labels",
            "baseline.csv",
            "--overwrite",
            cwd=directory,
        )
        cli("train", "--events", "baseline.jsonl", "--out", "detector", "--epochs", 2, "--device", "cpu", cwd=directory)
    for size in sizes:
        generate_events_file(directory, size)


def generate_events_file(directory: Path, size: int) -> None:
    """``events_{size}.jsonl`` (generated, with attacks) and its labels, unless already there."""
    if not (directory / f"events_{size}.jsonl").exists():
        cli(
            "generate",
            "--events",
            size,
            "--out",
            f"events_{size}.jsonl",
            "--labels",
            f"labels_{size}.csv",
            "--overwrite",
            cwd=directory,
        )


def run(settings: Settings, keep: Path | None = None) -> dict[str, Any]:
    """The ``streaming`` section of the results."""
    sizes = QUICK_SIZES if settings.quick else SIZES
    with tempfile.TemporaryDirectory() as scratch:
        directory = keep if keep is not None else Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        prepare(directory, sizes)
        runs = {}
        for size in sizes:
            seconds, peak, _ = cli(
                "score",
                "--model",
                "detector",
                "--events",
                f"events_{size}.jsonl",
                "--out",
                f"scores_{size}.csv",
                "--overwrite",
                cwd=directory,
            )
            runs[str(size)] = {"seconds": seconds, "events_per_second": size / seconds, "peak_rss_bytes": peak}
    small, large = (runs[str(size)]["peak_rss_bytes"] for size in sizes)
    return {
        "sizes": list(sizes),
        "runs": runs,
        "memory_ratio": large / small,
        "memory_ratio_target": MEMORY_RATIO_TARGET,
        "memory_limit_bytes": MEMORY_LIMIT_BYTES,
    }


def main() -> None:
    """Run the benchmark alone and print its table."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 and 20,000 events")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR", help="reuse or keep the generated files here")
    args = parser.parse_args()
    result = run(Settings(quick=args.quick, device=torch.device("cpu"), repeats=1, warmup=0), args.keep)
    print("| events | seconds | events/s | peak RSS |\n|---:|---:|---:|---:|")
    for size, r in result["runs"].items():
        print(
            f"| {int(size):,} | {r['seconds']:.1f} | {r['events_per_second']:,.0f} | {r['peak_rss_bytes'] / 2**20:,.0f} MiB |"
        )
    print(f"peak RSS ratio, largest / smallest: {result['memory_ratio']:.2f} (target <= {MEMORY_RATIO_TARGET})")


if __name__ == "__main__":
    main()
