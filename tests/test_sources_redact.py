"""Credentials in URLs are redacted in every string that leaves a source."""

from __future__ import annotations

import logging

import pytest

from pipeline.redact import RedactingFilter, redact
from pipeline.sources import SourceState, make_source
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
    ],
)
def test_redact_hides_passwords_tokens_and_keys(text: str, expected: str) -> None:
    assert redact(text) == expected


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
