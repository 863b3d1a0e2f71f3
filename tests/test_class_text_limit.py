"""Class texts longer than the model's text encoder reads are refused where they are given.

The tiny checkpoint's tokenizer is byte-level (one token per character, plus start and end
tokens), so 30 characters are exactly its 32 tokens and 31 are one too many. Before the check,
such a class failed inside the model on every frame; now the library, the API and the CLI refuse
it at creation (and at a runtime class change), naming the field and the limit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from pipeline.cli.main import main
from pipeline.errors import ConfigError
from pipeline.loop.inference_pipeline import InferencePipeline
from pipeline.service import ModelEngine
from tests.service_helpers import ScriptedPipelines, scripted_app
from tests.waiting import wait_until
from tracker import Sam3VideoTracker, SessionRegistry
from tracker.inputs import MAX_CLASS_NAMES, check_class_texts

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[1]
LONGEST = "a" * 30  # 32 tokens with start and end: the tiny model's limit
TOO_LONG = "a" * 31
SOURCE = "testpattern?size=96x64&fps=5"


def test_check_class_texts_names_the_entry_its_token_count_and_the_limit() -> None:
    check_class_texts(("ab", "abcd"), len, 4)
    with pytest.raises(ValueError, match=r"classes\[1\] is 5 tokens long .* at most 4") as info:
        check_class_texts(("ab", "abcde"), len, 4, field="classes")
    assert "abcde" not in str(info.value), "the text a client sent is never quoted"


def test_the_tracker_reads_its_limit_from_the_model_config_and_counts_tokens(
    tiny_tracker: Sam3VideoTracker,
) -> None:
    text_config = tiny_tracker.model.config.detector_config.text_config
    assert tiny_tracker.text_token_limit == text_config.max_position_embeddings == 32
    tiny_tracker.check_class_texts(("person", LONGEST))
    with pytest.raises(ValueError, match=r"class_names\[1\] is 33 tokens long .* at most 32"):
        tiny_tracker.check_class_texts(("person", TOO_LONG))


def test_a_registry_frame_with_a_too_long_class_says_why_instead_of_failing_in_the_model(
    tiny_tracker: Sam3VideoTracker,
) -> None:
    registry = SessionRegistry(tiny_tracker)
    try:
        with pytest.raises(ValueError, match="at most 32"):
            registry.process(
                np.zeros((64, 96, 3), np.uint8),
                video_identifier="long-class",
                frame_id=1,
                class_names=(TOO_LONG,),
                threshold=0.0,
            )
    finally:
        registry.close_all()


def test_init_and_set_class_names_refuse_a_too_long_class_naming_class_names(
    tiny_tracker: Sam3VideoTracker,
) -> None:
    with pytest.raises(ConfigError, match="at most 32") as info:
        InferencePipeline.init(SOURCE, ["person", TOO_LONG], lambda *_: None, tracker=tiny_tracker)
    assert info.value.field == "class_names"

    pipeline = InferencePipeline.init(
        SOURCE, ["person", LONGEST], lambda *_: None, tracker=tiny_tracker
    )
    try:
        with pytest.raises(ConfigError, match=r"class_names\[0\] is 33 tokens") as info:
            pipeline.set_class_names([TOO_LONG])
        assert info.value.field == "class_names"
        assert pipeline.status().class_names == ("person", LONGEST), "the old classes stay"
    finally:
        pipeline.terminate()


@pytest.fixture
def api(tiny_tracker: Sam3VideoTracker) -> Iterator[tuple[TestClient, ScriptedPipelines]]:
    pipelines = ScriptedPipelines()
    engine = ModelEngine.from_tracker(tiny_tracker, model_name="tiny")
    app = scripted_app(pipelines, engine=engine)
    with TestClient(app) as client:
        app.state.service.booted.wait(10)
        yield client, pipelines


def _field_error(response: Any) -> tuple[list, str]:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    return error["loc"], error["msg"]


def test_the_api_answers_422_naming_classes_at_post_and_patch(
    api: tuple[TestClient, ScriptedPipelines],
) -> None:
    client, pipelines = api
    refused = client.post("/streams", json={"source": SOURCE, "classes": ["person", TOO_LONG]})
    loc, message = _field_error(refused)
    assert loc == ["body", "classes"] and "classes[1] is 33 tokens" in message
    assert "at most 32" in message and TOO_LONG not in message
    assert pipelines.made == [], "refused before any pipeline was built"

    created = client.post("/streams", json={"source": SOURCE, "classes": [LONGEST]})
    assert created.status_code == 201, created.text
    stream_id = created.json()["id"]
    loc, message = _field_error(
        client.patch(f"/streams/{stream_id}", json={"classes": ["person", TOO_LONG]})
    )
    assert loc == ["body", "classes"] and "at most 32" in message
    assert client.get(f"/streams/{stream_id}").json()["classes"] == [LONGEST]
    assert pipelines.made[-1].class_names == [LONGEST]


def test_run_refuses_a_too_long_class_in_one_line_with_exit_2(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["run", "--source", SOURCE, "--classes", f"person, {TOO_LONG}"]
    assert main([*arguments, "--model", str(tiny_model_dir), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sam3-stream: error:")]
    assert len(lines) == 1 and "class_names[1] is 33 tokens" in lines[0], err
    assert "at most 32" in lines[0] and "Traceback" not in err


def test_sigterm_during_a_run_with_the_most_classes_exits_0_with_its_json_lines(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Issue 12 saw rc 134 and no output with 500 classes; the cap is 64, each near the limit."""
    classes = ", ".join(
        f"object {index:02d} painted bright red" for index in range(MAX_CLASS_NAMES)
    )
    jsonl = tmp_path / "out.jsonl"
    script = Path(sys.executable).with_name("sam3-stream")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli.main"]
    process = subprocess.Popen(
        [*command, "run", "--source", SOURCE, "--classes", classes, "--threshold", "0",
         "--model", str(tiny_model_dir), "--device", "cpu", "--sink", f"jsonl:{jsonl}"],
        cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: jsonl.exists() and len(jsonl.read_text().splitlines()) >= 1,
            timeout=180,
            what="the first frame with 64 classes",
        )
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    frame_ids = [record["frame_id"] for record in records]  # a live source drops frames
    assert frame_ids and frame_ids == sorted(set(frame_ids)), "whole lines, each frame once"
