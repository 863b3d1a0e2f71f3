"""parse_sink_spec: the ``--sink`` kinds, and one-line errors for everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

import sinks


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
        assert built[3].name == "webhook:http://127.0.0.1:8080/hook"
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
