"""Benchmarks that print JSON: `dsrl-real bench NAME` runs `BENCHMARKS[NAME]`."""

from .benchmarks import BENCHMARKS

__all__ = ["BENCHMARKS"]
