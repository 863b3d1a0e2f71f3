"""``sam3-stream bench image``: both ways measured in one run, on the tiny checkpoint."""

from __future__ import annotations

import json

from pipeline.cli.main import main


def test_bench_image_prints_both_ways_and_the_ratio(tiny_model_dir, capsys):
    argv = ["bench", "image", "--model", str(tiny_model_dir), "--device", "cpu"]
    code = main([*argv, "--prompts", "2", "--repeats", "1", "--warmup", "0", "--size", "64x48"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  batched (one request)   median ")
    assert lines[2].startswith("  one forward per prompt  median ")
    report = json.loads(lines[-1])
    assert report["prompts"] == 2 and report["image_size"] == [64, 48]
    assert report["ratio"] == report["per_prompt_ms"][0] / report["batched_ms"][0]


def test_bench_image_refuses_more_prompts_than_a_request_takes(tiny_model_dir, capsys):
    assert main(["bench", "image", "--model", str(tiny_model_dir), "--prompts", "17"]) == 2
    assert "--prompts must be in [1, 16]" in capsys.readouterr().err
