"""Benchmarks behind ``sam3-stream bench ...``: ratios against a baseline measured in one run."""
