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
