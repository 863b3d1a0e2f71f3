"""The YAML file of ``sam3-stream serve --config``: streams that start at boot.

A camera site lists its cameras here; they start every time the server does, are not written to
the SQLite store, and can still be patched, paused or deleted over the API for the life of the
process. Example::

    streams:
      - id: dock-door
        source: rtsp://viewer:secret@10.0.0.7:554/stream1
        classes: [person, forklift]
        threshold: 0.4
        max_fps: 5
        sinks: ["jsonl:/var/log/sam3/dock-door.jsonl"]

Besides ``streams``, the file may set what the matching ``serve`` flags set (a flag given on the
command line wins): ``output_dir`` (``--output-dir``), ``media_root`` (``--media-root``) and
``allow_private_network`` (``--allow-private-network``; true in either place allows). They bound
streams created over the API only: the streams of this file keep full paths and any address.
A ``ray:`` block runs the streams on a Ray cluster, as ``--ray`` does (fields in
``pipeline.config.ray_config``; each ``--ray-*`` flag overrides its field).

Every field is validated (pydantic) before the server starts; a bad one stops ``serve`` with one
line naming it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.config.config_file import read_config_file, validate_config
from pipeline.config.ray_config import RayConfig
from pipeline.service.models import ConfiguredStream


class ServeConfig(BaseModel):
    """The whole config file: a list of streams with unique ids, and the API's roots and policy.

    Attributes:
        output_dir: the output root of sinks given over the API (``serve --output-dir``).
        media_root: the root of file sources given over the API (``serve --media-root``).
        allow_private_network: API URLs may reach internal addresses (``--allow-private-network``).
        ray: run streams on a Ray cluster (``--ray``); None: in this process, unless ``--ray``.
    """

    model_config = ConfigDict(extra="forbid")

    streams: list[ConfiguredStream] = Field(default_factory=list)
    output_dir: Path | None = None
    media_root: Path | None = None
    allow_private_network: bool = False
    ray: RayConfig | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> ServeConfig:
        seen: set[str] = set()
        for stream in self.streams:
            if stream.id in seen:
                raise ValueError(f"stream id {stream.id!r} appears twice; ids must be unique")
            seen.add(stream.id)
        return self


def load_serve_config(path: str | Path) -> ServeConfig:
    """Read and validate a config file.

    Raises:
        ConfigError: unreadable file, bad YAML, or a field that does not validate; the message is
            one line naming the file and the field (``streams.0.threshold``).
    """
    return validate_config(ServeConfig, read_config_file(path), origin=str(path))
