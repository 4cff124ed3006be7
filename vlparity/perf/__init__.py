"""Measurement helpers for the benchmark suite (``tests/perf``): machine limits, FLOP counts, memory, real-size models.

Benchmarks time real objects; these helpers only say what a figure should be compared with.
"""
