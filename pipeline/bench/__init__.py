"""Benchmarks behind ``sam3-stream bench ...``: ratios against a baseline measured in one run.

``plain_hf`` is the baseline they share: the plain Hugging Face streaming loop, written once.
"""
