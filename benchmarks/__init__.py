"""Benchmarks of newsclf against the plain Hugging Face way of doing the same thing, written as JSON.

Not part of the installed package: run from a checkout with ``python scripts/bench.py`` (or
``python -m benchmarks.cli``). Modules: :mod:`benchmarks.bench_backbone` (full vs restricted vocabulary),
:mod:`benchmarks.bench_train` (fine-tuning), :mod:`benchmarks.bench_predict` (inference),
:mod:`benchmarks.cli` (the command line).
"""
