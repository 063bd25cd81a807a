"""Run every benchmark of tabresnet_course, print one table and write the figures as JSON.

Usage::

    python benchmarks/run.py [--quick] [--device auto|cpu|cuda] [--threads N]
                             [--only training hardware compile data scoring streaming reference book]
                             [--out benchmarks/results.json] [--update-readme]
    python benchmarks/run.py --readme-from benchmarks/results.json

``--quick`` shrinks every size and runs one timed repeat (a smoke test: the figures mean
nothing). ``--device auto`` uses CUDA when there is a GPU. ``--threads`` calls
``torch.set_num_threads`` first (default: PyTorch's choice, one thread per core). The table is
Markdown; benchmarks/README.md explains how to read it and holds the latest one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/run.py` from the repository root
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import (  # noqa: E402
    bench_book,
    bench_compile,
    bench_data,
    bench_hardware,
    bench_reference,
    bench_scoring,
    bench_streaming,
    bench_training,
)
from benchmarks.common import Settings, load_average, machine_description  # noqa: E402
from tabresnet_course.runtime import resolve_device

BENCHMARKS: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "training": bench_training.run,
    "hardware": bench_hardware.run,
    "compile": bench_compile.run,
    "data": bench_data.run,
    "scoring": bench_scoring.run,
    "streaming": bench_streaming.run,
    "reference": bench_reference.run,
    "book": bench_book.run,
}
SPEEDUP_TARGET = 3.0
DATA_RATIO_TARGET = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke test")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) before running")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(BENCHMARKS),
        default=None,
        metavar="NAME",
        help=f"run only these benchmarks ({', '.join(BENCHMARKS)})",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.json", help="JSON output file")
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help="also put the table into benchmarks/README.md (between its latest-table markers)",
    )
    parser.add_argument(
        "--readme-from",
        type=Path,
        default=None,
        metavar="JSON",
        help="run nothing: put the table of an earlier results file into benchmarks/README.md",
    )
    return parser.parse_args(argv)


# -- the table --------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 3) -> str:
    """A number to ``digits`` significant digits (whole numbers above that), thousands separated."""
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    decimals = digits - 1 - math.floor(math.log10(abs(value)))
    return f"{value:,.{decimals}f}"


def spread(stats: dict[str, Any], scale: float = 1.0, invert: bool = False) -> str:
    """``min-max`` of a timing summary, optionally as a rate ``scale / seconds``."""
    if invert:
        return f"{fmt(scale / stats['max'])}-{fmt(scale / stats['min'])}"
    return f"{fmt(stats['min'] * scale)}-{fmt(stats['max'] * scale)}"


def table_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """One row per figure: benchmark, what, value, unit, spread (min-max over repeats), note."""
    rows: list[dict[str, str]] = []

    def add(bench: str, what: str, value: str, unit: str, spread_text: str = "", note: str = "") -> None:
        rows.append(
            {"benchmark": bench, "what": what, "value": value, "unit": unit, "spread": spread_text, "note": note}
        )

    training = results.get("training")
    if isinstance(training, dict) and "contrastive" in training:
        rows_per_epoch = training["setup"]["num_rows"]
        for objective in ("contrastive", "mfp"):
            section = training[objective]
            for name, v in section["variants"].items():
                note = f"final loss {v['final_loss']:.4f}"
                if name != "naive":
                    note += f" ({100 * v['final_loss_rel_diff_vs_naive']:.1f}% from naive)"
                add(
                    f"training {objective}",
                    f"{name}: samples/s",
                    fmt(v["samples_per_second"]),
                    "rows/s",
                    spread(v["epoch_seconds"], rows_per_epoch, invert=True),
                    note,
                )
            for name, v in section["variants"].items():
                if name != "naive":
                    add(
                        f"training {objective}",
                        f"{name} / naive",
                        fmt(v["speedup_vs_naive"]),
                        "x",
                        "",
                        f"paired per-epoch median {fmt(v['paired_speedup_vs_naive'])}x",
                    )
            if "bf16_vs_fp32_max_rel_diff" in section:
                add(
                    f"training {objective}",
                    "bf16 vs fp32 loss curve",
                    f"{100 * section['bf16_vs_fp32_max_rel_diff']:.2f}",
                    "% max",
                    "",
                    "largest per-epoch relative difference",
                )
    hardware = results.get("hardware")
    if isinstance(hardware, dict) and "objectives" in hardware:
        for objective, entry in hardware["objectives"].items():
            for name, p in entry["precisions"].items():
                square = hardware.get(f"square_matmul_gflops_{name}")
                add(
                    "hardware",
                    f"{objective} step {name}: achieved",
                    fmt(p["achieved_gflops"]),
                    "GFLOP/s",
                    spread(
                        p["step_timing"], entry["flops_per_step"] * hardware["batches_per_timing"] / 1e9, invert=True
                    ),
                    f"{100 * p['fraction_of_same_shape_peak']:.0f}% of matmul on the same shapes "
                    f"({fmt(p['matmul_same_shapes_gflops'])}); {100 * p['achieved_gflops'] / square:.0f}% of square",
                )
        for key, value in hardware.items():
            if key.startswith("square_matmul_gflops_"):
                add("hardware", f"matmul {hardware['square_size']}^3 {key.rsplit('_', 1)[1]}", fmt(value), "GFLOP/s")
        scaling = hardware.get("thread_scaling")
        if scaling:
            add(
                "hardware",
                f"contrastive step {scaling['precision']}, {scaling['default_threads']} threads vs 1",
                fmt(scaling["speedup_default_vs_1"]),
                "x",
                "",
                ", ".join(f"{t} thread(s): {1e3 * s:.0f} ms/step" for t, s in scaling["step_seconds"].items()),
            )
    compiled = results.get("compile")
    if isinstance(compiled, dict) and "objectives" in compiled:
        for objective, c in compiled["objectives"].items():
            add(
                "compile",
                f"{objective} {compiled['precision']}: torch.compile / eager",
                fmt(c["speedup"]),
                "x",
                "",
                f"eager {1e3 * c['eager_step_seconds']:.0f} ms/step, compiled {1e3 * c['compiled_step_seconds']:.0f} "
                f"ms/step, compile {c['compile_seconds']:.0f} s",
            )
    data = results.get("data")
    if isinstance(data, dict) and "paths" in data:
        n = data["num_events"]
        add(
            "data",
            "generate (flat table)",
            fmt(data["generate"]["events_per_second"]),
            "events/s",
            spread(data["generate"]["seconds"], n, invert=True),
            f"{n:,} events",
        )
        add(
            "data",
            "write JSON Lines",
            fmt(data["write_jsonl"]["events_per_second"]),
            "events/s",
            spread(data["write_jsonl"]["seconds"], n, invert=True),
            f"{data['file_bytes'] / 1e6:.1f} MB",
        )
        for name, p in data["paths"].items():
            note = "" if name == "json.loads floor" else f"{fmt(p['ratio_to_json_loads'])}x json.loads"
            add(
                "data",
                f"JSONL -> {'dicts' if 'floor' in name else 'tensors'}: {name}",
                fmt(p["events_per_second"]),
                "events/s",
                spread(p["seconds"], n, invert=True),
                note,
            )
    scoring = results.get("scoring")
    if isinstance(scoring, dict) and "embed_plus_knn" in scoring:
        q = scoring["num_queries"]
        for key, label in (("embed_plus_knn", "embed + kNN"), ("embed_only", "embed only"), ("knn_only", "kNN only")):
            add(
                "scoring",
                label,
                fmt(scoring[key]["events_per_second"]),
                "events/s",
                spread(scoring[key]["seconds"], q, invert=True),
                f"{scoring['num_reference']:,} reference, {q:,} queries, k={scoring['k']}",
            )
    if isinstance(scoring, dict) and "backends" in scoring:
        backends = scoring["backends"]
        for name, b in backends["results"].items():
            recall = "" if name in ("sklearn", "faiss", "torch") else f"; recall@{backends['k']} {b['recall_at_k']:.3f}"
            auto = " (auto)" if name == backends["auto"] else ""
            add(
                "scoring",
                f"kNN backend {name}{auto}",
                fmt(b["queries_per_second"]),
                "queries/s",
                spread(b["seconds"], backends["num_queries"], invert=True),
                f"{backends['num_reference']:,} reference, {backends['num_queries']:,} queries, "
                f"d={backends['dim']}, k={backends['k']}{recall}",
            )
    streaming = results.get("streaming")
    if isinstance(streaming, dict) and "runs" in streaming:
        for size, r in streaming["runs"].items():
            add(
                "streaming",
                f"score {int(size):,} events (JSON Lines)",
                fmt(r["events_per_second"]),
                "events/s",
                "",
                f"one run, {r['seconds']:.0f} s end to end; peak RSS {r['peak_rss_bytes'] / 2**20:,.0f} MiB",
            )
    rows.extend(reference_rows(results.get("reference")))
    book = results.get("book")
    if isinstance(book, dict) and "chapters" in book:
        for chapter, c in book["chapters"].items():
            add(
                "book",
                chapter,
                f"{c['seconds']:.1f}" if c["seconds"] is not None else "failed",
                "s",
                "",
                "" if c["ok"] else f"error: {c['error']}",
            )
        add("book", "whole book (sum)", f"{book['total_seconds']:.1f}", "s")
    return rows


def reference_rows(reference: Any) -> list[dict[str, str]]:
    """The rows of ``bench_reference``: the recipe end to end, start-up, threads per stage and
    the cost model."""
    if not isinstance(reference, dict) or "runs" not in reference:
        return []
    rows = []

    def add(what: str, value: str, unit: str, note: str = "") -> None:
        rows.append({"benchmark": "reference", "what": what, "value": value, "unit": unit, "spread": "", "note": note})

    for r in reference["runs"]:
        add(
            f"score {r['events']:,} events, {r['reference_rows']:,} reference, k={r['k']}",
            fmt(r["events_per_second"]),
            "events/s",
            f"{fmt(r['ratio_to_json_loads'])}x json.loads; {r['seconds']:.0f} s end to end; "
            f"{fmt(r['events_per_cpu_second'])} events per CPU-second; peak RSS {r['peak_rss_bytes'] / 2**20:,.0f} MiB",
        )
    for name, seconds in reference["startup_seconds"].items():
        size, k = name.split("_k")
        add(f"load a detector, {int(size):,} reference, k={k}", fmt(seconds), "s", "start-up before the first event")
    for cost in reference["stages"]:
        where = f"{cost['reference_rows']:,} reference, k={cost['k']}"
        for stage, timing in cost["seconds_per_event"].items():
            one, two = (timing[f"{count}_threads"]["median"] for count in (1, 2))
            add(f"stage {stage}, {where}", fmt(1 / one), "events/s", f"1 thread; 2 threads: {fmt(one / two)}x that")
        add(f"cost model, {where}", fmt(cost["events_per_second_per_core"]), "events/s per core", "stages summed")
        add(
            f"cost model, {where}",
            fmt(cost["core_hours_per_day"]),
            "core-hours",
            f"to score {reference['events_per_day']:.0e} events a day",
        )
    return rows


def reference_targets(reference: Any) -> list[dict[str, Any]]:
    """Issue 24's targets: events/s per reference size (k = 5 and the largest k), peak RSS, flat
    memory and start-up time."""
    if not isinstance(reference, dict) or "runs" not in reference:
        return []
    out = []
    for size in reference["reference_sizes"]:
        for k in reference["ks"]:
            runs = sorted(
                (r for r in reference["runs"] if r["reference_rows"] == size and r["k"] == k), key=lambda r: r["events"]
            )
            if not runs:
                continue
            where = f"{size:,} reference, k={k}"
            target = reference["rate_targets"][str(size)]
            out.append(
                {
                    "target": f"score {runs[-1]['events']:,} events, {where}: >= {target:,} events/s",
                    "value": round(runs[-1]["events_per_second"]),
                    "met": runs[-1]["events_per_second"] >= target,
                }
            )
            peak = max(r["peak_rss_bytes"] for r in runs)
            out.append(
                {
                    "target": f"{where}: peak RSS <= {reference['memory_limit_bytes'] / 2**30:g} GiB (MiB)",
                    "value": round(peak / 2**20),
                    "met": peak <= reference["memory_limit_bytes"],
                }
            )
            if len(runs) > 1:
                ratio = runs[-1]["peak_rss_bytes"] / runs[0]["peak_rss_bytes"]
                out.append(
                    {
                        "target": f"{where}: peak RSS flat, {runs[-1]['events']:,} vs {runs[0]['events']:,} events "
                        f"<= {reference['memory_ratio_target']:g}x",
                        "value": round(ratio, 2),
                        "met": ratio <= reference["memory_ratio_target"],
                    }
                )
            seconds = reference["startup_seconds"][f"{size}_k{k}"]
            out.append(
                {
                    "target": f"{where}: detector load < {reference['startup_limit_seconds']:g} s",
                    "value": round(seconds, 2),
                    "met": seconds < reference["startup_limit_seconds"],
                }
            )
    return out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured value and whether it is met."""
    out: list[dict[str, Any]] = []
    training = results.get("training")
    if isinstance(training, dict) and "contrastive" in training:
        rtol = training["tolerances"]["naive_vs_package_rtol"]
        bf16_rtol = training["tolerances"]["bf16_vs_fp32_rtol"]
        for objective in ("contrastive", "mfp"):
            section = training[objective]
            seed_call = section["variants"]["seed call"]
            out.append(
                {
                    "target": f"{objective}: the seed's train_self_supervised(DataLoader(OCSFDataset)) call >= "
                    f"{SPEEDUP_TARGET:g}x naive rows/s",
                    "value": round(seed_call["speedup_vs_naive"], 2),
                    "met": seed_call["speedup_vs_naive"] >= SPEEDUP_TARGET,
                }
            )
            for name, v in section["variants"].items():
                if name == "naive":
                    continue
                out.append(
                    {
                        "target": f"{objective}: {name} final loss within {100 * rtol:g}% of naive",
                        "value": round(v["final_loss_rel_diff_vs_naive"], 4),
                        "met": v["final_loss_rel_diff_vs_naive"] <= rtol,
                    }
                )
            if "bf16_vs_fp32_max_rel_diff" in section:
                out.append(
                    {
                        "target": f"{objective}: bf16 loss curve within {100 * bf16_rtol:g}% of fp32 every epoch",
                        "value": round(section["bf16_vs_fp32_max_rel_diff"], 4),
                        "met": section["bf16_vs_fp32_max_rel_diff"] <= bf16_rtol,
                    }
                )
    data = results.get("data")
    if isinstance(data, dict) and "paths" in data:
        for name in ("package (fitted)", "package (fit + transform)"):
            ratio = data["paths"][name]["ratio_to_json_loads"]
            out.append(
                {
                    "target": f"JSONL -> tensors, {name}: >= {DATA_RATIO_TARGET:g}x json.loads throughput",
                    "value": round(ratio, 2),
                    "met": ratio >= DATA_RATIO_TARGET,
                }
            )
    streaming = results.get("streaming")
    if isinstance(streaming, dict) and "runs" in streaming:
        largest = max(r["peak_rss_bytes"] for r in streaming["runs"].values())
        out.append(
            {
                "target": f"streaming score: peak RSS at {streaming['sizes'][-1]:,} events <= "
                f"{streaming['memory_ratio_target']:g}x at {streaming['sizes'][0]:,}",
                "value": round(streaming["memory_ratio"], 2),
                "met": streaming["memory_ratio"] <= streaming["memory_ratio_target"],
            }
        )
        out.append(
            {
                "target": f"streaming score: peak RSS < {streaming['memory_limit_bytes'] / 2**30:g} GiB (MiB)",
                "value": round(largest / 2**20),
                "met": largest < streaming["memory_limit_bytes"],
            }
        )
    out.extend(reference_targets(results.get("reference")))
    book = results.get("book")
    if isinstance(book, dict) and "chapters" in book:
        out.append(
            {
                "target": f"whole book < {book['book_limit_s']:g} s",
                "value": round(book["total_seconds"], 1),
                "met": book["all_ok"] and book["total_seconds"] < book["book_limit_s"],
            }
        )
        slowest = max(book["chapters"].items(), key=lambda kv: kv[1]["seconds"] or float("inf"))
        out.append(
            {
                "target": f"no chapter > {book['chapter_limit_s']:g} s (slowest: {slowest[0]})",
                "value": slowest[1]["seconds"],
                "met": book["all_ok"]
                and all(c["seconds"] <= book["chapter_limit_s"] for c in book["chapters"].values()),
            }
        )
    return out


def markdown(rows: list[dict[str, str]], goals: list[dict[str, Any]]) -> str:
    """The figures and the targets as two Markdown tables."""
    lines = ["| benchmark | what | value | unit | spread (min-max) | note |", "|---|---|---:|---|---|---|"]
    lines += [
        f"| {r['benchmark']} | {r['what']} | {r['value']} | {r['unit']} | {r['spread']} | {r['note']} |" for r in rows
    ]
    if goals:
        lines += ["", "| target | measured | met |", "|---|---:|---|"]
        lines += [f"| {g['target']} | {g['value']} | {'met' if g['met'] else 'MISSED'} |" for g in goals]
    return "\n".join(lines)


def header(report: dict[str, Any]) -> str:
    """One line on the machine and the run."""
    machine = report["machine"]
    return (
        f"{machine['cpu_model']}, {machine['cpus_available']} CPUs, torch {machine['torch_version']} "
        f"({machine['torch_num_threads']} threads), device {machine['device']}"
        + (f" ({machine['gpu']})" if "gpu" in machine else "")
        + f", load average {machine['load_average_at_start']} -> {machine['load_average_at_end']}"
    )


README_START, README_END = "<!-- latest-table:start -->", "<!-- latest-table:end -->"


def update_readme(report: dict[str, Any], path: Path = ROOT / "benchmarks" / "README.md") -> None:
    """Replace the block between the README's latest-table markers with this run's table."""
    text = path.read_text()
    if README_START not in text or README_END not in text:
        raise SystemExit(f"{path} has no {README_START} ... {README_END} block to update")
    machine = report["machine"]
    block = "\n".join(
        [
            README_START,
            "",
            f"Latest run: `{report['command']}`, {report['started_at']}, {report['duration_seconds'] / 60:.0f} minutes.",
            "",
            f"Machine: {header(report)}; Python {machine['python_version']}, {machine['platform']}; "
            f"bfloat16 native: {'yes' if machine['bf16_native'] else 'no'} ({', '.join(machine['cpu_flags'])}).",
            "",
            markdown(report["table"], report["targets"]),
            "",
            README_END,
        ]
    )
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    path.write_text(text[:start] + block + text[end:])


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.readme_from is not None:
        update_readme(json.loads(args.readme_from.read_text()))
        return 0
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    settings = Settings(quick=args.quick, device=device, repeats=1 if args.quick else 5, warmup=1)
    names = [name for name in BENCHMARKS if args.only is None or name in args.only]
    started = time.perf_counter()
    report: dict[str, Any] = {
        "schema_version": 1,
        "command": " ".join(["python benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "repeats": settings.repeats,
        "warmup": settings.warmup,
        "machine": machine_description(device),
        "results": {},
        "errors": {},
    }
    for name in names:
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        bench_started = time.perf_counter()
        try:
            report["results"][name] = BENCHMARKS[name](settings)
        except Exception as error:  # keep going: one broken benchmark should not hide the others
            traceback.print_exc()
            report["errors"][name] = f"{type(error).__name__}: {error}"
        print(f"[benchmarks] {name} done in {time.perf_counter() - bench_started:.1f} s", file=sys.stderr, flush=True)
    report["machine"]["load_average_at_end"] = load_average()
    report["duration_seconds"] = time.perf_counter() - started
    report["table"] = table_rows(report["results"])
    report["targets"] = targets(report["results"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(args.out)

    print(f"\n{header(report)}\n")
    print(markdown(report["table"], report["targets"]))
    if args.update_readme:
        update_readme(report)
    for name, error in report["errors"].items():
        print(f"\nERROR in {name}: {error}")
    print(f"\nwrote {args.out} ({report['duration_seconds']:.0f} s)")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
