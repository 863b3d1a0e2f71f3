"""InferencePipeline's box/point prompts: ``prompts=``, ``add_prompt``, ``remove_object``.

Real tiny checkpoint, real video files and a real RTSP camera (GStreamer, killed and restarted).
Tiny random weights give random masks, so an object may be absent from some frames: tests look
for a prompted id over several frames and assert on ids and the registry's statistics.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from pipeline import InferencePipeline
from pipeline.errors import ConfigError
from tests.fixtures_rtsp import RtspServer
from tests.pipeline_helpers import EventRecorder, PipelineFactory, StandInModel
from tests.sources_helpers import write_test_clip
from tests.waiting import RecordingSink
from tracker import SessionRegistry, VisualPrompt

pytestmark = pytest.mark.timeout(180)

BOX = (10.0, 10.0, 60.0, 60.0)


@pytest.fixture
def clip(tmp_path: pathlib.Path) -> str:
    return str(write_test_clip(tmp_path / "clip.mp4", frames=12, size=(128, 96)))


def _ids(sink: RecordingSink, epoch: int | None = None) -> set[int]:
    return {
        int(i)
        for detections, frame in sink.received
        if epoch is None or frame.epoch == epoch
        for i in detections.tracker_id
    }


def test_initial_prompts_track_without_class_names(
    clip: str, tiny_tracker: Any, pipelines: PipelineFactory
) -> None:
    sink = RecordingSink()
    registry = SessionRegistry(tiny_tracker, max_objects=2)
    pipeline = pipelines(
        clip, [], sink, registry=registry, threshold=0.0,
        prompts=[VisualPrompt(boxes=[BOX], class_name="parcel")],
    )  # fmt: skip
    pipeline.start()
    assert len(sink.received) == 12
    assert _ids(sink) == {1}
    named = {name for det, _ in sink.received for name in det.data["class_name"]}
    assert named == {"parcel"}


def test_add_prompt_mid_stream_and_remove_object(
    clip: str, tiny_tracker: Any, pipelines: PipelineFactory
) -> None:
    registry = SessionRegistry(tiny_tracker, max_objects=3)
    added: list[int] = []
    pipeline: InferencePipeline

    def sink(detections: Any, frame: Any) -> None:
        if frame.frame_id == 3:
            added.extend(pipeline.add_prompt(VisualPrompt(points=[(40, 40)], labels=[1])))
        if frame.frame_id == 8:
            pipeline.remove_object(added[0])
        recorder(detections, frame)

    recorder = RecordingSink()
    pipeline = pipelines(clip, "shape", sink, registry=registry, threshold=0.0)
    pipeline.start()
    before = {int(i) for det, f in recorder.received if f.frame_id <= 3 for i in det.tracker_id}
    after = [{int(i) for i in det.tracker_id} for det, f in recorder.received if f.frame_id > 9]
    assert added and added[0] > max(before, default=0), "ids unique across concept and prompt"
    assert all(added[0] not in ids for ids in after), "removed: never seen again"
    with pytest.raises(ValueError, match="state"):
        pipeline.add_prompt(VisualPrompt(boxes=[BOX]))  # ended


def test_add_prompt_names_the_source_and_the_prompt_field(
    tmp_path: pathlib.Path, tiny_tracker: Any, pipelines: PipelineFactory
) -> None:
    clips = [
        str(write_test_clip(tmp_path / f"{n}.mp4", frames=4, size=(64, 48))) for n in ("a", "b")
    ]
    registry = SessionRegistry(tiny_tracker, max_objects=2)
    pipeline = pipelines(clips, "shape", RecordingSink(), registry=registry)
    with pytest.raises(ValueError, match=r"^source_id"):
        pipeline.add_prompt(VisualPrompt(boxes=[BOX]))
    with pytest.raises(ValueError, match=r"^source_id"):
        pipeline.add_prompt(VisualPrompt(boxes=[BOX]), source_id=5)
    with pytest.raises(ValueError, match=r"^tracker_id"):
        pipeline.add_prompt(VisualPrompt(boxes=[BOX], tracker_id=9), source_id=1)
    with pytest.raises(KeyError):
        pipeline.remove_object(9, source_id=0)
    assert pipeline.add_prompt(VisualPrompt(boxes=[BOX]), source_id=1) == [1]


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        ("box", "prompts: must be a VisualPrompt"),
        ([{"boxes": [BOX]}], "prompts[0]: must be a tracker.VisualPrompt"),
        ({3: [VisualPrompt(boxes=[BOX])]}, "prompts: no source 3"),
        ({"cam": [VisualPrompt(boxes=[BOX])]}, "prompts: keys are source ids"),
    ],
)
def test_bad_prompts_argument_is_a_config_error_naming_prompts(
    clip: str, prompts: Any, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        InferencePipeline.init(clip, [], print, registry=StandInModel(), prompts=prompts)
    assert refused.value.field == "prompts" and str(refused.value).startswith(message)


def test_empty_class_names_still_need_prompts(clip: str) -> None:
    with pytest.raises(ConfigError, match="class_names is empty"):
        InferencePipeline.init(clip, [], print, registry=StandInModel())


def test_a_registry_without_add_prompt_is_refused_for_prompts(clip: str) -> None:
    class NoPrompts:
        def process(self, *args: Any, **kwargs: Any) -> Any: ...

        def close(self, video_identifier: str) -> None: ...

    with pytest.raises(ConfigError, match="add_prompt"):
        InferencePipeline.init(
            clip, [], print, registry=NoPrompts(), prompts=VisualPrompt(boxes=[BOX])
        )


def test_an_initial_prompt_past_the_budget_fails_start_naming_it(
    clip: str, tiny_tracker: Any, pipelines: PipelineFactory
) -> None:
    registry = SessionRegistry(tiny_tracker, max_objects=1)
    pipeline = pipelines(
        clip, [], RecordingSink(), registry=registry,
        prompts=[VisualPrompt(boxes=[BOX]), VisualPrompt(boxes=[BOX])],
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"prompts\[1\] of source 0: max_objects"):
        pipeline.start()


def test_a_rerun_places_the_initial_prompts_again_under_new_ids(
    clip: str, tiny_tracker: Any, pipelines: PipelineFactory
) -> None:
    sink = RecordingSink()
    registry = SessionRegistry(tiny_tracker, max_objects=2)
    pipeline = pipelines(
        clip, [], sink, registry=registry, threshold=0.0, prompts=VisualPrompt(boxes=[BOX])
    )
    pipeline.start()
    pipeline.start()  # the file again, epoch 1: the first run's objects ended with it
    assert _ids(sink, epoch=0) == {1}
    assert _ids(sink, epoch=1) == {2}


@pytest.mark.rtsp
def test_a_camera_reconnect_re_prompts_the_object_from_its_last_box_keeping_its_id(
    rtsp_server_factory: Callable[..., RtspServer],
    tiny_tracker: Any,
    pipelines: PipelineFactory,
    fast_source_options: dict[str, Any],
) -> None:
    server = rtsp_server_factory(size=(128, 96), fps=15)
    events, sink = EventRecorder(), RecordingSink()
    registry = SessionRegistry(tiny_tracker, max_objects=2)
    pipeline = pipelines(
        server.url, [], sink, registry=registry, threshold=0.0,
        prompts=VisualPrompt(boxes=[BOX]), status_update_handlers=[events],
        **fast_source_options,
    )  # fmt: skip
    pipeline.start(use_main_thread=False)

    def seen_in(epoch: int, count: int) -> Callable[[list], bool]:
        return lambda results: (
            sum(1 for det, f in results if f.epoch == epoch and 1 in det.tracker_id) >= count
        )

    sink.wait_for(seen_in(0, 2), timeout=90)
    mark = len(events)
    server.kill()
    events.wait_state(0, "RECONNECTING", after=mark)
    server.restart()
    assert events.wait_state(0, "RUNNING", after=mark).payload["epoch"] == 1
    sink.wait_for(seen_in(1, 2), timeout=90)
    stats = registry.stats(pipeline.video_identifiers[0])
    pipeline.terminate()
    assert _ids(sink) == {1}, "the same object, the same id, before and after the reconnect"
    assert stats.reseeds >= 1 and stats.visual_objects == 1
