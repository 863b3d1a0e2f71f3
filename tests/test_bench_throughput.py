"""``sam3-stream bench throughput``: a short run on the tiny checkpoint prints every figure."""

from __future__ import annotations

from pipeline.cli.main import main


def test_bench_throughput_prints_rates_ratios_and_stages(tiny_model_dir, capsys):
    code = main(
        [
            "bench",
            "throughput",
            "--model",
            str(tiny_model_dir),
            "--streams",
            "2",
            "--frames",
            "1",
            "--warmup",
            "0",
            "--max-objects",
            "2",
            "--device",
            "cpu",
            "--size",
            "128x96",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    for label in (
        "aggregate frames/s",
        "ratio vs plain HF",
        "stream 0 frames/s",
        "stream 1 frames/s",
        "load average",
        "backbone batches:",
    ):
        assert label in out
    stages = ("decode", "preprocess", "backbone", "detector", "tracker", "postprocess", "sinks")
    for stage in stages:
        row = next(line for line in out.splitlines() if line.startswith(stage))
        assert len(row.split()) >= 4, row  # one figure per variant
    assert "plain HF" in out and "ours batched" in out


def test_bench_throughput_rejects_bad_counts(tiny_model_dir, capsys):
    code = main(["bench", "throughput", "--model", str(tiny_model_dir), "--streams", "0"])
    assert code == 2
    assert "--streams" in capsys.readouterr().err
