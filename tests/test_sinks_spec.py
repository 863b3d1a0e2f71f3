"""parse_sink_spec: the ``--sink`` kinds, and one-line errors for everything else."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import pytest

import sinks
from pipeline.redact import redact
from tests.sinks_helpers import RecordingServer, make_detections, make_frame


def test_every_kind_builds_its_sink(tmp_path: Path) -> None:
    built = [
        sinks.parse_sink_spec("screen"),
        sinks.parse_sink_spec(f"video:{tmp_path / 'out.mp4'}"),
        sinks.parse_sink_spec(f"jsonl:{tmp_path / 'out.jsonl'}"),
        sinks.parse_sink_spec("webhook:http://127.0.0.1:8080/hook"),
        sinks.parse_sink_spec("udp:127.0.0.1:9000"),
        sinks.parse_sink_spec("udp:[::1]:9000"),
    ]
    try:
        assert [type(sink) for sink in built] == [
            sinks.ScreenSink,
            sinks.VideoFileSink,
            sinks.JsonlSink,
            sinks.WebhookSink,
            sinks.UDPSink,
            sinks.UDPSink,
        ]
        assert built[3].name == "webhook:http://127.0.0.1:8080/***"
        assert built[5].address[:2] == ("::1", 9000)
    finally:
        for sink in built:
            sink.close()


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "printer",
        "screen:2",
        "video:",
        "jsonl",
        "webhook:ftp://host/x",
        "webhook:localhost:80",
        "udp:host",
        "udp:host:port",
        "udp::9000",
        "udp:host:70000",
    ],
)
def test_bad_specs_are_one_line_errors_naming_the_spec(spec: str) -> None:
    with pytest.raises(sinks.SinkSpecError) as raised:
        sinks.parse_sink_spec(spec)

    message = str(raised.value)
    assert "\n" not in message and repr(spec) in message
    assert isinstance(raised.value, ValueError)


def test_a_missing_directory_is_reported_before_any_frame(tmp_path: Path) -> None:
    with pytest.raises(sinks.SinkSpecError, match="does not exist; create it first"):
        sinks.parse_sink_spec(f"jsonl:{tmp_path / 'missing' / 'out.jsonl'}")
    with pytest.raises(sinks.SinkSpecError, match="does not exist"):
        sinks.parse_sink_spec(f"video:{tmp_path / 'missing' / 'out.mp4'}")


def test_an_unwritable_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(sinks.SinkSpecError, match="Is a directory"):
        sinks.parse_sink_spec(f"jsonl:{tmp_path}")


def test_a_tilde_path_is_opened_where_it_was_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)

    jsonl = sinks.parse_sink_spec("jsonl:~/out.jsonl")
    video = sinks.parse_sink_spec("video:~/out.mp4")
    try:
        assert isinstance(jsonl, sinks.JsonlSink) and isinstance(video, sinks.VideoFileSink)
        assert jsonl.path == home / "out.jsonl" and jsonl.path.exists()
        assert video.path == home / "out.mp4"
    finally:
        jsonl.close()
        video.close()
    assert list(elsewhere.iterdir()) == []  # no literal "~" directory or file beside the caller
    with pytest.raises(sinks.SinkSpecError, match="does not exist"):
        sinks.parse_sink_spec("jsonl:~/missing/out.jsonl")


def test_a_webhook_path_is_a_secret_in_names_errors_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = RecordingServer(status=503).start()
    url = f"http://user:pw@127.0.0.1:{server.port}/services/T0/s3cretpath?token=abc"
    errors: list[BaseException] = []
    caplog.set_level(logging.DEBUG, logger="sinks")
    try:
        sink = sinks.parse_sink_spec(f"webhook:{url}")
        assert isinstance(sink, sinks.WebhookSink)
        sink.add_error_listener(lambda _sink, error: errors.append(error))
        sink.max_retries, sink.backoff_s = 1, 0.01
        sink.on_prediction(None, make_frame())
        assert sink.flush(10.0)
        sink.close()
    finally:
        server.stop()

    assert sink.name == f"webhook:http://127.0.0.1:{server.port}/***"
    assert redact(f"webhook:{url}") == sink.name  # the service shows the spec as the sink's name
    shown = [sink.name, *map(str, errors), caplog.text]
    assert errors and "HTTP 503" in str(errors[0])
    assert all(secret not in text for text in shown for secret in ("s3cret", "pw", "abc"))


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pa/s3cret@127.0.0.1:9/hook",
        "http://user:pa?s3cret@127.0.0.1:9/hook",
        "http://user:pa#s3cret@127.0.0.1:9/hook",
        "http://user:123/s3cret@127.0.0.1:9/hook",
    ],
)
def test_a_webhook_url_with_an_ambiguous_password_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(sinks.SinkSpecError) as raised:
        sinks.parse_sink_spec(f"webhook:{url}")

    message = str(raised.value)
    assert "percent-encoded" in message and "s3cret" not in message and "\n" not in message
    with pytest.raises(sinks.SinkConfigError) as direct:
        sinks.WebhookSink(url)
    assert "s3cret" not in str(direct.value)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_specs_keep_the_native_size_and_source_fps(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    with sinks.parse_sink_spec(f"video:{path}") as sink:
        for frame_id in range(3):
            sink.on_prediction(
                make_detections(96, 64, boxes=[(5, 5, 40, 40)]),
                make_frame(frame_id, width=96, height=64, fps=12.0),
            )

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
        assert float(stream.average_rate or 0) == 12.0
        assert (stream.codec_context.name == "mjpeg") == (suffix == ".avi")
    assert [frame.shape for frame in frames] == [(64, 96, 3)] * 3
