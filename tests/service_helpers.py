"""Builders shared by the service tests: a scripted pipeline, an in-process server, an SSE reader.

``ScriptedPipeline`` stands in for ``InferencePipeline`` where a test is about the HTTP layer and
not the model (errors, auth, limits, persistence): it has the same methods, checks its reference
with the real ``make_source`` (so an unsupported scheme fails exactly as in production), and emits
a frame only when the test calls ``emit()``, so nothing depends on timing. The end-to-end tests use
the real pipeline and the tiny checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import supervision as sv
from fastapi import FastAPI

from pipeline.loop.contracts import ManagedPipeline
from pipeline.loop.status import LatencySummary, PipelineState, PipelineStatus
from pipeline.service import ModelEngine, ServiceSettings, create_app
from pipeline.service.server import ServiceServer, bind_socket
from pipeline.sources import SourceState, make_source
from pipeline.video_frame import VideoFrame
from tests.pipeline_helpers import source_status
from tracker.visual_prompts import VisualPrompt


class ScriptedPipeline(ManagedPipeline):
    """``InferencePipeline``'s service-facing surface (``ManagedPipeline``); frames only on
    ``emit()``. Built by ``ScriptedPipelines.init``, the app's pipeline factory."""

    def __init__(
        self,
        video_reference: Any,
        class_names: list[str],
        on_prediction: Callable[[Any, Any], None],
        *,
        threshold: float,
        video_identifier: str,
        status_update_handlers: list[Callable[[Any], None]],
    ) -> None:
        self.video_reference = video_reference
        self.class_names = list(class_names)
        self.on_prediction = on_prediction
        self.threshold = threshold
        self.video_identifier = video_identifier
        self.status_update_handlers = status_update_handlers
        self.state = "CREATED"
        self.frame_id = 0
        self.next_tracker_id = 1
        self.sink_errors = 0
        self.terminated = threading.Event()
        self.frame_size = (48, 64)  # (height, width) of the frames ``emit`` makes
        # Visual prompts as ``add_prompt`` took them, by the tracker id it gave each object.
        self.prompted: dict[int, list[VisualPrompt]] = {}

    def start(self, use_main_thread: bool = False) -> None:
        self.state = "RUNNING"

    def pause_stream(self, source_id: int | None = None) -> None:
        self.state = "PAUSED"

    def resume_stream(self, source_id: int | None = None) -> None:
        self.state = "RUNNING"

    def set_class_names(self, class_names: list[str]) -> None:
        self.class_names = list(class_names)

    def set_threshold(self, threshold: float) -> None:
        self.threshold = threshold

    def terminate(self, *, drain: bool = False) -> None:
        self.state = "ENDED"
        self.terminated.set()

    def join(self, timeout: float | None = None) -> bool:
        return True

    def report_sink_error(self, sink_name: str, error: BaseException) -> None:
        self.sink_errors += 1

    def add_prompt(self, prompt: VisualPrompt, source_id: int | None = None) -> list[int]:
        """The registry's contract on an ``emit()`` frame: new ids, or the refined one."""
        self._check_prompt_target(source_id)
        prompt.check_frame(*self.frame_size)
        if prompt.tracker_id is not None:
            if prompt.tracker_id not in self.prompted:
                raise ValueError(f"tracker_id: {prompt.tracker_id} is not a prompted object")
            self.prompted[prompt.tracker_id].append(prompt)
            return [prompt.tracker_id]
        first = max([self.next_tracker_id, *self.prompted]) + 1
        ids = list(range(first, first + prompt.object_count))
        for tracker_id in ids:
            self.prompted[tracker_id] = [prompt]
        return ids

    def remove_object(self, tracker_id: int, source_id: int | None = None) -> None:
        self._check_prompt_target(source_id)
        if self.prompted.pop(tracker_id, None) is None:
            raise KeyError(tracker_id)

    def _check_prompt_target(self, source_id: int | None) -> None:
        if source_id not in (None, 0):
            raise ValueError(f"source_id: {source_id} is not a source of this pipeline")
        if self.terminated.is_set():
            raise ValueError("state: the pipeline is not running (TERMINATED)")

    def status(self) -> PipelineStatus:
        if self.terminated.is_set():
            state = PipelineState.TERMINATED
        else:
            state = PipelineState.CREATED if self.state == "CREATED" else PipelineState.RUNNING
        source = source_status(
            video_identifier=self.video_identifier,
            reference=str(self.video_reference),
            # A real source connects until its first frame.
            state=SourceState.CONNECTING if self.state == "CREATED" else SourceState(self.state),
            frames_decoded=self.frame_id,
            frames_processed=self.frame_id,
            latency_s={"inference": LatencySummary(p50=0.012, p95=float("nan"), max=None, count=3)},
        )
        source = dataclasses.replace(
            source, last_frame_id=self.frame_id - 1 if self.frame_id else None
        )
        return PipelineStatus(
            state=state,
            model="scripted",
            class_names=tuple(self.class_names),
            threshold=self.threshold,
            max_fps=None,
            started_at=None,
            sink_errors=self.sink_errors,
            sources=(source,),
        )

    def emit(self, count: int = 1, *, live: bool = True) -> None:
        """Hand ``count`` frames with one detection each to ``on_prediction``."""
        for _ in range(count):
            frame = VideoFrame(
                image=np.full((*self.frame_size, 3), 90, np.uint8),
                frame_id=self.frame_id,
                frame_timestamp=datetime.now(UTC),
                fps=15.0,
                source_id=0,
                video_identifier=self.video_identifier,
                comes_from_video_file=not live,
            )
            mask = np.zeros((1, *self.frame_size), bool)
            mask[0, 10:30, 10:40] = True
            detections = sv.Detections(
                xyxy=np.array([[10, 10, 40, 30]], np.float32),
                mask=mask,
                confidence=np.array([0.9], np.float32),
                class_id=np.array([0]),
                tracker_id=np.array([self.next_tracker_id], np.int64),
                data={"class_name": np.array([self.class_names[0]])},
            )
            self.frame_id += 1
            self.on_prediction(detections, frame)


class ScriptedPipelines:
    """One app's pipeline factory: ``init`` builds a ``ScriptedPipeline`` and keeps it in
    ``made``, so a test drives the pipeline of the stream it created (``made[-1]``) and never
    sees another test's."""

    def __init__(self) -> None:
        self.made: list[ScriptedPipeline] = []

    def init(
        self,
        video_reference: Any,
        class_names: list[str],
        on_prediction: Callable[[Any, Any], None],
        *,
        threshold: float = 0.5,
        max_fps: float | None = None,
        video_identifiers: list[str] | None = None,
        status_update_handlers: list[Callable[[Any], None]] | None = None,
        tracker: Any = None,
        registry: Any = None,
        **source_options: Any,
    ) -> ScriptedPipeline:
        """``InferencePipeline.init``'s signature; the source is checked, never opened."""
        make_source(video_reference, **source_options)  # raises SourceError like the real one
        pipeline = ScriptedPipeline(
            video_reference,
            class_names,
            on_prediction,
            threshold=threshold,
            video_identifier=(video_identifiers or ["0"])[0],
            status_update_handlers=list(status_update_handlers or []),
        )
        self.made.append(pipeline)
        return pipeline


def scripted_engine() -> ModelEngine:
    """An engine that is ready at once; the scripted pipeline never touches the model."""
    return ModelEngine.from_tracker(object(), model_name="scripted")


@dataclass
class RunningServer:
    """A service on a real uvicorn server in a thread, on 127.0.0.1 and a free port."""

    app: FastAPI
    server: ServiceServer
    thread: threading.Thread
    url: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def manager(self) -> Any:
        return self.app.state.service.manager

    def wait_booted(self, timeout: float = 60.0) -> None:
        assert self.app.state.service.booted.wait(timeout), "the service did not finish booting"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30.0, **kwargs)

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the server did not stop"


def start_server(app: FastAPI, *, api_key: str | None = None) -> RunningServer:
    """Serve ``app`` in a thread; the socket listens before this returns, so no wait is needed."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = ServiceServer(app, log_level="warning")
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="test-uvicorn", daemon=True
    )
    thread.start()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return RunningServer(app, server, thread, f"http://127.0.0.1:{port}", headers)


def scripted_app(
    pipelines: ScriptedPipelines | None = None,
    *,
    state_dir: Path | None = None,
    api_key: str | None = None,
    max_streams: int = 4,
    event_buffer: int = 32,
    engine: ModelEngine | None = None,
    output_dir: Path | None = None,
    media_root: Path | None = None,
    allow_private_network: bool = False,
    **kwargs: Any,
) -> FastAPI:
    """An app whose pipelines ``pipelines`` makes (a fresh factory where the test drives none).

    The roots and the private-network policy are the product's defaults unless a test names them.
    """
    settings = ServiceSettings(
        api_key=api_key,
        state_dir=state_dir,
        max_streams=max_streams,
        event_buffer=event_buffer,
        output_dir=output_dir,
        media_root=media_root,
        allow_private_network=allow_private_network,
    )
    return create_app(
        settings,
        engine=engine or scripted_engine(),
        pipeline_factory=(pipelines or ScriptedPipelines()).init,
        **kwargs,
    )


@dataclass
class SseEvent:
    kind: str
    id: int | None
    data: Any


def iter_sse(response: httpx.Response) -> Iterator[SseEvent | str]:
    """Parse an SSE response: ``SseEvent`` per event, the comment text for comment lines."""
    kind, event_id, data = "message", None, []
    for line in response.iter_lines():
        if line.startswith(":"):
            yield line[1:].strip()
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("id:"):
            event_id = int(line[3:].strip())
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            yield SseEvent(kind, event_id, json.loads("\n".join(data)))
            kind, event_id, data = "message", None, []


def collect_detections(
    events: Iterator[SseEvent | str],
    count: int,
    accept: Callable[[dict], bool] = lambda _: True,
    *,
    timeout: float = 90.0,
) -> list[dict]:
    """Read until ``count`` detection records pass ``accept``; returns those records.

    Fails after ``timeout`` seconds (checked at every event and keep-alive, which the server
    sends every 15 s), quoting the status events seen, so a stuck stream says why.
    """
    import time

    deadline = time.monotonic() + timeout
    found: list[dict] = []
    statuses: list[Any] = []
    for event in events:
        if isinstance(event, SseEvent) and event.kind == "message" and accept(event.data):
            found.append(event.data)
            if len(found) == count:
                return found
        elif isinstance(event, SseEvent) and event.kind == "status":
            statuses.append(event.data)
        elif isinstance(event, SseEvent) and event.kind == "end":
            break
        if time.monotonic() > deadline:
            break
    raise AssertionError(
        f"got {len(found)} of {count} records; status events: {json.dumps(statuses[-10:])}"
    )


class ServeProcess:
    """``sam3-stream serve`` in a subprocess: started, awaited by its own output, stopped by signal.

    Runs ``python -m pipeline.cli.serve serve ...`` (the verb alone, as the CLI registers it).
    Readiness is the server's own ``ready:`` log line, read from stderr; no polling.
    """

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        import os
        import queue
        import subprocess
        import sys

        self._lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli.serve", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=Path(__file__).resolve().parents[1],
        )
        threading.Thread(target=self._pump, daemon=True).start()
        self.url = self.wait_for("listening on ").rsplit(" ", 1)[-1]

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, text: str, timeout: float = 120.0) -> str:
        """The next output line containing ``text``; fails if the process ends first."""
        import queue

        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                message = f"no {text!r} within {timeout} s:\n" + "\n".join(self.output)
                raise AssertionError(message) from None
            if line is None:
                raise AssertionError(f"serve exited before {text!r}:\n" + "\n".join(self.output))
            self.output.append(line)
            if text in line:
                return line

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit code (0 is a clean shutdown)."""
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except Exception:
            self.process.kill()
            raise
        self._drain()
        return code

    def _drain(self) -> None:
        """Move what the process printed after the last awaited line into ``output`` (its end
        of file comes once it has exited), so a failing test shows the shutdown's own words."""
        import queue

        while True:
            try:
                line = self._lines.get(timeout=10.0)
            except queue.Empty:
                return
            if line is None:
                return
            self.output.append(line)
