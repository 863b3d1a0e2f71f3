"""The ``sam3-stream`` command line: ``main`` and one module per verb (``VERBS`` in ``main``)."""
