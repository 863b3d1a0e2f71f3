"""The two HTML pages: ``/`` lists the streams, ``/streams/{id}/view`` plays one over WebRTC.

Plain files under ``static/`` (no template engine); the index is filled with ``string.Template``
and every value is HTML-escaped. Sources are shown redacted (``StreamInfo`` already is), and the
API key is never written into a page: the pages carry it over from their own URL in the browser.
"""

from __future__ import annotations

import functools
import html
import logging
from importlib import resources
from string import Template

from pipeline.service.models import StreamInfo

logger = logging.getLogger(__name__)


@functools.cache
def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def viewer_page() -> str:
    """The viewer; it reads the stream id and the API key from its own URL."""
    return _static("viewer.html")


def _state(info: StreamInfo) -> str:
    sources = info.status.get("sources")
    if isinstance(sources, list) and sources and isinstance(sources[0], dict):
        return str(sources[0].get("state", ""))
    return str(info.status.get("state", ""))


def index_page(streams: list[StreamInfo], model_name: str) -> str:
    """The stream list with a link to each viewer."""
    rows = []
    for info in streams:
        stream_id = html.escape(info.id)
        rows.append(
            "<tr>"
            f"<td>{stream_id}</td>"
            f"<td>{html.escape(info.source)}</td>"
            f"<td>{html.escape(', '.join(info.classes))}</td>"
            f"<td>{html.escape('PAUSED' if info.paused else _state(info))}</td>"
            f'<td><a href="streams/{stream_id}/view">view</a></td>'
            "</tr>"
        )
    return Template(_static("index.html")).substitute(
        count=len(streams),
        model=html.escape(model_name),
        rows="\n".join(rows) or '<tr><td colspan="5">no streams yet: POST /streams</td></tr>',
    )
