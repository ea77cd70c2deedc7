"""The command line as typed: one-line errors, exit codes, overrides after options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env_args = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "HF_HUB_OFFLINE": "1"}
    import os

    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **env_args},
        timeout=300,
    )


def test_overrides_after_options_are_validated(tmp_path):
    done = _cli("run", "default", "--retrain-teacher", "loss.temperature=0", tmp_path=tmp_path)
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "error: override 'loss.temperature=0': loss.temperature: expected a value > 0, got 0.0"
    )


def test_sweep_with_missing_data_fails_before_ray_in_one_line(tmp_path):
    done = _cli(
        "sweep",
        "loss",
        "--dataset",
        "wound",
        "--docs",
        str(tmp_path / "docs"),
        f"dataset.root={tmp_path / 'nowhere'}",
        tmp_path=tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        done.stderr.count("\n") == 1 and "dataset 'wound': root" in done.stderr and "not found" in done.stderr
    )
    assert not (tmp_path / "mlflow.db").exists()  # nothing was written


def test_run_no_track_records_nothing(synth_wound, tmp_path):
    from support import tiny_overrides

    done = _cli("run", "default", "--no-track", *tiny_overrides(synth_wound, epochs=1), tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "MLflow: off (--no-track)" in done.stdout and "nothing was recorded" in done.stdout
    assert "test/avg_f1" in done.stdout  # the comparison table is still printed
    assert not (tmp_path / "mlflow.db").exists()
