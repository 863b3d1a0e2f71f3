"""The seed's hosted examples against our server, with only ``api_url`` changed.

``inference-sdk`` 1.8.3 (Roboflow's client, from PyPI) pins numpy, OpenCV, supervision and Pillow
below what this project runs, so it lives in its own virtual environment, ``.venv-sdk``, made by
``.ci/setup --test``; its calls run there, in a subprocess, against a real server of ours on
127.0.0.1. Without that environment these tests skip with the command that makes it, except in
CI, where they fail. ``SAM3_STREAM_SDK_PYTHON`` may point at another interpreter that has it.

The model is the tiny checkpoint made confident (every query scores ~0.9999, masks stay
non-trivial), saved to disk and loaded with ``from_pretrained``: the examples use Roboflow's
default threshold 0.5, which the random tiny weights (~0.25) never reach, and example 3 indexes
``predictions[0]``. The images are 1920x1080, so the examples' boxes and points lie inside them.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np
import pytest
import requests

from pipeline.service import ModelEngine, ServiceSettings, create_app
from tests.sdk_helpers import SDK_TIMEOUT_S, make_confident, require_sdk_python
from tests.service_helpers import RunningServer, start_server
from tracker import Sam3VideoTracker

KEY = "roboflow-style-key"


@pytest.fixture(scope="module")
def sdk_python() -> str:
    return require_sdk_python()


@pytest.fixture(scope="module")
def confident_tracker(tiny_model_dir, tmp_path_factory) -> Sam3VideoTracker:
    directory = make_confident(tiny_model_dir, tmp_path_factory.mktemp("confident") / "tiny")
    return Sam3VideoTracker.from_pretrained(str(directory), device="cpu", max_num_objects=3)


def _photo(seed: int) -> bytes:
    """A 1920x1080 3-channel JPEG (the size of the examples' images)."""
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 255, (27, 48, 3), dtype=np.uint8), (1920, 1080))
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


PHOTOS = {"/dog.jpeg": _photo(1), "/people-walking.jpg": _photo(2)}


class _PhotoHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = PHOTOS.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@pytest.fixture(scope="module")
def photos() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PhotoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=10)


def _serve(tracker: Sam3VideoTracker, *, allow_private_network: bool) -> RunningServer:
    engine = ModelEngine.from_tracker(tracker, model_name="tiny-confident")
    settings = ServiceSettings(api_key=KEY, allow_private_network=allow_private_network)
    server = start_server(create_app(settings, engine=engine))
    server.wait_booted()
    return server


@pytest.fixture(scope="module")
def served(confident_tracker) -> Iterator[RunningServer]:
    server = _serve(confident_tracker, allow_private_network=True)
    yield server
    server.stop()


SDK_EXAMPLES = r"""
import json, sys
from inference_sdk import InferenceConfiguration, InferenceHTTPClient
from inference_sdk.http.errors import HTTPCallErrorError

API, IMG, KEY = sys.argv[1:4]
out = {}
client = InferenceHTTPClient(api_url=API, api_key=KEY)

# Example 2, verbatim but for api_url (the SDK fetches the URL itself and sends base64).
r = client.sam3_concept_segment(
    inference_input=IMG + "/people-walking.jpg",
    prompts=[
        {"type": "text", "text": "person"},
        {"type": "visual", "boxes": [{"x": 1409, "y": 705, "width": 112, "height": 183}],
         "box_labels": [1]},
    ],
    output_prob_thresh=0.5,
)
out["concept"] = r
r = client.sam3_visual_segment(
    inference_input=IMG + "/people-walking.jpg",
    prompts=[{"points": [{"x": 1465, "y": 796, "positive": True}]}],
    multimask_output=False,
)
out["visual"] = r
out["embed"] = client.sam3_embed_image(inference_input=IMG + "/dog.jpeg", image_id="dog")

header = InferenceHTTPClient(api_url=API, api_key=KEY)
header.configure(InferenceConfiguration(api_key_transport="header"))
out["header"] = header.sam3_concept_segment(
    inference_input=IMG + "/dog.jpeg", prompts=[{"text": "dog"}], format="rle"
)

try:
    InferenceHTTPClient(api_url=API, api_key="wrong").sam3_concept_segment(
        inference_input=IMG + "/dog.jpeg", prompts=[{"text": "dog"}]
    )
    out["wrong_key"] = None
except HTTPCallErrorError as error:
    out["wrong_key"] = error.status_code

try:
    client.sam3_concept_segment(inference_input=IMG + "/dog.jpeg", prompts=[], format="mask")
    out["bad_input"] = None
except HTTPCallErrorError as error:
    out["bad_input"] = [error.status_code, str(error.api_message)]

print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def sdk_results(sdk_python, served, photos) -> dict[str, Any]:
    """Every SDK call of the examples, run once in the SDK's own interpreter."""
    done = subprocess.run(
        [sdk_python, "-c", SDK_EXAMPLES, served.url, photos, KEY],
        capture_output=True,
        text=True,
        timeout=SDK_TIMEOUT_S,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def test_sdk_concept_segment_example_runs_unchanged(sdk_results):
    result = sdk_results["concept"]
    prompt_results = result["prompt_results"]
    assert [p["echo"]["type"] for p in prompt_results] == ["text", "visual"]
    assert prompt_results[1]["echo"]["num_boxes"] == 1
    assert prompt_results[0]["echo"]["text"] == "person"
    for prompt_result in prompt_results:
        assert prompt_result["predictions"], "the confident checkpoint passes threshold 0.5"
        for prediction in prompt_result["predictions"]:
            assert prediction["confidence"] >= 0.5 and prediction["format"] == "polygon"


def test_sdk_visual_segment_example_gets_one_polygon_prediction(sdk_results):
    predictions = sdk_results["visual"]["predictions"]
    assert len(predictions) == 1 and predictions[0]["format"] == "polygon"
    assert isinstance(predictions[0]["masks"], list)


def test_sdk_embed_image_returns_the_id_it_was_given(sdk_results):
    assert sdk_results["embed"]["image_id"] == "dog"


def test_sdk_with_the_key_in_a_header_works(sdk_results):
    (result,) = sdk_results["header"]["prompt_results"]
    assert result["predictions"][0]["format"] == "rle"
    assert result["predictions"][0]["masks"]["size"] == [1080, 1920]


def test_sdk_errors_surface_status_and_field(sdk_results):
    assert sdk_results["wrong_key"] == 401
    status, message = sdk_results["bad_input"]
    assert status == 422 and "prompts" in message and "format" in message


def test_raw_requests_example_polygon_draws_with_opencv(served, photos):
    """Example 3, verbatim but for the URLs: the server fetches the image itself."""
    api_key = KEY
    response = requests.post(
        f"{served.url}/sam3/concept_segment?api_key={api_key}",
        headers={"Content-Type": "application/json"},
        json={
            "format": "polygon",
            "image": {"type": "url", "value": photos + "/dog.jpeg"},
            "prompts": [{"text": "dog"}],
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    img = cv2.imdecode(
        np.asarray(bytearray(requests.get(photos + "/dog.jpeg", timeout=30).content), np.uint8),
        -1,
    )
    assert img is not None
    before = img.copy()
    polygon_arr = np.array(response.json()["prompt_results"][0]["predictions"][0]["masks"][0])
    cv2.polylines(img, [polygon_arr], True, (0, 200, 200), 3)
    assert img.shape == (1080, 1920, 3) and not np.array_equal(img, before)


def test_raw_requests_example_is_refused_without_the_private_network_flag(
    confident_tracker, photos
):
    server = _serve(confident_tracker, allow_private_network=False)
    try:
        response = requests.post(
            f"{server.url}/sam3/concept_segment?api_key={KEY}",
            json={
                "format": "polygon",
                "image": {"type": "url", "value": photos + "/dog.jpeg"},
                "prompts": [{"text": "dog"}],
            },
            timeout=60,
        )
    finally:
        server.stop()
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "image", "value"] and "loopback" in error["msg"]
