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
