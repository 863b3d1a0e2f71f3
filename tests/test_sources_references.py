"""Every reference goes to the right source kind, and one that can never work fails at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, SourceError
from pipeline.sources import (
    FileSource,
    LiveStreamSource,
    SourceOptions,
    TestPatternSource,
    WebcamSource,
    make_source,
    make_sources,
)
from tests.sources_helpers import write_test_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", frames=5)


@pytest.mark.parametrize(
    ("reference", "kind"),
    [
        ("rtsp://cam.local/stream1", LiveStreamSource),
        ("rtsps://user:pw@cam.local:322/s", LiveStreamSource),
        ("rtmp://live.example/app/key", LiveStreamSource),
        ("https://cdn.example/live/index.m3u8", LiveStreamSource),
        ("http://10.0.0.5:8080/video", LiveStreamSource),
        ("testpattern", TestPatternSource),
        ("testpattern?fps=10&size=320x240&frames=5", TestPatternSource),
    ],
)
def test_reference_picks_its_source_kind(reference: str, kind: type) -> None:
    source = make_source(reference)

    assert type(source) is kind
    assert source.state.value == "CONNECTING"  # made, not started


def test_file_references_as_str_path_and_file_url_make_file_sources(clip: Path) -> None:
    for reference in (str(clip), clip, clip.as_uri()):
        source = make_source(reference)
        assert isinstance(source, FileSource)
        assert source.total_frames == 5 and source.stats().declared_fps == 20.0


def test_a_list_of_references_makes_one_source_each_with_its_index(clip: Path) -> None:
    sources = make_sources([str(clip), "testpattern"], video_identifiers=["a", None])

    assert [(s.source_id, s.kind, s.video_identifier) for s in sources] == [
        (0, "file", "a"),
        (1, "testpattern", "testpattern"),
    ]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("/no/such/video.mp4", "video file not found: /no/such/video.mp4"),
        ("file:///no/such/video.mp4", "video file not found"),
        ("udp://239.0.0.1:1234", "unknown scheme 'udp'"),
        ("foo://user:hunter2@host/x", "unknown scheme 'foo' in 'foo://user:***@host/x'"),
        ("rtsp://cam.local:notaport/s", "malformed URL"),
        ("rtsp:///stream", "has no host"),
        ("testpattern?fps=fast", "fps='fast' is not a float"),
        ("testpattern?size=big", "size='big' must look like 640x480"),
        ("testpattern?colour=red", "unknown test pattern parameter 'colour'"),
        ("/dev/video99", "no webcam at /dev/video99"),
        (99, "no webcam at /dev/video99"),
        ("", "empty video reference"),
        (3.5, "must be a path, URL, camera index or 'testpattern', got float"),
        (True, "got bool"),
        (None, "got NoneType"),
    ],
)
def test_a_reference_that_can_never_work_fails_at_once(reference: object, message: str) -> None:
    with pytest.raises(SourceError) as raised:
        make_source(reference)  # type: ignore[arg-type]

    assert message in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_a_directory_is_not_a_video_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a directory"):
        make_source(tmp_path)


@pytest.mark.parametrize("content", [b"", b"this is not a video, just text\n" * 100])
def test_an_undecodable_file_fails_at_once(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)

    with pytest.raises(SourceError, match=r"cannot decode .*clip\.mp4 as video"):
        make_source(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file, permissions cannot be tested")
def test_an_unreadable_file_fails_at_once(clip: Path, tmp_path: Path) -> None:
    path = tmp_path / "locked.mp4"
    path.write_bytes(clip.read_bytes())
    path.chmod(0)

    with pytest.raises(SourceError, match="not readable"):
        make_source(path)


def test_a_bad_reference_in_a_list_fails_the_whole_list(clip: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        make_sources([str(clip), "/missing.mp4"])


def test_one_video_identifier_per_source_is_required(clip: Path) -> None:
    with pytest.raises(SourceError, match="2 video identifiers for 1 sources"):
        make_sources([str(clip)], video_identifiers=["a", "b"])


def test_an_unknown_source_option_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown source option\\(s\\): stall_timeout"):
        make_source("testpattern", stall_timeout=3)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stall_timeout_s": 0}, "stall_timeout_s must be > 0"),
        ({"rtsp_transport": "http"}, "rtsp_transport must be 'tcp' or 'udp'"),
        ({"backoff_initial_s": 5, "backoff_max_s": 1}, "max delay"),
        ({"max_reconnect_attempts": -1}, "max_reconnect_attempts must be >= 0"),
        ({"file_buffer_frames": 0}, "file_buffer_frames must be >= 1"),
    ],
)
def test_invalid_source_options_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SourceOptions(**fields)


@pytest.mark.parametrize(
    ("reference", "device", "name"),
    [(0, 0, "webcam:0"), ("2", 2, "webcam:2"), ("/dev/video1", "/dev/video1", "/dev/video1")],
)
def test_webcam_references_by_index_and_device_path(
    monkeypatch: pytest.MonkeyPatch, reference: object, device: object, name: str
) -> None:
    monkeypatch.setattr("pipeline.sources.webcam.device_exists", lambda node: True)

    source = make_source(reference)  # type: ignore[arg-type]

    assert isinstance(source, WebcamSource)
    assert (source.device, source.reference) == (device, name)
