"""``sam3-stream run --box / --point / --prompt-class`` and ``prompts:`` in the YAML config.

Parsing and refusals run without a model (``main`` returns 2 before anything loads); the runs at
the end track a prompted square through a real MP4 with the tiny checkpoint and read the JSONL
sink. Tiny random weights give random masks, so those assert on ids and names, never on shapes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.cli.main import main
from pipeline.config.prompt_config import PromptConfig, prompts_from_flags
from pipeline.config.run_config import load_config, parse_config
from pipeline.errors import ConfigError
from pipeline.loop.inference_pipeline import InferencePipeline
from pipeline.sources.sample_clip import write_sample_clip
from tracker.visual_prompts import VisualPrompt

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FRAMES = 160, 120, 8
SQUARE = "0,20,34,58"  # the sample clip's square on frame 0 (x 0..30, y 24..54), with a margin


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "clip.mp4"
    return write_sample_clip(path, frames=FRAMES, width=WIDTH, height=HEIGHT)


def _visual(prompts: list[PromptConfig]) -> list[VisualPrompt]:
    return [prompt.to_visual_prompt() for prompt in prompts]


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sam3-stream: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------- parsing, no model


def test_each_box_flag_is_one_object() -> None:
    prompts = _visual(prompts_from_flags(["10,20,200,220", "5,6,7,8"], []))
    assert prompts == [
        VisualPrompt(boxes=[(10, 20, 200, 220)]),
        VisualPrompt(boxes=[(5, 6, 7, 8)]),
    ]
    assert {prompt.class_name for prompt in prompts} == {"foreground"}


def test_points_are_one_object_with_the_single_box_and_unlabelled_points_are_positive() -> None:
    with_box = prompts_from_flags(["10,20,200,220"], ["50,60", "70,80:0", "90,95:1"], "forklift")
    assert _visual(with_box) == [
        VisualPrompt(
            boxes=[(10, 20, 200, 220)],
            points=[(50, 60), (70, 80), (90, 95)],
            labels=[1, 0, 1],
            class_name="forklift",
        )
    ]
    assert with_box[0].origin == "--box 10,20,200,220 --point 50,60 --point 70,80:0 --point 90,95:1"
    assert _visual(prompts_from_flags([], ["1.5,2.5"])) == [
        VisualPrompt(points=[(1.5, 2.5)], labels=[1])
    ]


def test_yaml_prompts_in_every_point_form_equal_the_same_flags(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "sources: [clip.mp4]\n"
        "prompts:\n"
        "  - box: [10, 20, 200, 220]\n"
        "  - points: [[50, 60], [70, 80, 0], {x: 90, y: 95, positive: true}]\n"
        "    box: [40, 50, 120, 160]\n"
        "    class_name: forklift\n"
    )
    config = load_config(path)
    from_flags = [
        *prompts_from_flags(["10,20,200,220"], []),
        *prompts_from_flags(["40,50,120,160"], ["50,60", "70,80:0", "90,95"], "forklift"),
    ]
    assert _visual(config.prompts) == _visual(from_flags)
    assert config.classes == []  # visual only: no concept needed
    assert [prompt.origin for prompt in config.prompts] == [
        f"{path}: prompts.0",
        f"{path}: prompts.1",
    ]


def test_the_shipped_visual_prompts_config_is_visual_only() -> None:
    config = load_config(ROOT / "configs" / "visual-prompts.yaml")
    assert config.classes == [] and len(config.prompts) == 3
    prompts = _visual(config.prompts)
    assert [prompt.labels for prompt in prompts] == [(), (1, 0), (1, 0)]
    assert [prompt.class_name for prompt in prompts] == ["foreground", "forklift", "pallet"]


BAD_PROMPT_FLAGS = [
    (["--box", "1,2,3"], "--box '1,2,3' must be X0,Y0,X1,Y1"),
    (["--box", "a,b,c,d"], "--box 'a,b,c,d' must be X0,Y0,X1,Y1"),
    (["--box", "nan,0,5,5"], "--box 'nan,0,5,5' must be X0,Y0,X1,Y1"),
    (["--box=-1,0,5,5"], "--box '-1,0,5,5': pixels of the frame are >= 0"),
    (["--box", "10,10,5,20"], "--box 10,10,5,20: box [10, 10, 5, 20] has zero area"),
    (["--point", "5"], "--point '5' must be X,Y or X,Y:0|1"),
    (["--point", "5,6:2"], "--point '5,6:2': the label after ':' must be 1 (positive) or 0"),
    (["--point", "5,-6"], "--point '5,-6': pixels of the frame are >= 0"),
    (
        ["--box", "0,0,9,9", "--box", "1,1,8,8", "--point", "4,4"],
        "--point: points belong to one object, but 2 --box flags make 2 objects",
    ),
    (["--prompt-class", "forklift"], "--prompt-class: names the objects of --box / --point"),
    (["--box", "0,0,9,9", "--prompt-class", " "], "--prompt-class: must not be blank"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_PROMPT_FLAGS)
def test_every_bad_prompt_flag_gets_one_line_naming_it_and_exit_code_2(
    clip: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--source", str(clip), "--classes", "square", *flags]) == 2
    line = _error_line(capsys)
    assert message in line, line


BAD_PROMPT_FIELDS = [
    ([{}], "prompts.0: give a box, points, or both"),
    (
        [{"box": [1, 2, 3]}],
        "prompts.0.box: a box is [x0, y0, x1, y1] (corners, pixels), got [1, 2, 3]",
    ),
    ([{"box": [10, 10, 5, 5]}], "prompts.0: box [10, 10, 5, 5] has zero area"),
    ([{"box": [-1, 0, 5, 5]}], "prompts.0.box.0: Input should be greater than or equal to 0"),
    ([{"points": [[1, 2, 3]]}], "prompts.0.points.0: the label of [1, 2, 3] must be 1"),
    ([{"points": [[1]]}], "prompts.0.points.0: a point is [x, y] or [x, y, 0|1]"),
    ([{"points": [{"x": 1}]}], "prompts.0.points.0.y: required field is missing"),
    ([{"points": [{"x": 1, "y": 2, "label": 0}]}], "prompts.0.points.0.label: unknown field"),
    ([{"boxes": [[0, 0, 5, 5]]}], "prompts.0.boxes: unknown field"),
    ([{"box": [0, 0, 5, 5], "class_name": " "}], "prompts.0.class_name: must not be blank"),
    ("0,0,5,5", "prompts: Input should be a valid list"),
    ([], "classes: List should have at least 1 item"),
]


@pytest.mark.parametrize(("prompts", "message"), BAD_PROMPT_FIELDS)
def test_every_bad_prompts_field_gets_one_line_naming_it(prompts: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"sources": ["clip.mp4"], "prompts": prompts}, origin="cam.yaml")
    text = str(caught.value)
    assert text.startswith("cam.yaml: ") and message in text and "\n" not in text, text
    assert "more problem" not in text  # a bad prompt is not also reported as "no classes"


def test_a_yaml_infinity_is_refused_as_a_coordinate() -> None:
    with pytest.raises(ConfigError, match=r"prompts\.0\.box\.2: Input should be a finite number"):
        parse_config(yaml.safe_load("sources: [a]\nprompts: [{box: [0, 0, .inf, 5]}]"), origin="f")


def test_run_without_classes_or_prompts_says_what_to_give(
    clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--source", str(clip)]) == 2
    line = _error_line(capsys)
    assert "give --classes" in line and "--box X0,Y0,X1,Y1 / --point X,Y" in line


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``run`` hands ``InferencePipeline.init``; the run stops there, before any model."""
    calls: list[dict[str, Any]] = []

    def init(**keywords: Any) -> None:
        calls.append(keywords)
        raise ConfigError("stopped before any model is loaded")

    monkeypatch.setattr(InferencePipeline, "init", init)
    return calls


def test_the_run_passes_visual_prompts_and_no_classes_to_the_pipeline(
    clip: Path, received: list[dict[str, Any]]
) -> None:
    arguments = ["run", "--source", str(clip), "--box", SQUARE, "--point", "100,90:0"]
    assert main(arguments) == 2
    assert main([*arguments[:5], "--classes", "square"]) == 2
    assert main(["run", "--source", str(clip), "--classes", "square"]) == 2
    assert received[0]["class_names"] == []
    assert received[0]["prompts"] == [
        VisualPrompt(boxes=[(0, 20, 34, 58)], points=[(100, 90)], labels=[0])
    ]
    assert received[1]["class_names"] == ["square"]
    assert received[1]["prompts"] == [VisualPrompt(boxes=[(0, 20, 34, 58)])]
    assert received[2]["prompts"] is None  # concept tracking only, as before


def test_prompt_flags_replace_the_file_s_prompts(
    clip: Path, tmp_path: Path, received: list[dict[str, Any]]
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump({"sources": [str(clip)], "prompts": [{"box": [1, 2, 30, 40]}]})
    )
    assert main(["run", "--config", str(config)]) == 2
    assert main(["run", "--config", str(config), "--point", "5,6"]) == 2
    assert [call["prompts"] for call in received] == [
        [VisualPrompt(boxes=[(1, 2, 30, 40)])],
        [VisualPrompt(points=[(5, 6)], labels=[1])],
    ]


# ---------------------------------------------------------------- real runs, tiny checkpoint


def _run(arguments: list[str], model: Path, jsonl: Path) -> int:
    common = ["--model", str(model), "--device", "cpu", "--max-objects", "3", "--no-progress"]
    return main(["run", *arguments, *common, "--sink", f"jsonl:{jsonl}"])


def _objects(jsonl: Path) -> list[tuple[int, list[tuple[int, str, list[float]]]]]:
    """(frame_id, [(tracker_id, class_name, bbox)]) per line of the sink's file."""
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    return [
        (
            record["frame_id"],
            [(obj["tracker_id"], obj["class_name"], obj["bbox"]) for obj in record["objects"]],
        )
        for record in records
    ]


def test_a_box_flag_is_tracked_under_one_id_and_a_yaml_prompt_gives_the_same_objects(
    clip: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    flags_out = tmp_path / "flags.jsonl"
    assert _run(["--source", str(clip), "--box", SQUARE], tiny_model_dir, flags_out) == 0
    frames = _objects(flags_out)
    assert [frame_id for frame_id, _ in frames] == list(range(1, FRAMES + 1))
    ids = {tracker_id for _, objects in frames for tracker_id, _, _ in objects}
    assert len(ids) == 1, frames  # one box, one object, one id
    names = {name for _, objects in frames for _, name, _ in objects}
    assert names == {"foreground"}
    tracked_on = [frame_id for frame_id, objects in frames if objects]
    assert tracked_on and max(tracked_on) > 1, "the object is followed past its prompt frame"

    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "sources": [str(clip)],
                "prompts": [{"box": [0, 20, 34, 58], "class_name": "square"}],
            }
        )
    )
    yaml_out = tmp_path / "yaml.jsonl"
    assert _run(["--config", str(config)], tiny_model_dir, yaml_out) == 0
    renamed = [
        (frame_id, [(tracker_id, "square", box) for tracker_id, _, box in objects])
        for frame_id, objects in frames
    ]
    assert _objects(yaml_out) == renamed  # the same objects, named as the file says


def test_concepts_and_a_prompted_object_run_side_by_side_with_distinct_ids(
    clip: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "both.jsonl"
    arguments = ["--source", str(clip), "--classes", "square", "--threshold", "0", "--box", SQUARE]
    assert _run(arguments, tiny_model_dir, out) == 0
    by_name: dict[str, set[int]] = {}
    for _, objects in _objects(out):
        for tracker_id, name, _ in objects:
            by_name.setdefault(name, set()).add(tracker_id)
    assert set(by_name) == {"square", "foreground"}, by_name  # threshold 0: the concept too
    assert len(by_name["foreground"]) == 1
    assert not by_name["foreground"] & by_name["square"]


@pytest.mark.parametrize(
    "source",
    ["clip", f"testpattern?size={WIDTH}x{HEIGHT}&fps=10"],
    ids=["file", "live, endless"],
)
def test_a_box_outside_the_frames_stops_the_run_with_one_line_naming_the_flag(
    source: str,
    clip: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reference = str(clip) if source == "clip" else source
    box = f"10,20,{WIDTH + 40},60"
    assert _run(["--source", reference, "--box", box], tiny_model_dir, tmp_path / "o.jsonl") == 2
    line = _error_line(capsys)
    assert f"--box {box}: does not fit source 0" in line, line
    assert f"is outside the {WIDTH}x{HEIGHT} frame" in line, line


def test_more_prompted_objects_than_the_object_budget_are_refused_naming_max_objects(
    clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boxes = [argument for i in range(3) for argument in ("--box", f"{i},0,{i + 9},9")]
    assert main(["run", "--source", str(clip), *boxes, "--max-objects", "2"]) == 2
    line = _error_line(capsys)
    assert "--max-objects: 3 prompted objects do not fit 2 live objects per source" in line
    with pytest.raises(ConfigError, match=r"f: max_objects: 17 prompted objects .*\(the default\)"):
        parse_config({"sources": ["a"], "prompts": [{"box": [0, 0, 5, 5]}] * 17}, origin="f")
