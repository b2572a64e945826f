"""Synthetic Kazakhstan-like population for demos, tests and benchmarks."""
