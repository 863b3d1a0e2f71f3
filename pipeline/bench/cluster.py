"""``sam3-stream bench cluster``: the same N camera streams in-process, then on K Ray workers.

Both variants go through the service app's public API only (``pipeline.bench.front_door``):
streams are created with ``POST /streams`` from a generated clip played in real time, detections
are read over SSE, and the figures are what a client sees at the front door: aggregate frames per
second (events received per second over a window after a warm-up) and frame age (arrival here
minus the frame's grab time; p50, p95, max). The in-process run is ``serve``; the cluster run is
``serve --ray``: the same settings plus ``ClusterSettings``, against ``--ray ADDRESS`` or a local
head this bench starts and stops itself (``pipeline.bench.local_ray``).

What a small machine can show: on a 2-core host without a GPU the K workers share the cores the
in-process run had to itself, so no speed-up is possible; a cluster/in-process ratio near 1 says
the Ray path (a worker process per device, results sent back to the front door) costs little,
and the events prove the streams ran on the workers. The speed-up the cluster exists for needs a
device per worker: see ``MULTI_GPU_HINT``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.bench.front_door import (
    EventReader,
    create_stream,
    serve_in_thread,
    wait_ready,
)

VARIANTS = ("in-process", "cluster")
CLIP_SLACK_S = 120.0
"""Extra clip length beyond warm-up + window: a stream that starts late must not end early."""
MULTI_GPU_HINT = (
    "on a host with K GPUs: sam3-stream bench cluster --model /models/sam3 --device cuda "
    "--streams 4K --workers K --size 1920x1080 --fps 30 (add --ray auto to use a running "
    "cluster); expect aggregate fps to grow with K while the frame age stays flat"
)


@dataclass(frozen=True)
class ClusterBenchSetup:
    """What both variants run: the streams, the model and the cluster's shape."""

    model: str
    streams: int
    workers: int
    duration_s: float
    warmup_s: float
    fps: int
    size: tuple[int, int]
    device: str
    classes: list[str]
    threshold: float
    max_objects: int
    ray_address: str | None
    gpus_per_worker: float
    cpus_per_worker: float
    local_cpus: int
    start_timeout_s: float
    repeats: int = 1


@dataclass
class VariantFigures:
    """What the front door saw of one variant over its measurement windows (one per repeat).

    Attributes:
        name: one of ``VARIANTS``.
        runs: repeats measured.
        window_s: measured seconds, all repeats.
        stream_frames: detection events per stream index, all repeats.
        ages: every measured event's frame age in seconds.
        startup_s: per repeat, app creation to every stream's first event.
        workers: where the streams ran (last repeat): worker name -> streams.
        epoch_changes: epoch changes seen in the events (a failover would show here).
    """

    name: str
    runs: int = 0
    window_s: float = 0.0
    stream_frames: list[int] = field(default_factory=list)
    ages: list[float] = field(default_factory=list, repr=False)
    startup_s: list[float] = field(default_factory=list)
    workers: dict[str, int] = field(default_factory=dict)
    epoch_changes: int = 0

    @property
    def frames(self) -> int:
        return sum(self.stream_frames)

    @property
    def fps(self) -> float:
        return self.frames / self.window_s if self.window_s > 0 else 0.0

    @property
    def per_stream_fps(self) -> list[float]:
        window = self.window_s or math.inf
        return [frames / window for frames in self.stream_frames]

    @property
    def age_p50_s(self) -> float:
        return float(np.percentile(self.ages, 50)) if self.ages else math.nan

    @property
    def age_p95_s(self) -> float:
        return float(np.percentile(self.ages, 95)) if self.ages else math.nan

    @property
    def age_max_s(self) -> float:
        return max(self.ages, default=math.nan)

    def as_dict(self) -> dict[str, Any]:
        """The figures for the JSON line (ages as percentiles, not every value)."""
        names = ("fps", "frames", "per_stream_fps", "age_p50_s", "age_p95_s", "age_max_s")
        fields = {key: value for key, value in asdict(self).items() if key != "ages"}
        return fields | {name: getattr(self, name) for name in names}


@dataclass
class ClusterBenchReport:
    """Both variants' figures, the setup and what this machine can and cannot show."""

    setup: ClusterBenchSetup
    variants: dict[str, VariantFigures]
    cluster_address: str
    cpu_cores: int
    gpus: int
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    notes: list[str] = field(default_factory=list)

    def ratio(self, attribute: str) -> float:
        """cluster / in-process for one figure (nan when in-process is 0)."""
        base = getattr(self.variants["in-process"], attribute)
        other = getattr(self.variants["cluster"], attribute)
        return float(other / base) if base else math.nan

    def as_dict(self) -> dict[str, Any]:
        """The JSON line the command ends with (a figure nobody measured is null, not NaN)."""
        return _no_nan(
            {
                "bench": "cluster",
                "setup": asdict(self.setup),
                "cluster_address": self.cluster_address,
                "cpu_cores": self.cpu_cores,
                "gpus": self.gpus,
                "load_before": self.load_before,
                "load_after": self.load_after,
                "variants": {name: figures.as_dict() for name, figures in self.variants.items()},
                "ratios": {
                    "fps": self.ratio("fps"),
                    "age_p50_s": self.ratio("age_p50_s"),
                    "age_p95_s": self.ratio("age_p95_s"),
                },
                "notes": self.notes,
            }
        )


def _no_nan(value: Any) -> Any:
    """``value`` with every NaN float replaced by None, so the line is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _no_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(item) for item in value]
    return value


def run_cluster_bench(setup: ClusterBenchSetup) -> ClusterBenchReport:
    """Write the clip, run both variants one after the other, return the figures."""
    from pipeline.bench.local_ray import local_ray_head
    from pipeline.sources.sample_clip import write_sample_clip

    gpus = _cuda_devices()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sam3-bench-cluster-") as scratch:
        root = Path(scratch)
        media = root / "media"
        seconds = setup.warmup_s + setup.duration_s + CLIP_SLACK_S
        width, height = setup.size
        write_sample_clip(
            media / "camera.mp4",
            frames=math.ceil(seconds * setup.fps),
            fps=setup.fps,
            width=width,
            height=height,
        )
        variants = {name: VariantFigures(name) for name in VARIANTS}
        with contextlib.ExitStack() as stack:
            address = setup.ray_address or stack.enter_context(
                local_ray_head(num_cpus=setup.local_cpus)
            )
            for repeat in range(setup.repeats):  # ABBA...: load drifting over the run evens out
                order = VARIANTS if repeat % 2 == 0 else tuple(reversed(VARIANTS))
                for name in order:
                    cluster = address if name == "cluster" else None
                    _run_variant(variants[name], setup, root / f"run-{repeat}", media, cluster)
    report = ClusterBenchReport(
        setup=setup,
        variants=variants,
        cluster_address="local head (started and stopped by the bench)"
        if setup.ray_address is None
        else setup.ray_address,
        cpu_cores=os.cpu_count() or 1,
        gpus=gpus,
        load_before=load_before,
        load_after=os.getloadavg(),
    )
    report.notes = _notes(report)
    return report


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _run_variant(
    figures: VariantFigures, setup: ClusterBenchSetup, root: Path, media: Path, address: str | None
) -> None:
    """Serve the app (in-process, or on the cluster at ``address``), run the streams, measure.

    The figures of this run are added to ``figures``.
    """
    name = figures.name
    import httpx

    from pipeline.cluster.loading import TrackerSpec
    from pipeline.cluster.settings import ClusterSettings
    from pipeline.service import ServiceSettings, create_app
    from pipeline.service.engine import ModelEngine
    from tracker import Sam3VideoTracker

    model, device = setup.model, setup.device
    engine = ModelEngine(
        lambda: Sam3VideoTracker.from_pretrained(model, device=device),
        model_name=model,
        max_sessions=max(64, setup.streams),
        max_objects=setup.max_objects,
        worker_loader=TrackerSpec(model, device=device) if address is not None else None,
    )
    cluster = None
    if address is not None:
        cluster = ClusterSettings(
            address=address,
            workers=setup.workers,
            gpus_per_worker=setup.gpus_per_worker,
            cpus_per_worker=setup.cpus_per_worker,
            max_streams_per_worker=math.ceil(setup.streams / setup.workers),
        )
    settings = ServiceSettings(
        state_dir=root / f"state-{name}",
        max_streams=setup.streams,
        media_root=media,
        cluster=cluster,
    )
    figures.workers = {}
    started = time.monotonic()
    app = create_app(settings, engine=engine)
    with serve_in_thread(app) as running, httpx.Client(base_url=running.url, timeout=60) as client:
        wait_ready(client, setup.start_timeout_s)
        readers = []
        try:
            for index in range(setup.streams):
                created = create_stream(client, _stream_body(setup, name, index))
                reader = EventReader(running.url, str(created["id"]))
                reader.start()
                readers.append(reader)
            _wait_first_events(client, readers, setup.start_timeout_s)
            figures.startup_s.append(time.monotonic() - started)
            window_start = time.time() + setup.warmup_s
            window_end = window_start + setup.duration_s
            time.sleep(max(0.0, window_end - time.time()))  # the measurement itself
            for reader in readers:
                status = client.get(f"/streams/{reader.events.stream_id}").json()
                worker = str(status.get("worker") or "this process")
                figures.workers[worker] = figures.workers.get(worker, 0) + 1
        finally:
            for reader in readers:
                client.delete(f"/streams/{reader.events.stream_id}")
            for reader in readers:
                reader.close()
    _measure(figures, readers, window_start, window_end)


def _stream_body(setup: ClusterBenchSetup, variant: str, index: int) -> dict[str, Any]:
    return {
        "source": "camera.mp4",
        "classes": setup.classes,
        "threshold": setup.threshold,
        "max_objects": setup.max_objects,
        "video_identifier": f"bench-{variant}-{index}",
        "source_options": {"realtime": True},
    }


def _wait_first_events(client: Any, readers: list[EventReader], timeout: float) -> None:
    """Until every stream delivered a detection event; else an error with their statuses."""
    from pipeline.errors import ConfigError

    deadline = time.monotonic() + timeout
    for reader in readers:
        if not reader.first_event.wait(max(0.0, deadline - time.monotonic())):
            status = client.get(f"/streams/{reader.events.stream_id}").text[:400]
            problem = reader.events.error or status
            raise ConfigError(
                f"stream {reader.events.stream_id} sent no detections within {timeout:.0f} s: "
                f"{problem}"
            )


def _measure(figures: VariantFigures, readers: list[EventReader], start: float, end: float) -> None:
    """Add the events that arrived inside ``[start, end)`` to ``figures``."""
    figures.runs += 1
    figures.window_s += end - start
    if not figures.stream_frames:
        figures.stream_frames = [0] * len(readers)
    for index, reader in enumerate(readers):
        arrivals, grabbed = reader.snapshot()
        inside = [i for i, arrived in enumerate(arrivals) if start <= arrived < end]
        figures.stream_frames[index] += len(inside)
        figures.ages.extend(arrivals[i] - grabbed[i] for i in inside)
        epochs = reader.events.epochs
        figures.epoch_changes += sum(1 for a, b in itertools.pairwise(epochs) if a != b)


def _notes(report: ClusterBenchReport) -> list[str]:
    """What this run can and cannot show, in words, from the machine it ran on."""
    setup = report.setup
    notes: list[str] = []
    cluster = report.variants["cluster"]
    if "this process" in cluster.workers:
        notes.append(
            "WARNING: the cluster variant's streams report no worker: they ran in the front "
            "door's process, so its figures are not a cluster's"
        )
    if report.gpus < setup.workers:
        notes.append(
            f"this machine has {report.cpu_cores} CPU core(s) and {report.gpus} GPU(s): the "
            f"{setup.workers} worker(s) share the cores the in-process run had to itself, so no "
            "speed-up from more devices is possible here; a ratio near 1 says the Ray path "
            "(worker processes, results pulled back to the front door) costs little, below 1 is "
            "its cost, and above 1 is only one process's threads (the GIL) against several "
            "processes on the same cores; what the run does show is that the streams ran on the "
            "workers and their detections reached the front door with bounded frame age"
        )
    notes.append(MULTI_GPU_HINT)
    return notes


def format_report(report: ClusterBenchReport) -> str:
    """The table ``sam3-stream bench cluster`` prints (the JSON line follows it)."""
    setup = report.setup
    width, height = setup.size
    inproc, cluster = report.variants["in-process"], report.variants["cluster"]
    lines = [
        f"model {setup.model} on {setup.device}; {setup.streams} file stream(s) played as "
        f"cameras ({width}x{height} at {setup.fps} fps), classes {', '.join(setup.classes)}, "
        f"threshold {setup.threshold:g}, max {setup.max_objects} objects",
        f"cluster: {setup.workers} worker(s) x {setup.gpus_per_worker:g} GPU, "
        f"{setup.cpus_per_worker:g} CPU at {report.cluster_address}; machine: "
        f"{report.cpu_cores} CPU core(s), {report.gpus} GPU(s)",
        "load average (1/5/15 min): before "
        + " ".join(f"{v:.2f}" for v in report.load_before)
        + ", after "
        + " ".join(f"{v:.2f}" for v in report.load_after),
        f"windows: {setup.repeats} x {setup.duration_s:g} s per variant (order alternating), "
        f"each after {setup.warmup_s:g} s of warm-up; measured at the front door (SSE events; "
        "age = arrival - frame grab time)",
        "",
        f"{'':<28}{'in-process':>14}{'cluster':>14}{'cluster / in':>14}",
    ]

    def row(label: str, first: str, second: str, ratio: str = "") -> None:
        lines.append(f"{label:<28}{first:>14}{second:>14}{ratio:>14}")

    row(
        "aggregate frames/s",
        f"{inproc.fps:.2f}",
        f"{cluster.fps:.2f}",
        f"{report.ratio('fps'):.2f}",
    )
    row(
        "slowest stream frames/s",
        f"{min(inproc.per_stream_fps, default=0):.2f}",
        f"{min(cluster.per_stream_fps, default=0):.2f}",
    )
    for label, attribute in (
        ("frame age p50 (s)", "age_p50_s"),
        ("frame age p95 (s)", "age_p95_s"),
    ):
        row(
            label,
            f"{getattr(inproc, attribute):.3f}",
            f"{getattr(cluster, attribute):.3f}",
            f"{report.ratio(attribute):.2f}",
        )
    row("frame age max (s)", f"{inproc.age_max_s:.3f}", f"{cluster.age_max_s:.3f}")
    row("frames in window", str(inproc.frames), str(cluster.frames))
    row(
        "start to first events (s)",
        f"{np.mean(inproc.startup_s or [math.nan]):.1f}",
        f"{np.mean(cluster.startup_s or [math.nan]):.1f}",
    )
    row("epoch changes", str(inproc.epoch_changes), str(cluster.epoch_changes))
    placement = ", ".join(f"{worker}: {count}" for worker, count in sorted(cluster.workers.items()))
    lines += ["", f"streams per worker (cluster): {placement}", ""]
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)
