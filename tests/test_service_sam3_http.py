"""``/sam3/*`` over HTTP on a real server and the tiny checkpoint: shapes, auth, limits, 422s.

One uvicorn server on 127.0.0.1 with the session's tiny tracker (the streams' model), an API key
and ``allow_private_network`` (the image URLs come from a loopback ``http.server``); a second one
without the flag for the URL policy. The tiny model's masks are meaningless: the tests check
shapes, formats, status codes and which field a 422 names, never what was found.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address as ip
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import supervision as sv

from pipeline.service import ModelEngine, ServiceSettings, create_app, images
from pipeline.service.body_limit import MAX_BODY_BYTES, MAX_IMAGE_BODY_BYTES
from pipeline.service.routes.sam3 import IMAGE_WORKERS
from tests.service_helpers import (
    RunningServer,
    collect_detections,
    iter_sse,
    scripted_app,
    start_server,
)
from tests.waiting import wait_until
from tracker.image import MAX_IMAGE_BYTES

KEY = "sam3-test-key"
WIDTH, HEIGHT = 96, 64


def _png(width: int = WIDTH, height: int = HEIGHT, *, seed: int = 0) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    image[10:40, 20:60] = (0, 0, 255)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def _blank_png(width: int, height: int) -> bytes:
    ok, encoded = cv2.imencode(".png", np.zeros((height, width), np.uint8))
    assert ok
    return encoded.tobytes()


PNG = _png()
B64 = base64.b64encode(PNG).decode()
IMAGE = {"type": "base64", "value": B64}


class _ImageHandler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
    hosts: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.hosts.append(str(self.headers.get("Host")))
        status, headers, body = self.routes.get(self.path, (404, {}, b"not found"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def image_server() -> Iterator[str]:
    """A loopback web server: ``/cat.png``, ``/missing`` (404), ``/hop`` (redirect), ``/text``."""
    _ImageHandler.routes = {
        "/cat.png": (200, {"Content-Type": "image/png"}, PNG),
        "/hop": (302, {"Location": "/cat.png"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/text": (200, {"Content-Type": "text/plain"}, b"hello, not an image"),
        "/to-v6": (302, {"Location": "http://[::1]:9/cat.png"}, b""),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=10)


def _serve(tracker: Any, *, allow_private_network: bool) -> RunningServer:
    engine = ModelEngine.from_tracker(tracker, model_name="tiny")
    settings = ServiceSettings(api_key=KEY, allow_private_network=allow_private_network)
    server = start_server(create_app(settings, engine=engine), api_key=KEY)
    server.wait_booted()
    return server


@pytest.fixture(scope="module")
def served(tiny_tracker) -> Iterator[RunningServer]:
    server = _serve(tiny_tracker, allow_private_network=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(served) -> Iterator[httpx.Client]:
    with served.client() as client:
        yield client


def _concept(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "image": IMAGE,
        "prompts": [{"type": "text", "text": "cat"}],
        "output_prob_thresh": 0.0,
    }
    body.update(overrides)
    return body


def _assert_polygons(masks: Any) -> None:
    assert isinstance(masks, list)
    for polygon in masks:
        assert len(polygon) >= 3
        for point in polygon:
            assert len(point) == 2 and all(isinstance(v, int) for v in point)


# --- shapes --------------------------------------------------------------------------------------


def test_concept_segment_answers_roboflows_shape_with_integer_polygons(http):
    body = _concept(
        prompts=[
            {"type": "text", "text": "cat"},
            {
                "type": "visual",
                "boxes": [{"x": 20, "y": 10, "width": 40, "height": 30}],
                "box_labels": [1],
            },
            {
                "text": "cat",
                "boxes": [{"x0": 20, "y0": 10, "x1": 60, "y1": 40}],
                "box_labels": [False],
            },
        ],
    )
    response = http.post("/sam3/concept_segment", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result) == {"prompt_results", "time"} and result["time"] >= 0
    echoes = [r["echo"] for r in result["prompt_results"]]
    assert [r["prompt_index"] for r in result["prompt_results"]] == [0, 1, 2]
    assert [e["type"] for e in echoes] == ["text", "visual", "text"]
    assert [e["num_boxes"] for e in echoes] == [0, 1, 1]
    assert echoes[0]["text"] == "cat" and echoes[1]["text"] is None
    predictions = [p for r in result["prompt_results"] for p in r["predictions"]]
    assert predictions, "threshold 0 keeps every query with a non-empty mask"
    for prediction in predictions:
        assert prediction["format"] == "polygon" and 0.0 <= prediction["confidence"] <= 1.0
        _assert_polygons(prediction["masks"])


def test_concept_segment_rle_decodes_to_the_image_size(http):
    response = http.post("/sam3/concept_segment", json=_concept(format="rle"))
    assert response.status_code == 200, response.text
    prediction = response.json()["prompt_results"][0]["predictions"][0]
    assert prediction["format"] == "rle"
    assert prediction["masks"]["size"] == [HEIGHT, WIDTH]
    mask = sv.rle_to_mask(prediction["masks"]["counts"], (WIDTH, HEIGHT))
    assert mask.shape == (HEIGHT, WIDTH) and mask.any()


def test_concept_segment_json_format_is_answered_as_polygon(http):
    response = http.post("/sam3/concept_segment", json=_concept(format="json"))
    assert response.status_code == 200, response.text
    assert response.json()["prompt_results"][0]["predictions"][0]["format"] == "polygon"


def test_base64_with_a_data_uri_prefix_gives_the_same_answer(http):
    plain = http.post("/sam3/concept_segment", json=_concept()).json()
    prefixed = http.post(
        "/sam3/concept_segment",
        json=_concept(image={"type": "BASE64", "value": "data:image/png;base64," + B64}),
    ).json()
    assert prefixed["prompt_results"] == plain["prompt_results"]


def test_unknown_top_level_fields_and_roboflow_ids_are_accepted(http):
    body = _concept(model_id="sam3/sam3_final", id="req-1", usage_billable=True, source="sdk")
    body["prompts"] = [{"type": None, "text": "cat"}]
    assert http.post("/sam3/concept_segment", json=body).status_code == 200


def test_embed_then_visual_segment_by_image_id_alone(http):
    embedded = http.post("/sam3/embed_image", json={"image": IMAGE, "image_id": "cat-1"})
    assert embedded.status_code == 200, embedded.text
    assert embedded.json()["image_id"] == "cat-1" and embedded.json()["time"] >= 0
    response = http.post(
        "/sam3/visual_segment",
        json={"image_id": "cat-1", "prompts": [{"points": [{"x": 40, "y": 25}]}]},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result) == {"predictions", "time"}
    (prediction,) = result["predictions"]
    assert prediction["format"] == "polygon"
    assert isinstance(prediction["masks"], list) and isinstance(prediction["confidence"], float)


def test_embed_without_an_id_gives_the_same_id_for_the_same_image(http):
    first = http.post("/sam3/embed_image", json={"image": IMAGE}).json()["image_id"]
    second = http.post("/sam3/embed_image", json={"image": IMAGE}).json()["image_id"]
    assert first == second and first


@pytest.mark.parametrize(
    "prompts",
    [
        {"prompts": [{"points": [{"x": 40, "y": 25, "positive": True}]}]},  # inference-sdk
        [{"points": [{"x": 40, "y": 25, "positive": True}]}],  # Roboflow's docs
        {"box": {"x": 40, "y": 25, "width": 30, "height": 20}},  # one prompt
    ],
    ids=["sdk-nested", "list", "single"],
)
def test_visual_segment_takes_prompts_in_every_shape_clients_send(http, prompts):
    body = {"image": IMAGE, "prompts": prompts, "multimask_output": False, "format": "json"}
    response = http.post("/sam3/visual_segment", json=body)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_visual_segment_answers_one_best_mask_per_prompt_in_rle(http):
    prompts = [
        {"points": [{"x": 40, "y": 25}, {"x": 5, "y": 5, "positive": False}]},
        {"box": {"x": 40, "y": 25, "width": 30, "height": 20}, "points": [{"x": 40, "y": 25}]},
    ]
    body = {"image": IMAGE, "prompts": prompts, "multimask_output": True, "format": "rle"}
    response = http.post("/sam3/visual_segment", json=body)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 2
    assert all(p["format"] == "rle" and p["masks"]["size"] == [HEIGHT, WIDTH] for p in predictions)


def test_image_from_a_url_is_fetched_when_the_server_allows_private_networks(http, image_server):
    for path in ("/cat.png", "/hop"):
        body = _concept(image={"type": "url", "value": image_server + path})
        response = http.post("/sam3/concept_segment", json=body)
        assert response.status_code == 200, (path, response.text)


# --- 422: each bad input names its field -----------------------------------------------------

BOX = {"x": 20, "y": 10, "width": 40, "height": 30}


def _locs(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert all("\n" not in item["msg"] for item in detail)
    return [item["loc"] for item in detail]


BAD_CONCEPT = [
    ("boxes-without-labels", {"prompts": [{"boxes": [BOX]}]}, ["body", "prompts", 0]),
    (
        "labels-length-mismatch",
        {"prompts": [{"boxes": [BOX], "box_labels": [1, 0]}]},
        ["body", "prompts", 0],
    ),
    (
        "zero-area-box",
        {"prompts": [{"boxes": [{**BOX, "width": 0}], "box_labels": [1]}]},
        ["body", "prompts", 0, "boxes", 0],
    ),
    (
        "box-outside-image",
        {"prompts": [{"text": "a"}, {"boxes": [BOX, {**BOX, "x": 90}], "box_labels": [1, 1]}]},
        ["body", "prompts", 1, "boxes", 1],
    ),
    ("no-prompts", {"prompts": []}, ["body", "prompts"]),
    ("prompts-missing", {"prompts": None}, ["body", "prompts"]),
    ("too-many-prompts", {"prompts": [{"text": "a"}] * 17}, ["body", "prompts"]),
    ("unknown-format", {"format": "mask"}, ["body", "format"]),
    (
        "text-over-token-limit",
        {"prompts": [{"text": "a"}, {"text": "cat " * 80}]},
        ["body", "prompts", 1],
    ),
    (
        "visual-without-boxes",
        {"prompts": [{"type": "visual", "text": "a"}]},
        ["body", "prompts", 0],
    ),
    ("threshold-above-one", {"output_prob_thresh": 1.5}, ["body", "output_prob_thresh"]),
    ("nms-below-zero", {"nms_iou_threshold": -0.1}, ["body", "nms_iou_threshold"]),
    ("unknown-model", {"model_id": "someone/fine-tune"}, ["body", "model_id"]),
    (
        "undecodable-image",
        {"image": {"type": "base64", "value": base64.b64encode(b"not an image").decode()}},
        ["body", "image"],
    ),
    ("malformed-base64", {"image": {"type": "base64", "value": "%%%"}}, ["body", "image", "value"]),
    ("numpy-image", {"image": {"type": "numpy", "value": "gASV"}}, ["body", "image", "type"]),
    ("pil-image", {"image": {"type": "pil", "value": "x"}}, ["body", "image", "type"]),
    ("unknown-image-type", {"image": {"type": "ftp", "value": "x"}}, ["body", "image", "type"]),
    ("image-missing", {"image": None}, ["body", "image"]),
]


@pytest.mark.parametrize(
    ("overrides", "loc"), [case[1:] for case in BAD_CONCEPT], ids=[c[0] for c in BAD_CONCEPT]
)
def test_concept_segment_bad_input_is_422_naming_the_field(http, overrides, loc):
    assert loc in _locs(http.post("/sam3/concept_segment", json=_concept(**overrides)))


def test_an_oversized_image_is_422_naming_image(http):
    # 8K is the pixel cap: a blank 9000x4000 PNG is small in bytes but over it.
    big = base64.b64encode(_blank_png(9000, 4000)).decode()
    response = http.post(
        "/sam3/concept_segment", json=_concept(image={"type": "base64", "value": big})
    )
    assert ["body", "image"] in _locs(response)
    assert "limit" in response.json()["detail"][0]["msg"]


BAD_VISUAL = [
    ("unknown-image-id", {"image": None, "image_id": "never-embedded"}, ["body", "image_id"]),
    ("no-image-no-id", {"image": None}, ["body", "image"]),
    ("empty-prompt", {"prompts": [{}]}, ["body", "prompts", 0]),
    ("no-prompts", {"prompts": []}, ["body", "prompts"]),
    ("null-prompts", {"prompts": None}, ["body", "prompts"]),
    (
        "zero-area-box",
        {"prompts": [{"box": {"x": 10, "y": 10, "width": 0, "height": 5}}]},
        ["body", "prompts", 0, "box"],
    ),
    (
        "point-outside",
        {"prompts": [{"points": [{"x": 1, "y": 1}]}, {"points": [{"x": 500, "y": 1}]}]},
        ["body", "prompts", 1, "points", 0],
    ),
    ("unknown-format", {"format": "mask"}, ["body", "format"]),
]


@pytest.mark.parametrize(
    ("overrides", "loc"), [case[1:] for case in BAD_VISUAL], ids=[c[0] for c in BAD_VISUAL]
)
def test_visual_segment_bad_input_is_422_naming_the_field(http, overrides, loc):
    body = {"image": IMAGE, "prompts": [{"points": [{"x": 40, "y": 25}]}], **overrides}
    assert loc in _locs(http.post("/sam3/visual_segment", json=body))


def test_embed_image_without_an_image_is_422_naming_image(http):
    assert ["body", "image"] in _locs(http.post("/sam3/embed_image", json={"image_id": "x"}))


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/missing", "HTTP 404"), ("/loop", "redirected more than"), ("/text", "decodable")],
)
def test_url_images_that_cannot_be_used_are_422_with_the_reason(http, image_server, path, reason):
    body = _concept(image={"type": "url", "value": image_server + path})
    response = http.post("/sam3/concept_segment", json=body)
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"][0]["msg"]
    assert image_server not in response.text  # the URL is never echoed


def test_a_url_image_over_the_byte_cap_is_refused(http, image_server, monkeypatch):
    monkeypatch.setattr("pipeline.service.images.MAX_IMAGE_BYTES", len(PNG) - 1)
    body = _concept(image={"type": "url", "value": image_server + "/cat.png"})
    response = http.post("/sam3/concept_segment", json=body)
    assert ["body", "image", "value"] in _locs(response)
    assert "byte limit" in response.json()["detail"][0]["msg"]


def _ipv4_loopback_counts_as_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand in a public web server with the loopback one (this machine has no other)."""
    real = images.internal_address_kind
    monkeypatch.setattr(
        images,
        "internal_address_kind",
        lambda address: None if str(address) == "127.0.0.1" else real(address),
    )


def test_every_redirect_hop_is_checked_against_the_policy(image_server, monkeypatch):
    _ipv4_loopback_counts_as_public(monkeypatch)
    assert images.fetch_image_url(image_server + "/hop", allow_private_network=False) == PNG
    with pytest.raises(images.ImageInputError, match="loopback") as refused:
        images.fetch_image_url(image_server + "/to-v6", allow_private_network=False)
    assert refused.value.loc == ("image", "value")


def test_the_fetch_connects_to_the_checked_address_with_the_urls_host_name(
    image_server, monkeypatch
):
    _ipv4_loopback_counts_as_public(monkeypatch)
    seen: list[str] = []
    monkeypatch.setattr(images, "resolve", lambda host: seen.append(host) or [ip("127.0.0.1")])
    port = image_server.rsplit(":", 1)[1]
    url = f"http://images.example:{port}/cat.png"
    assert images.fetch_image_url(url, allow_private_network=False) == PNG
    assert seen == ["images.example"]
    assert _ImageHandler.hosts[-1] == f"images.example:{port}"


def test_loopback_image_urls_are_refused_without_the_flag(tiny_tracker, image_server):
    server = _serve(tiny_tracker, allow_private_network=False)
    try:
        port = image_server.rsplit(":", 1)[1]
        with server.client() as client:
            responses = [
                client.post(
                    "/sam3/concept_segment", json=_concept(image={"type": "url", "value": url})
                )
                for url in (image_server + "/cat.png", f"http://[::1]:{port}/cat.png")
            ]
    finally:
        server.stop()
    for response in responses:
        assert ["body", "image", "value"] in _locs(response)
        message = response.json()["detail"][0]["msg"]
        assert "loopback" in message and "--allow-private-network" in message


# --- auth and body size ----------------------------------------------------------------------


def test_the_key_is_accepted_in_the_body_header_or_query_and_refused_otherwise(served):
    body = _concept()
    with httpx.Client(base_url=served.url, timeout=60) as bare:
        assert bare.post("/sam3/concept_segment", json={**body, "api_key": KEY}).status_code == 200
        assert bare.post(f"/sam3/concept_segment?api_key={KEY}", json=body).status_code == 200
        bearer = {"Authorization": f"Bearer {KEY}"}
        assert bare.post("/sam3/concept_segment", json=body, headers=bearer).status_code == 200
        for refused in ({**body, "api_key": "wrong"}, {**body, "api_key": None}, body):
            assert bare.post("/sam3/concept_segment", json=refused).status_code == 401
        # The body key is for the Roboflow-shaped endpoints only.
        stream = {"source": "testpattern", "classes": ["x"], "api_key": KEY}
        assert bare.post("/streams", json=stream).status_code == 401


def test_image_routes_take_bodies_over_the_default_cap_and_others_do_not(http):
    # A noise PNG of ~2 MB: over the 1 MiB cap of every other route.
    big = base64.b64encode(_png(900, 800, seed=1)).decode()
    assert len(big) > 2 * MAX_BODY_BYTES
    response = http.post(
        "/sam3/concept_segment", json=_concept(image={"type": "base64", "value": big})
    )
    assert response.status_code == 200, response.text
    assert _declared_only(served_url(http), "/streams", len(big)) == (413, MAX_BODY_BYTES)


def test_image_routes_refuse_bodies_over_their_own_cap(http):
    declared = MAX_IMAGE_BODY_BYTES + 1
    for path in ("/sam3/concept_segment", "/sam3/visual_segment", "/sam3/embed_image"):
        assert _declared_only(served_url(http), path, declared) == (413, MAX_IMAGE_BODY_BYTES)


def test_the_image_body_cap_fits_the_largest_image_in_base64():
    assert MAX_IMAGE_BODY_BYTES >= -(-MAX_IMAGE_BYTES * 4 // 3) + 64 * 1024


def served_url(http: httpx.Client) -> str:
    return str(http.base_url).rstrip("/")


def _declared_only(url: str, path: str, length: int) -> tuple[int, int]:
    """POST headers declaring ``length`` bytes, no body: (status, cap the 413 names).

    The server answers a declared length over its cap without reading, and closes; sending the
    body as well races that close (the client may see a reset instead of the answer).
    """
    host, port = url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("POST", path)
        for name, value in (
            ("Authorization", f"Bearer {KEY}"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(length)),
        ):
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        detail = json.loads(response.read())["detail"]
    finally:
        connection.close()
    return response.status, int(detail.rsplit("at most ", 1)[1].split()[0])


def test_image_routes_answer_503_while_the_model_loads():
    release = threading.Event()
    engine = ModelEngine(lambda: release.wait(30), model_name="slow")
    server = start_server(scripted_app(engine=engine))
    try:
        with server.client() as client:
            response = client.post("/sam3/concept_segment", json=_concept())
            assert response.status_code == 503 and response.headers["Retry-After"]
    finally:
        release.set()
        server.stop()


# --- one model for streams and images ----------------------------------------------------------


def test_image_routes_use_the_streams_loaded_model(served):
    engine = served.app.state.service.engine
    assert engine.concept_segmenter.detector is engine.tracker.model.detector_model
    assert engine.interactive_segmenter.tracker is engine.tracker


def test_image_requests_run_beside_a_live_stream(http):
    stream = {"source": "testpattern?fps=5&size=64x48", "classes": ["shape"], "threshold": 0.0}
    created = http.post("/streams", json=stream)
    assert created.status_code == 201, created.text
    stream_id = created.json()["id"]
    try:
        with http.stream("GET", f"/streams/{stream_id}/events") as events:
            records = iter_sse(events)
            first = collect_detections(records, 1)[0]
            assert http.post("/sam3/concept_segment", json=_concept()).status_code == 200
            later = collect_detections(records, 1, lambda r: r["frame_id"] > first["frame_id"])
        assert later, "the stream kept running after the image request"
    finally:
        assert http.delete(f"/streams/{stream_id}").status_code == 204


def test_a_model_failure_is_500_with_a_json_detail_and_no_traceback(served, http, monkeypatch):
    class Broken:
        def segment_image(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("CUDA error: device-side assert at /secret/path.py:12")

    monkeypatch.setattr(served.app.state.service.engine, "_concept", Broken())
    response = http.post("/sam3/concept_segment", json=_concept())
    assert response.status_code == 500
    assert response.json() == {"detail": "the model failed on this image: RuntimeError"}


def test_image_requests_queue_without_holding_the_threadpool_the_stream_routes_use(served, http):
    """While the model is busy, image requests past ``IMAGE_WORKERS`` wait as coroutines."""
    engine = served.app.state.service.engine
    extra = 3
    with ThreadPoolExecutor(IMAGE_WORKERS + extra) as pool:
        with engine.tracker.exclusive():  # a frame in flight, as long as the test says
            posts = [
                pool.submit(http.post, "/sam3/concept_segment", json=_concept())
                for _ in range(IMAGE_WORKERS + extra)
            ]
            wait_until(
                lambda: _queued(served) == (IMAGE_WORKERS, extra), what="image requests queued"
            )
            assert http.get("/streams").status_code == 200
        assert [post.result().status_code for post in posts] == [200] * (IMAGE_WORKERS + extra)


def _queued(served: RunningServer) -> tuple[int, int]:
    limiter = getattr(served.app.state, "sam3_image_workers", None)
    if limiter is None:
        return (0, 0)
    statistics = limiter.statistics()
    return statistics.borrowed_tokens, statistics.tasks_waiting
