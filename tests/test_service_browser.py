"""The viewer page in a real browser: Debian's headless Chromium, driven by Playwright.

The stream runs on the real pipeline and the tiny checkpoint (a synthetic live source, so it never
ends), with an API key, and ICE restricted to loopback on both sides: the server offers only
127.0.0.1 and drops non-loopback candidates from the offer, and Chromium is allowed loopback
candidates (it leaves them out by default, like aioice). Every wait is on the page's own state
(``window.viewer``, the video element), never a sleep. The screenshot is kept in the artifacts
directory.

Needs ``/usr/bin/chromium`` (Debian package ``chromium``) and the ``playwright`` Python package;
``playwright install`` is not needed and not used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from pipeline.service import IceSettings, ModelEngine, ServiceSettings, create_app
from tests.service_helpers import RunningServer, start_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # WebRTC on loopback only: allow 127.0.0.1 candidates, no mDNS names instead of addresses.
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]
KEY = "browser-test-key"


def _require_browser() -> None:
    missing = []
    if shutil.which(CHROMIUM) is None:
        missing.append(f"{CHROMIUM} (Debian package chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if missing:
        reason = "the browser test needs " + " and ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must install {reason}")
        pytest.skip(reason)


@pytest.fixture
def browser_page(tmp_path) -> Iterator:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1024, "height": 720},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture
def server(tiny_tracker) -> Iterator[RunningServer]:
    engine = ModelEngine.from_tracker(tiny_tracker, model_name="tiny")
    settings = ServiceSettings(api_key=KEY, ice=IceSettings(loopback_only=True))
    running = start_server(create_app(settings, engine=engine), api_key=KEY)
    running.wait_booted()
    yield running
    running.stop()


def test_viewer_plays_annotated_video_and_receives_detections(server, browser_page, artifacts_dir):
    with server.client() as http:
        stream_id = http.post(
            "/streams",
            json={
                "source": "testpattern?fps=10&size=160x120",
                "classes": ["square"],
                "threshold": 0.0,
            },
        ).json()["id"]
    page = browser_page
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))

    # From the index, as a person would: the key in the URL is carried to the viewer link.
    page.goto(f"{server.url}/?api_key={KEY}")
    page.click(f'a[href*="/streams/{stream_id}/view"]')
    page.wait_for_url(f"**/streams/{stream_id}/view?api_key={KEY}")

    page.wait_for_function(
        "() => window.viewer.detections >= 3"
        " && document.getElementById('video').videoWidth > 0"
        " && document.getElementById('video').currentTime > 0",
        timeout=60_000,
    )
    started = page.evaluate("document.getElementById('video').currentTime")
    page.wait_for_function(
        f"() => document.getElementById('video').currentTime > {started} + 0.5", timeout=30_000
    )
    box = page.locator("#video").bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0
    video_size = page.evaluate(
        "(v => [v.videoWidth, v.videoHeight])(document.querySelector('video'))"
    )
    assert video_size == [160, 120]
    viewer = page.evaluate("window.viewer")
    assert viewer["state"] == "connected", (viewer, console)
    assert viewer["last"]["video_identifier"] == stream_id
    assert viewer["last"]["objects"] and viewer["last"]["objects"][0]["class_name"] == "square"
    assert server.manager.get(stream_id).webrtc.viewers == 1
    page.screenshot(path=str(artifacts_dir / "service-viewer.png"), full_page=True)


def _picture_position(page, frame_x: float, frame_y: float) -> dict[str, float]:
    """Where frame pixel (x, y) is drawn inside ``#video``: ``object-fit: contain`` letterboxes."""
    return page.evaluate(
        """([x, y]) => {
            const v = document.getElementById('video');
            const box = v.getBoundingClientRect();
            const scale = Math.min(box.width / v.videoWidth, box.height / v.videoHeight);
            return {
                x: (box.width - v.videoWidth * scale) / 2 + x * scale,
                y: (box.height - v.videoHeight * scale) / 2 + y * scale,
            };
        }""",
        [frame_x, frame_y],
    )


def test_clicking_the_video_tracks_a_new_object_and_its_button_removes_it(
    server, browser_page, artifacts_dir
):
    with server.client() as http:
        stream_id = http.post(
            "/streams",
            json={
                "source": "testpattern?fps=10&size=160x120",
                "classes": ["square"],
                "threshold": 1.0,  # no class objects: every object listed is a prompted one
                "max_objects": 4,
            },
        ).json()["id"]
    engine = server.manager.engine
    page = browser_page
    page.goto(f"{server.url}/streams/{stream_id}/view?api_key={KEY}")
    page.wait_for_function(
        "() => window.viewer.detections >= 1 && document.getElementById('video').videoWidth > 0",
        timeout=60_000,
    )
    box = page.locator("#video").bounding_box()
    assert box is not None
    picture_width = min(box["width"], box["height"] * 160 / 120)
    assert box["width"] - picture_width > 10, "the layout no longer letterboxes: move the click"

    # A click on frame pixel (40, 30) of the letterboxed picture: a positive point there.
    with page.expect_request("**/prompts") as clicked:
        page.locator("#video").click(position=_picture_position(page, 40, 30))
    sent = clicked.value.post_data_json
    assert sent["labels"] == [1] and sent["tracker_id"] is None
    assert sent["points"][0] == pytest.approx([40, 30], abs=1)
    page.wait_for_function("() => window.viewer.lastPrompt !== null", timeout=30_000)
    (object_id,) = page.evaluate("window.viewer.lastPrompt.tracker_ids")
    assert page.evaluate("window.viewer.target") == object_id

    # The new id arrives on the detections channel, under the prompt's class name.
    page.wait_for_function(
        f"() => window.viewer.last.objects.some(o => o.tracker_id === {object_id})",
        timeout=60_000,
    )
    arrived = page.evaluate(f"window.viewer.last.objects.find(o => o.tracker_id === {object_id})")
    assert arrived["class_name"] == "foreground"
    row = page.locator(f'#objects li[data-tracker-id="{object_id}"]')
    row.wait_for()
    assert f"#{object_id}" in row.inner_text()

    # Shift-click refines it with a negative point; a drag draws a box: a second object.
    with page.expect_request("**/prompts") as refined:
        page.locator("#video").click(position=_picture_position(page, 120, 90), modifiers=["Shift"])
    assert refined.value.post_data_json["labels"] == [0]
    assert refined.value.post_data_json["tracker_id"] == object_id
    page.click("#new-object")
    start = _picture_position(page, 80, 20)
    end = _picture_position(page, 150, 110)
    with page.expect_request("**/prompts") as dragged:
        page.mouse.move(box["x"] + start["x"], box["y"] + start["y"])
        page.mouse.down()
        page.mouse.move(box["x"] + end["x"], box["y"] + end["y"], steps=5)
        page.mouse.up()
    assert dragged.value.post_data_json["boxes"][0] == pytest.approx([80, 20, 150, 110], abs=1)
    page.wait_for_function(
        "() => window.viewer.created.length === 2 || window.viewer.promptError !== null",
        timeout=30_000,
    )
    assert page.evaluate("window.viewer.promptError") is None
    assert page.evaluate("window.viewer.created.length") == 2
    assert page.evaluate("window.viewer.target") != object_id
    assert engine.session_stats()[stream_id].visual_objects == 2
    page.screenshot(path=str(artifacts_dir / "service-viewer-prompts.png"), full_page=True)

    # Its remove button ends it on the server; it leaves the list and the detections.
    with page.expect_response("**/objects/*") as removed:
        row.locator("button.remove").click()
    assert removed.value.status == 204
    row.wait_for(state="detached")
    assert engine.session_stats()[stream_id].visual_objects == 1
    # Frames the model started after the removal (past the one that may have been in it).
    finished = server.manager.get(stream_id).pipeline.status().sources[0].last_frame_id
    page.wait_for_function(f"() => window.viewer.last.frame_id > {finished + 1}", timeout=60_000)
    assert object_id not in [o["tracker_id"] for o in page.evaluate("window.viewer.last.objects")]
    assert page.evaluate("window.viewer.promptError") is None
