"""Benchmarks of tabresnet_course: `python benchmarks/run.py` (see benchmarks/README.md)."""
