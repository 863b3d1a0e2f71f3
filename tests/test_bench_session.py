"""`sam3-stream bench session` runs both variants and reports their ratios (a smoke run)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_bench_session_reports_both_variants_and_ratios(tiny_model_dir):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli.main",
            "bench",
            "session",
            "--model",
            str(tiny_model_dir),
            "--frames",
            "4",
            "--interval",
            "2",
            "--max-objects",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert "frames held at the end: plain 4, ours 1" in result.stdout
    assert "bytes held at the end ours/plain" in result.stdout
    assert "[plain] frame 2/4" in result.stderr and "[ours] frame 4/4" in result.stderr


def test_bench_session_churn_compares_plain_hf_and_ours_under_the_budget(tiny_model_dir):
    result = subprocess.run(
        [
            sys.executable, "-m", "pipeline.cli.main", "bench", "session", "--churn",
            "--model", str(tiny_model_dir), "--device", "cpu",
            "--frames", "4", "--plain-frames", "2", "--interval", "2", "--max-objects", "2",
        ],
        capture_output=True, text=True, timeout=600, env={**os.environ},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "plain HF ran 2 of ours' 4 frames (capped at 2 frames)" in out
    words = [line.split() for line in out.splitlines()]
    frames_run = {w[0]: int(w[1]) for w in words if len(w) > 1 and w[1].isdigit()}
    assert frames_run == {"plain": 2, "ours": 4}
    assert "ms/frame ours/plain" in out and "bytes held ours/plain" in out
    most = int(out.split("objects live never above ")[1].split()[0])
    assert most <= 2, "objects live never exceed the budget"
    assert "tracks evicted by reason: lost" in out and "budget" in out
    assert "[ours] frame 4/4" in result.stderr


def test_bench_session_prompted_compares_the_ports_tracker_session_and_ours(tiny_model_dir):
    result = subprocess.run(
        [
            sys.executable, "-m", "pipeline.cli.main", "bench", "session", "--prompted",
            "--model", str(tiny_model_dir), "--device", "cpu", "--frames", "4", "--interval", "2",
        ],
        capture_output=True, text=True, timeout=600, env={**os.environ},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "frames held at the end: plain 4, ours 1" in result.stdout
    assert "bytes held at the end ours/plain" in result.stdout
    assert "[plain] frame 4/4" in result.stderr and "[ours] frame 4/4" in result.stderr
