"""The ``sam3-stream`` command line: ``main`` and one module per verb (``VERBS`` in ``main``).

``bench_*`` modules are the ``bench`` verb's sub-verbs (``BENCHES`` in ``main``); the benchmarks
themselves live in ``pipeline.bench``.
"""
