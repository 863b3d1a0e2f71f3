"""Roboflow workflows of SAM3's image blocks: compiled, run over ``POST /workflows/run`` on a real
server, and per frame inside ``InferencePipeline.init_with_workflow``, on the tiny checkpoint.

The tiny model's weights are random (scores about 0.25), so the specifications set
``threshold: 0`` where a test needs detections; masks mean nothing, the shapes are exact.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import supervision as sv

from pipeline import InferencePipeline
from pipeline.compat.image_workflow import (
    MAX_BOX_PROMPTS,
    Segmenters,
    WorkflowImage,
    compile_image_workflow,
    is_image_workflow,
)
from pipeline.compat.workflow import WorkflowError
from pipeline.errors import ConfigError
from pipeline.service import ModelEngine, ServiceSettings, create_app
from tests.pipeline_helpers import StandInModel
from tests.service_helpers import RunningServer, start_server
from tests.sources_helpers import write_test_clip
from tests.waiting import RecordingSink
from tracker import Sam3VideoTracker

pytestmark = pytest.mark.timeout(240)

KEY = "workflow-test-key"
WIDTH, HEIGHT = 96, 64

DOC_SPEC: dict[str, Any] = {
    "version": "1.0",
    "inputs": [{"type": "InferenceImage", "name": "image"}],
    "steps": [
        {
            "type": "roboflow_core/sam3@v1",
            "name": "sam",
            "images": "$inputs.image",
            "class_names": "dog",
        },
        {
            "type": "roboflow_core/polygon_visualization@v1",
            "name": "polygon_visualization",
            "image": "$inputs.image",
            "predictions": "$steps.sam.predictions",
        },
    ],
    "outputs": [
        {
            "type": "JsonField",
            "name": "output",
            "coordinates_system": "own",
            "selector": "$steps.polygon_visualization.image",
        }
    ],
}
"""The seed's hosted workflow example, verbatim."""


def _spec(threshold: float | None = 0.0, class_names: Any = "dog", **outputs: str) -> dict:
    """The doc spec with a threshold (0: the tiny model's detections kept) and extra outputs."""
    spec = copy.deepcopy(DOC_SPEC)
    spec["steps"][0]["class_names"] = class_names
    if threshold is not None:
        spec["steps"][0]["threshold"] = threshold
    for name, selector in outputs.items():
        spec["outputs"].append({"type": "JsonField", "name": name, "selector": selector})
    return spec


def _interactive_spec(**fields: Any) -> dict:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": "roboflow_core/sam3_interactive@v1",
                "name": "clicks",
                "images": "$inputs.image",
                **fields,
            }
        ],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.clicks.predictions"}
        ],
    }


def _image() -> np.ndarray:
    """(64, 96, 3) uint8 BGR: two flat shapes on a gradient (few polygons per mask)."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[:] = np.linspace(0, 200, WIDTH, dtype=np.uint8)[None, :, None]
    cv2.rectangle(image, (10, 10), (40, 40), (0, 0, 255), -1)
    cv2.circle(image, (70, 35), 14, (0, 255, 0), -1)
    return image


def _b64(image: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return base64.b64encode(encoded.tobytes()).decode()


def _decode(value: str) -> np.ndarray:
    array = np.frombuffer(base64.b64decode(value), np.uint8)
    return cv2.imdecode(array, cv2.IMREAD_COLOR)


@pytest.fixture(scope="module")
def served(tiny_tracker: Sam3VideoTracker) -> Iterator[RunningServer]:
    engine = ModelEngine.from_tracker(tiny_tracker, model_name="tiny")
    settings = ServiceSettings(api_key=KEY, allow_private_network=False)
    server = start_server(create_app(settings, engine=engine), api_key=KEY)
    server.wait_booted()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(served: RunningServer) -> Iterator[httpx.Client]:
    with served.client() as client:
        client.timeout = httpx.Timeout(120.0)
        yield client


def _run(http: httpx.Client, spec: dict, image: np.ndarray | None = None, **extra: Any) -> Any:
    body = {
        # What inference-sdk 1.8.3 sends besides the specification (captured on the wire).
        "api_key": KEY,
        "use_cache": True,
        "enable_profiling": False,
        "inputs": {
            "image": {"type": "base64", "value": _b64(_image() if image is None else image)}
        },
        "specification": spec,
        **extra,
    }
    return http.post("/workflows/run", json=body)


# --- over HTTP ------------------------------------------------------------------------------------


def test_doc_workflow_returns_a_base64_image_that_opencv_decodes(http):
    response = _run(http, _spec(threshold=None))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"outputs", "profiler_trace"} and body["profiler_trace"] is None
    [outputs] = body["outputs"]
    assert set(outputs) == {"output"}
    assert outputs["output"]["type"] == "base64" and outputs["output"]["video_metadata"] is None
    assert _decode(outputs["output"]["value"]).shape == (HEIGHT, WIDTH, 3)


def test_predictions_are_serialised_as_roboflow_instance_segmentation(http):
    response = _run(http, _spec(class_names="dog,cat", predictions="$steps.sam.predictions"))
    assert response.status_code == 200, response.text
    serialised = response.json()["outputs"][0]["predictions"]
    assert serialised["image"] == {"width": WIDTH, "height": HEIGHT}
    predictions = serialised["predictions"]
    assert predictions, "threshold 0 keeps the tiny model's detections"
    for prediction in predictions:
        assert set(prediction) == {
            "width",
            "height",
            "x",
            "y",
            "confidence",
            "class_id",
            "points",
            "class",
            "detection_id",
            "parent_id",
        }
        assert (prediction["class"], prediction["class_id"]) in {("dog", 0), ("cat", 1)}
        assert prediction["parent_id"] == "image" and len(prediction["points"]) >= 3
        xs = [point["x"] for point in prediction["points"]]
        assert prediction["width"] == max(xs) - min(xs)
        assert prediction["x"] == pytest.approx((max(xs) + min(xs)) / 2)
    assert {p["class_id"] for p in predictions} <= {0, 1}


def test_interactive_points_give_foreground_with_class_id_minus_one(http):
    spec = _interactive_spec(points=[{"x": 20, "y": 20, "positive": True}, [70, 35, False]])
    response = _run(http, spec)
    assert response.status_code == 200, response.text
    predictions = response.json()["outputs"][0]["predictions"]["predictions"]
    assert predictions, "threshold 0.0 (the block's default) keeps the best proposal"
    assert {(p["class"], p["class_id"]) for p in predictions} == {("foreground", -1)}


def test_star_selector_and_excluded_fields(http):
    spec = _spec(everything="$steps.sam.*")
    response = _run(http, spec, excluded_fields=["output"])
    assert response.status_code == 200, response.text
    [outputs] = response.json()["outputs"]
    assert set(outputs) == {"everything"} and set(outputs["everything"]) == {"predictions"}


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda s: s["steps"].append({"type": "roboflow_core/yolo@v1", "name": "det"}),
            "roboflow_core/yolo@v1",
        ),
        (lambda s: s["steps"][0].update(class_names=[]), "class_names is empty"),
        (lambda s: s["steps"][0].update(colour="red"), "unsupported field(s) colour"),
        (lambda s: s["steps"][1].update(predictions="$steps.nope.predictions"), "'nope'"),
        (lambda s: s["steps"][0].update(model_id="someone/else"), "model_id 'someone/else'"),
        (lambda s: s["outputs"][0].update(selector="$steps.sam.masks"), "no output 'masks'"),
        (lambda s: s["steps"][0].update(threshold=3), "threshold"),
    ],
)
def test_unsupported_workflows_are_422_naming_the_part(http, edit, named):
    spec = _spec()
    edit(spec)
    response = _run(http, spec)
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", "specification"] and named in detail["msg"]


def test_bad_image_inputs_are_422_naming_the_input(http):
    body = {"specification": _spec(), "inputs": {"image": {"type": "base64", "value": "@@"}}}
    response = http.post("/workflows/run", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "inputs", "image", "value"]
    body["inputs"] = {"image": {"type": "base64", "value": base64.b64encode(b"nope").decode()}}
    response = http.post("/workflows/run", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "inputs", "image"]
    body["inputs"] = {"image": {"type": "numpy", "value": "x"}}
    assert http.post("/workflows/run", json=body).json()["detail"][0]["loc"][-1] == "type"
    body["inputs"] = {}
    response = http.post("/workflows/run", json=body)
    assert response.status_code == 422 and "missing" in response.json()["detail"][0]["msg"]


def test_url_images_follow_the_private_network_policy(http):
    body = {
        "specification": _spec(),
        "inputs": {"image": {"type": "url", "value": "http://127.0.0.1:9/dog.jpeg"}},
    }
    response = http.post("/workflows/run", json=body)
    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", "inputs", "image", "value"] and "loopback" in detail["msg"]


def test_a_batch_of_images_gives_one_output_dict_each(http):
    image = {"type": "base64", "value": _b64(_image())}
    body = {"specification": _spec(threshold=None), "inputs": {"image": [image, image]}}
    response = http.post("/workflows/run", json=body)
    assert response.status_code == 200, response.text
    assert [set(o) for o in response.json()["outputs"]] == [{"output"}, {"output"}]


def test_the_body_api_key_is_checked(served):
    with httpx.Client(base_url=served.url, timeout=60) as bare:
        body = {"api_key": "wrong", "specification": _spec(), "inputs": {}}
        assert bare.post("/workflows/run", json=body).status_code == 401


# --- compiled and run in process -----------------------------------------------------------------


def test_visualisation_draws_the_polygons(tiny_tracker):
    plan = compile_image_workflow(_spec(predictions="$steps.sam.predictions"))
    image = _image()
    outputs = plan.run(image, Segmenters.from_tracker(tiny_tracker))
    detections, drawn = outputs["predictions"], outputs["output"]
    assert isinstance(drawn, WorkflowImage) and drawn.numpy_image.shape == image.shape
    assert len(detections) > 0 and not np.array_equal(drawn.numpy_image, image)
    assert detections.mask is not None and detections.mask.shape == (len(detections), HEIGHT, WIDTH)
    assert (image == _image()).all(), "copy_image (default): the input is left as it was"


def test_boxes_chain_from_a_concept_step_keeps_its_classes(tiny_tracker):
    segmenters = Segmenters.from_tracker(tiny_tracker)
    found = compile_image_workflow(_spec(predictions="$steps.sam.predictions")).run(
        _image(), segmenters
    )["predictions"]
    # Only the best instance's polygons chain on: the tiny model finds dozens of specks.
    spec = _spec(threshold=float(found.confidence.max()))
    spec["steps"].append(
        {
            "type": "roboflow_core/sam3_interactive@v1",
            "name": "refine",
            "images": "$inputs.image",
            "boxes": "$steps.sam.predictions",
        }
    )
    spec["outputs"] = [
        {"type": "JsonField", "name": "boxes", "selector": "$steps.sam.predictions"},
        {"type": "JsonField", "name": "refined", "selector": "$steps.refine.predictions"},
    ]
    outputs = compile_image_workflow(spec).run(_image(), segmenters)
    assert 0 < len(outputs["boxes"]) <= MAX_BOX_PROMPTS
    assert len(outputs["refined"]) > 0
    assert set(outputs["refined"].data["class_name"]) <= {"dog"}
    assert set(outputs["refined"].class_id.tolist()) <= {0}


def test_compile_resolves_parameters_and_splits_class_names():
    spec = _spec(class_names="$inputs.classes")
    spec["inputs"].append({"type": "WorkflowParameter", "name": "classes", "default_value": "a"})
    assert compile_image_workflow(spec).class_names == ("a",)
    plan = compile_image_workflow(spec, parameters={"classes": "dog,cat"})
    assert plan.class_names == ("dog", "cat") and plan.image_input == "image"
    assert is_image_workflow(spec) and is_image_workflow(json.dumps(spec))
    assert not is_image_workflow({"steps": [{"type": "roboflow_core/sam3_video@v1"}]})


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        (_interactive_spec(), "give points and/or boxes"),
        (_interactive_spec(points=[{"x": "a", "y": 1}]), "points[0]"),
        (_interactive_spec(points=[[1, 2]], boxes="$inputs.image"), "boxes must select"),
        (_interactive_spec(points=[[1, 2]], multimask_output="yes"), "multimask_output"),
    ],
)
def test_interactive_step_errors_name_the_field(spec, named):
    with pytest.raises(WorkflowError, match=named.replace("[", r"\[").replace("]", r"\]")):
        compile_image_workflow(spec)


def test_video_and_image_blocks_do_not_mix():
    spec = _spec()
    spec["steps"].append(
        {"type": "roboflow_core/sam3_video@v1", "name": "v", "images": "$inputs.image"}
    )
    with pytest.raises(WorkflowError, match="sam3_video@v1"):
        compile_image_workflow(spec)


# --- per frame in InferencePipeline ------------------------------------------------------------


def test_init_with_workflow_runs_image_blocks_on_every_frame(tmp_path: Path, tiny_tracker):
    clip = write_test_clip(tmp_path / "clip.mp4", frames=3, size=(WIDTH, HEIGHT))
    sink = RecordingSink()
    spec = _spec(predictions="$steps.sam.predictions")
    pipeline = InferencePipeline.init_with_workflow(str(clip), spec, sink, tracker=tiny_tracker)
    pipeline.start()
    assert len(sink.received) == 3
    for result, frame in sink.received:
        assert set(result) == {"output", "predictions"}
        detections = result["predictions"]
        assert isinstance(detections, sv.Detections) and detections.tracker_id is None
        assert set(detections.data["parent_id"]) <= {"image"}
        if len(detections):
            assert set(detections.data["class_name"]) == {"dog"}
            assert detections.data["prediction_type"][0] == "instance-segmentation"
        assert result["output"].numpy_image.shape == frame.image.shape


def test_init_with_workflow_image_blocks_need_the_model(tmp_path: Path):
    clip = write_test_clip(tmp_path / "clip.mp4", frames=1)
    with pytest.raises(ConfigError, match="needs the SAM3 model"):
        InferencePipeline.init_with_workflow(str(clip), _spec(), registry=StandInModel())


# --- the seed's hosted workflow example, through Roboflow's client --------------------------------

SDK_WORKFLOW_EXAMPLE = r"""
import base64, json, sys
import cv2 as cv
import numpy as np
from inference_sdk import InferenceHTTPClient

API, IMG, KEY, SPEC, OUT = sys.argv[1:6]
client = InferenceHTTPClient(api_url=API, api_key=KEY)
result = client.run_workflow(
    specification=json.loads(SPEC), images={"image": IMG + "/dog.jpeg"}, use_cache=True
)
img = cv.imdecode(np.frombuffer(base64.b64decode(result[0]["output"]), np.uint8), cv.IMREAD_COLOR)
cv.imwrite(OUT, img)
print(json.dumps({"shape": list(img.shape)}))
"""


@pytest.fixture(scope="module")
def sdk_python() -> str:
    from tests.sdk_helpers import require_sdk_python

    return require_sdk_python()


@pytest.fixture(scope="module")
def dog_photo() -> Iterator[tuple[str, bytes]]:
    """A loopback web server with a 1920x1080 JPEG at ``/dog.jpeg`` (the example's size)."""
    rng = np.random.default_rng(1)
    image = cv2.resize(rng.integers(0, 255, (27, 48, 3), dtype=np.uint8), (1920, 1080))
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    photo = encoded.tobytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            found = self.path == "/dog.jpeg"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(photo) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(photo)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", photo
    server.shutdown()
    thread.join(timeout=10)


def test_sdk_run_workflow_example_runs_unchanged(
    sdk_python, dog_photo, tiny_model_dir, tmp_path_factory
):
    """The doc's workflow, verbatim (threshold 0.5), via ``client.run_workflow``: the drawn
    image decodes with OpenCV at the photo's size and differs from it (polygons drawn)."""
    from tests.sdk_helpers import make_confident

    confident = make_confident(tiny_model_dir, tmp_path_factory.mktemp("wf-confident") / "tiny")
    tracker = Sam3VideoTracker.from_pretrained(str(confident), device="cpu")
    engine = ModelEngine.from_tracker(tracker, model_name="tiny-confident")
    server = start_server(create_app(ServiceSettings(api_key=KEY), engine=engine))
    server.wait_booted()
    photos, photo = dog_photo
    drawn_path = tmp_path_factory.mktemp("wf-drawn") / "drawn.png"
    try:
        done = subprocess.run(
            [
                sdk_python,
                "-c",
                SDK_WORKFLOW_EXAMPLE,
                *(server.url, photos, KEY, json.dumps(DOC_SPEC), str(drawn_path)),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PYTHONPATH": ""},
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["shape"] == [1080, 1920, 3]
    # Our JPEG of the undrawn photo, to tell drawn outlines from re-encoding noise.
    original = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    undrawn = cv2.imdecode(cv2.imencode(".jpg", original)[1], cv2.IMREAD_COLOR)
    drawn = cv2.imread(str(drawn_path))
    changed = (np.abs(drawn.astype(int) - undrawn.astype(int)).max(axis=2) > 60).sum()
    assert changed > 1000, "the polygons are drawn on the image"
