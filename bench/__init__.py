"""Benchmarks: each prints a table and writes JSON to bench/results/ (see docs/benchmarks.md).

Run them from the checkout's root with the project's virtualenv, e.g.
``$VENV/bin/python -m bench.clone --scale 5 --runs 1``.
"""
