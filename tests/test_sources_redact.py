"""Credentials in URLs are redacted in every string that leaves a source."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from pipeline.redact import RedactingFilter, redact
from pipeline.sources import SourceState, make_source
from tests.service_helpers import scripted_app, start_server
from tests.sources_helpers import StateRecorder, free_port
from tests.waiting import wait_until


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:hunter2@10.0.0.7:554/s", "rtsp://admin:***@10.0.0.7:554/s"),
        ("rtsp://admin:p@ss:w@rd@cam/s", "rtsp://admin:***@cam/s"),
        ("rtmp://APIKEY123@live.example/app", "rtmp://***@live.example/app"),
        ("https://cdn/x.m3u8?token=abc&x=1", "https://cdn/x.m3u8?token=***&x=1"),
        ("https://cdn/x?X-Amz-Signature=f00d", "https://cdn/x?X-Amz-Signature=***"),
        ("failed: 'rtsp://u:s%40cret@h/s'", "failed: 'rtsp://u:***@h/s'"),
        ("rtsp://cam.local/stream?channel=1", "rtsp://cam.local/stream?channel=1"),
        ("mail admin@example.com", "mail admin@example.com"),
        ("/videos/clip.mp4", "/videos/clip.mp4"),
        ("rtsp://admin:hunt er2@10.0.0.7/s", "rtsp://admin:***@10.0.0.7/s"),
        ("open 'rtsp://admin:a/b?c#d@h:554/s' failed", "open 'rtsp://admin:***@h:554/s' failed"),
        ("rtsp://u:it's@h/s", "rtsp://u:***@h/s"),
        ("(rtsp://u:p(x)@h/s)", "(rtsp://u:***@h/s)"),
        ("'rtsp://u:it's@h/s'", "'rtsp://u:***@h/s'"),
        ("{'a': 'rtsp://u:p w@h/s', 'b': 'x@y'}", "{'a': 'rtsp://u:***@h/s', 'b': 'x@y'}"),
        ("rtsp://a:b@h/x, rtsp://c:d e@k/y", "rtsp://a:***@h/x, rtsp://c:***@k/y"),
        ("rtsp://u:p w@h/s\nnext@line", "rtsp://u:***@h/s\nnext@line"),
        ("https://host/users/@me", "https://host/users/@me"),
        ("rtsp://[::1]:554/s", "rtsp://[::1]:554/s"),
        ("webhook:https://hooks.example/services/T0/XYZ", "webhook:https://hooks.example/***"),
        ("webhook:http://u:p@h:9/hook?token=abc", "webhook:http://h:9/***"),
        ("webhook:http://u:p w@h:9", "webhook:http://h:9"),
        ("webhook:http://127.0.0.1:9/", "webhook:http://127.0.0.1:9/"),
    ],
)
def test_redact_hides_passwords_tokens_and_keys(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected  # redacting twice changes nothing


def test_ambiguous_text_is_hidden_too_much_never_too_little() -> None:
    assert redact("rtsp://cam:554/s failed, mail admin@example.com") == (
        "rtsp://cam:***@example.com"
    )


@pytest.mark.parametrize(
    "text",
    [
        "a." * 32_000,
        "a://" * 16_000,
        "'http://" * 8_000,
        "http://" + "a" * 21_000 + " " + "@a" * 21_000,
        "http://" + "@" * 64_000,
    ],
)
def test_redacting_a_hostile_64_kb_line_takes_linear_time(text: str) -> None:
    """Request paths are redacted before they are logged: no input may make that quadratic."""
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 1.0


def test_redacting_filter_cleans_formatted_messages_and_tracebacks() -> None:
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "cannot open %s", ("rtsp://u:hunter2@h/s",), None
    )
    try:
        raise OSError("rtsp://u:hunter2@h/s refused")
    except OSError as error:
        record.exc_info = (OSError, error, error.__traceback__)

    RedactingFilter().filter(record)

    assert record.getMessage() == "cannot open rtsp://u:***@h/s"
    assert record.exc_text is not None and "hunter2" not in record.exc_text


def test_a_source_never_shows_its_password_in_state_stats_errors_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/cam?token=t0ps3cret"
    recorder = StateRecorder()
    caplog.set_level(logging.DEBUG, logger="pipeline")
    source = make_source(url, on_state_change=recorder, backoff_initial_s=0.05)
    source.start()
    wait_until(lambda: source.stats().connect_failures >= 2, what="two failed connects")
    source.stop()

    stats = source.stats().to_dict()
    shown = [str(stats), repr(source), *map(str, recorder.received), caplog.text]
    assert stats["last_error"] and "Connection refused" in stats["last_error"]
    assert stats["reference"].startswith("rtsp://admin:***@127.0.0.1:")
    assert stats["reference"].endswith("/cam?token=***")
    assert all("hunter2" not in text and "t0ps3cret" not in text for text in shown)
    assert recorder.states[-1] is SourceState.ENDED


@pytest.mark.parametrize("separator", [" ", "/", "?", "#", "@ /"])
def test_the_service_never_shows_a_password_with_odd_characters(
    separator: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Created (201) or refused (422), the password and the webhook path appear nowhere."""
    source = f"rtsp://admin:Zq{separator}Kw@127.0.0.1:{free_port()}/cam"
    hook = "webhook:http://127.0.0.1:9/services/T0/h00ksecret"
    caplog.set_level(logging.DEBUG)
    # Loopback allowed: this test is about what is shown, not the private-network policy.
    app = scripted_app(state_dir=tmp_path / "state", allow_private_network=True)
    server = start_server(app)
    try:
        server.wait_booted()
        with server.client() as client:
            created = client.post(
                "/streams", json={"source": source, "classes": ["p"], "sinks": [hook]}
            )
            shown = [created.text]
            if created.status_code == 201:
                stream_id = created.json()["id"]
                shown += [client.get(path).text for path in ("/streams", f"/streams/{stream_id}")]
                shown.append(client.get("/").text)
                assert client.delete(f"/streams/{stream_id}").status_code == 204
            else:
                assert created.status_code == 422, created.text
                assert "admin:***@127.0.0.1" in created.json()["detail"][0]["msg"]
    finally:
        server.stop()

    shown.append(caplog.text)
    for text in shown:
        assert "Zq" not in text and "Kw" not in text and "h00ksecret" not in text, text
