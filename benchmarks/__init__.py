"""Benchmarks: run by hand, results recorded in benchmarks/results and benchmarks/README.md."""
