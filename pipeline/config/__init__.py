"""YAML files a user writes: ``run --config`` pipelines and ``serve --config`` boot streams."""
