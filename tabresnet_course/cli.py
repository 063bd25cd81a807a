"""The ``tabresnet-course`` command line (also ``python -m tabresnet_course``)."""

from __future__ import annotations

import argparse
from typing import Sequence

from tabresnet_course import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tabresnet-course",
        description="Generate OCSF events, train TabularResNet encoders, score and evaluate anomalies.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0
