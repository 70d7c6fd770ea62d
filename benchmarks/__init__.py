"""Benchmarks of ssltui's training steps: `python -m benchmarks.throughput`, `python -m benchmarks.opcount`."""
