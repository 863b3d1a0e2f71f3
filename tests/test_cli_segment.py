"""``sam3-stream segment``: summary, the response JSON, an annotated image; bad input is one line
and exit code 2, before the model loads. Runs ``main()`` in-process on the tiny checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv

from pipeline.cli.main import main
from pipeline.cli.segment import parse_box
from pipeline.errors import ConfigError

HEIGHT, WIDTH = 64, 96


@pytest.fixture(scope="module")
def image_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[:] = np.linspace(0, 200, WIDTH, dtype=np.uint8)[None, :, None]
    cv2.rectangle(image, (10, 10), (40, 40), (0, 0, 255), -1)
    path = tmp_path_factory.mktemp("segment") / "cat.png"
    cv2.imwrite(str(path), image)
    return path


def _segment(tiny_model_dir: Path, image: Path, *extra: str) -> int:
    return main(
        [
            "segment",
            str(image),
            "--model",
            str(tiny_model_dir),
            "--device",
            "cpu",
            "--threshold",
            "0",
            *extra,
        ]
    )


def test_segment_writes_the_response_json_and_an_annotated_image(
    tiny_model_dir, image_path, tmp_path, capsys
):
    output, annotated = tmp_path / "result.json", tmp_path / "out.png"
    code = _segment(
        tiny_model_dir,
        image_path,
        "--text",
        "cat",
        "--box",
        "10,10,30,30",
        "--box",
        "50,20,10,10:0",
        "--output",
        str(output),
        "--annotated",
        str(annotated),
    )
    assert code == 0
    body = json.loads(output.read_text())
    assert set(body) == {"prompt_results", "time"}
    [result] = body["prompt_results"]
    assert result["echo"] == {"prompt_index": 0, "type": "text", "text": "cat", "num_boxes": 2}
    assert result["predictions"], "threshold 0 keeps the tiny model's instances"
    for prediction in result["predictions"]:
        assert prediction["format"] == "polygon"
        assert all(
            isinstance(v, int) for polygon in prediction["masks"] for p in polygon for v in p
        )
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"{image_path}: 'cat' with 2 exemplar box(es): " + (
        f"{len(result['predictions'])} instance(s)"
    )
    assert printed[1].startswith("  #0 confidence ")
    drawn = cv2.imread(str(annotated))
    assert drawn.shape == (HEIGHT, WIDTH, 3)
    assert not np.array_equal(drawn, cv2.imread(str(image_path)))


def test_segment_rle_decodes_to_the_image_size(tiny_model_dir, image_path, tmp_path):
    output = tmp_path / "rle.json"
    code = _segment(
        tiny_model_dir, image_path, "--text", "cat", "--format", "rle", "--output", str(output)
    )
    assert code == 0
    predictions = json.loads(output.read_text())["prompt_results"][0]["predictions"]
    assert predictions
    for prediction in predictions:
        masks = prediction["masks"]
        assert prediction["format"] == "rle" and masks["size"] == [HEIGHT, WIDTH]
        assert sv.rle_to_mask(masks["counts"], (WIDTH, HEIGHT)).shape == (HEIGHT, WIDTH)


def test_exemplars_alone_are_a_visual_prompt(tiny_model_dir, image_path, tmp_path, capsys):
    output = tmp_path / "visual.json"
    assert (
        _segment(tiny_model_dir, image_path, "--box", "10,10,30,30", "--output", str(output)) == 0
    )
    echo = json.loads(output.read_text())["prompt_results"][0]["echo"]
    assert echo == {"prompt_index": 0, "type": "visual", "text": None, "num_boxes": 1}
    assert "exemplars with 1 exemplar box(es)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text", "cat", "--box", "1,2,3"], "--box '1,2,3' must be X,Y,W,H"),
        (["--text", "cat", "--box", "1,2,0,4"], "zero or negative area"),
        (["--text", "cat", "--box", "1,2,3,4:7"], "label after ':' must be 1"),
        (["--text", "cat", "--box", "a,2,3,4"], "must be numbers"),
        (["--text", "cat", "--box", "90,60,30,30"], "lies outside the 96x64 image"),
        (["--text", "cat", "--format", "json5"], "--format must be one of polygon, rle"),
        (["--text", "cat", "--threshold", "2"], "--threshold must be in [0, 1]"),
        ([], "the prompt is empty"),
        (["--text", "cat", "--output", "/no/such/dir/x.json"], "its directory does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_model_dir, image_path, capsys, args, message):
    assert _segment(tiny_model_dir, image_path, *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sam3-stream: error: ") and message in err


def test_missing_or_undecodable_images_exit_2(tiny_model_dir, tmp_path, capsys):
    assert _segment(tiny_model_dir, tmp_path / "missing.png", "--text", "cat") == 2
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    assert _segment(tiny_model_dir, junk, "--text", "cat") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a decodable image" in err


def test_parse_box_defaults_to_a_positive_exemplar():
    assert parse_box("1,2,3,4") == ({"x": 1.0, "y": 2.0, "width": 3.0, "height": 4.0}, 1)
    assert parse_box(" 1.5,2,3,4:0 ")[1] == 0
    with pytest.raises(ConfigError, match="--box"):
        parse_box("1,2,3,4:")
