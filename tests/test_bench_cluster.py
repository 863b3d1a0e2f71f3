"""``sam3-stream bench cluster``: argument errors in one line, and a short real run of both halves.

The run is real: the tiny checkpoint, a generated clip played as cameras through the service
app over HTTP/SSE, then the same streams on Ray workers of a local cluster the bench starts and
stops itself.
"""

from __future__ import annotations

import json
import sys

import pytest

from pipeline.cli.main import main


def _bench(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["bench", "cluster", *args])
    except SystemExit as exit_:  # argparse
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--streams", "0"], "--streams must be at least 1, got 0"),
        (["--workers", "0"], "--workers must be at least 1, got 0"),
        (["--streams", "2", "--workers", "3"], "--workers 3 is more than --streams 2"),
        (["--duration", "0"], "--duration must be > 0"),
        (["--repeats", "0"], "--repeats must be at least 1, got 0"),
        (["--size", "big"], "--size 'big' must look like 320x240"),
        (["--ray", "head"], "--ray: 'head' is not auto, HOST:PORT or ray://HOST:PORT"),
        (["--gpus-per-worker", "1.5"], "--gpus-per-worker must be 0, a fraction up to 1"),
        (["--threshold", "2"], "--threshold must be in [0, 1]"),
        (["--workers", "many"], "--workers: invalid int value"),
    ],
)
def test_bad_argument_is_one_line_exit_2(capsys, args, message):
    code, out, err = _bench(capsys, *args)
    assert code == 2
    assert message in err, err
    assert len(err.splitlines()) <= 2 and "Traceback" not in err
    assert out == ""  # refused before anything was built or started


def test_without_ray_installed_says_which_extra(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # how Python marks a module as absent
    code, _, err = _bench(capsys)
    assert code == 2 and "pip install 'sam3-stream[ray]'" in err


def test_bench_cluster_runs_both_halves_and_ends_with_json(capsys, tiny_model_dir):
    code, out, err = _bench(
        capsys,
        "--model",
        str(tiny_model_dir),
        "--device",
        "cpu",
        "--streams",
        "2",
        "--workers",
        "2",
        "--duration",
        "3",
        "--warmup",
        "1",
        "--size",
        "96x64",
        "--fps",
        "10",
        "--max-objects",
        "2",
    )
    assert code == 0, err
    for label in (
        "aggregate frames/s",
        "frame age p50 (s)",
        "frame age p95 (s)",
        "cluster / in",
        "streams per worker (cluster)",
        "no speed-up from more devices",
        "on a host with K GPUs",
    ):
        assert label in out, label
    report = json.loads(out.strip().splitlines()[-1])
    inproc, cluster = report["variants"]["in-process"], report["variants"]["cluster"]
    assert inproc["frames"] > 0 and cluster["frames"] > 0
    assert inproc["workers"] == {"this process": 2}
    assert "this process" not in cluster["workers"], cluster["workers"]
    assert sum(cluster["workers"].values()) == 2
    assert report["ratios"]["fps"] is not None and report["ratios"]["fps"] > 0
    assert inproc["age_p95_s"] is not None and cluster["age_p95_s"] is not None
