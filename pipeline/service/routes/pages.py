"""``/`` and ``/streams/{id}/view``: the two HTML pages (rendered by ``html_pages``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from pipeline.service.dependencies import EngineDep, ManagerDep, managed_stream
from pipeline.service.html_pages import index_page, viewer_page
from pipeline.service.models import ErrorBody

router = APIRouter(tags=["pages"])


@router.get(
    "/streams/{stream_id}/view",
    response_class=HTMLResponse,
    responses={404: {"model": ErrorBody}},
    dependencies=[Depends(managed_stream)],
)
def view_stream() -> HTMLResponse:
    """A page that plays the stream over WebRTC and lists its detections."""
    return HTMLResponse(viewer_page())


@router.get("/", response_class=HTMLResponse)
def index(manager: ManagerDep, engine: EngineDep) -> HTMLResponse:
    """Every stream with a link to its viewer."""
    return HTMLResponse(index_page(manager.list(), engine.model_name))
