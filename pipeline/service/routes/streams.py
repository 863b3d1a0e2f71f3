"""``/streams``: create, list, read, change, pause, resume, restart and delete streams.

Each route calls one ``StreamManager`` method; its typed errors become status codes in
``error_responses``. The routes are synchronous, so FastAPI runs them in its threadpool: starting
or stopping a pipeline may block (opening a file, joining a source thread).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from pipeline.service.dependencies import ManagerDep
from pipeline.service.error_responses import CREATE_STREAM_ERRORS, STREAM_ERRORS
from pipeline.service.models import StreamInfo, StreamList, StreamPatch, StreamSpec

router = APIRouter(tags=["streams"])


@router.post("/streams", status_code=201, response_model=StreamInfo, responses=CREATE_STREAM_ERRORS)
def create_stream(spec: StreamSpec, response: Response, manager: ManagerDep) -> StreamInfo:
    """Start a stream; it is stored and comes back after a restart."""
    info = manager.create(spec)
    response.headers["Location"] = f"/streams/{info.id}"
    return info


@router.get("/streams", response_model=StreamList)
def list_streams(manager: ManagerDep) -> StreamList:
    return StreamList(streams=manager.list())


@router.get("/streams/{stream_id}", response_model=StreamInfo, responses=STREAM_ERRORS)
def get_stream(stream_id: str, manager: ManagerDep) -> StreamInfo:
    """The stream's definition and its pipeline's ``status()``."""
    return manager.info(stream_id)


@router.patch("/streams/{stream_id}", response_model=StreamInfo, responses=STREAM_ERRORS)
def patch_stream(stream_id: str, patch: StreamPatch, manager: ManagerDep) -> StreamInfo:
    """Change classes and/or threshold; other classes' tracks keep their ids (no reseed)."""
    return manager.update(stream_id, patch)


@router.post("/streams/{stream_id}/pause", response_model=StreamInfo, responses=STREAM_ERRORS)
def pause_stream(stream_id: str, manager: ManagerDep) -> StreamInfo:
    return manager.pause(stream_id)


@router.post("/streams/{stream_id}/resume", response_model=StreamInfo, responses=STREAM_ERRORS)
def resume_stream(stream_id: str, manager: ManagerDep) -> StreamInfo:
    return manager.resume(stream_id)


@router.post(
    "/streams/{stream_id}/restart", response_model=StreamInfo, responses=CREATE_STREAM_ERRORS
)
def restart_stream(stream_id: str, manager: ManagerDep) -> StreamInfo:
    """Run the stream again from the start of its source, as a new epoch.

    For a stream that ENDED (a file at its end; it is not run again after a server restart) or
    one that should start over. Tracker ids continue above every id it emitted; JSONL sinks are
    appended to; a video sink writes ``NAME.EPOCH.EXT`` so the earlier video is kept.
    Roboflow's ``/inference_pipelines`` API has no such verb (its ``pause``/``resume`` match ours).
    """
    return manager.restart(stream_id)


@router.delete(
    "/streams/{stream_id}", status_code=204, response_class=Response, responses=STREAM_ERRORS
)
def delete_stream(stream_id: str, manager: ManagerDep) -> Response:
    """Stop the stream, end its clients, free its tracker session, forget it."""
    manager.delete(stream_id)
    return Response(status_code=204)
