"""What the MLflow UI shows (issue 16), read the way the UI reads it: through the REST API of a
real `mlflow server` process that a real sweep (`python -m pipeline sweep`, Ray Tune) logged to:
the session's served sweep (tests/served.py), shared with tests/test_cluster.py.
Digests and the report's warning are also pinned on their own, on real files."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def _login() -> dict[str, str]:
    """The served sweep's login (set by conftest for tests that read it), as a Basic header."""
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not user:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _get(uri: str, endpoint: str, **params) -> dict:
    query = urllib.parse.urlencode(params)
    req = urllib.request.Request(f"{uri}/api/2.0/mlflow/{endpoint}?{query}", headers=_login())
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _post(uri: str, endpoint: str, body: dict) -> dict:
    req = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/{endpoint}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **_login()},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _tags(obj: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in obj.get("tags", [])}


def test_the_sweep_prints_the_link_to_its_runs_in_the_model_training_view(served_sweep):
    uri, out = served_sweep.uri, served_sweep.stdout
    exp = _get(uri, "experiments/get-by-name", experiment_name="kdsweep-wound")["experiment"]
    link = f"{uri}/#/experiments/{exp['experiment_id']}/runs?workflowType=machine_learning"
    assert link in out.replace("\n", "")
    assert _tags(exp)["mlflow.experimentKind"] == "custom_model_development"


def test_parent_children_descriptions_and_dataset_inputs(served_sweep):
    uri = served_sweep.uri
    exp = _get(uri, "experiments/get-by-name", experiment_name="kdsweep-wound")["experiment"]
    runs = _post(uri, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100})["runs"]
    by_stage: dict[str, list[dict]] = {}
    for r in runs:
        by_stage.setdefault(_tags(r["data"])["stage"], []).append(r)
    (parent,) = by_stage["sweep"]
    pid = parent["info"]["run_id"]
    students, teachers = by_stage["student"], by_stage["teacher"]
    assert len(students) == 2 and len(teachers) == 1
    for r in students + teachers:
        assert _tags(r["data"])["mlflow.parentRunId"] == pid and r["info"]["status"] == "FINISHED"
    # the parent's description is the summary table, with each student's run id in it
    note = _tags(parent["data"])["mlflow.note.content"]
    assert "| # | configuration | status | dev dev/avg_f1 | test avg F1 | run / error |" in note
    for s in students:
        assert f"`{s['info']['run_id']}`" in note
    digests: dict[str, set[str]] = {}
    for r in students + teachers:
        tags = _tags(r["data"])
        metrics = {m["key"]: m["value"] for m in r["data"]["metrics"]}
        params = {p["key"]: p["value"] for p in r["data"]["params"]}
        text = tags["mlflow.note.content"]
        role = tags["stage"]
        assert text.startswith(f"{role}: ") and "seed 0" in text
        assert f"test avg_f1 **{metrics['test/avg_f1']:.4f}**" in text
        if role == "student":
            assert f"loss {tags['loss']}" in text
        inputs = _get(uri, "runs/get", run_id=r["info"]["run_id"])["run"]["inputs"]["dataset_inputs"]
        contexts = {}
        for i in inputs:
            ds = i["dataset"]
            assert ds["name"] == "wound"
            # the root as given: a tmp folder, outside the project, so its own absolute path
            assert json.loads(ds["source"])["uri"] == params["dataset.root"]
            contexts[_tags(i)["mlflow.data.context"]] = ds["digest"]
        assert set(contexts) == {"train", "dev", "test"}
        for split, d in contexts.items():
            digests.setdefault(split, set()).add(d)
            assert tags[f"data.digest.{split}"] == d
    assert all(len(v) == 1 for v in digests.values()), digests  # same data, same digest


def test_a_split_digest_follows_content_not_location(synth_wound, tmp_path):
    from pipeline.config.loader import load_experiment
    from pipeline.data.dataset import read_splits
    from pipeline.data.digest import split_digest

    def digests(root: Path) -> dict[str, str]:
        cfg = load_experiment("default", [f"dataset.root={root}"]).dataset
        splits, _ = read_splits(cfg)
        return {n: split_digest(cfg.root, s) for n, s in splits.items()}

    first = digests(synth_wound)
    copy = tmp_path / "copy"
    shutil.copytree(synth_wound, copy)
    assert digests(copy) == first  # a copy elsewhere: the same digests
    cfg = load_experiment("default", [f"dataset.root={copy}"]).dataset
    test_image = read_splits(cfg)[0]["test"][0].image_path
    test_image.write_bytes(test_image.read_bytes() + b"\0")  # one changed file
    changed = digests(copy)
    assert changed["test"] != first["test"] and changed["train"] == first["train"]


def test_the_report_warns_when_compared_runs_read_different_data():
    from reports.query import Sweep
    from reports.sections import data_warnings

    runs = pd.DataFrame(
        {
            "tags.fold": ["0", "0", "1"],
            "tags.data.digest.test": ["aaaa", "bbbb", "aaaa"],
            "tags.data.digest.train": ["t0", "t0", "t1"],  # folds differ in train: expected
        }
    )
    sweep = Sweep("p", "mil", "mil", "brats", "h", "2026", [], runs=runs)
    lines = data_warnings([sweep])
    assert lines[0] == "## Warning: runs on different data"
    (found,) = [x for x in lines if x.startswith("- ")]
    assert re.fullmatch(
        r"- brats / mil fold 0: test split digests `aaaa` \(1 runs\), `bbbb` \(1 runs\)", found
    )
    agreeing = runs.assign(**{"tags.data.digest.test": "aaaa"})
    assert data_warnings([Sweep("p", "mil", "mil", "brats", "h", "2026", [], runs=agreeing)]) == []


def test_trial_runs_carry_system_metrics(served_sweep):
    uri = served_sweep.uri
    exp = _get(uri, "experiments/get-by-name", experiment_name="kdsweep-wound")["experiment"]
    runs = _post(uri, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100})["runs"]
    for r in runs:
        keys = {m["key"] for m in r["data"].get("metrics", [])}
        if _tags(r["data"])["stage"] == "sweep":
            assert not any(k.startswith("system/") for k in keys)  # the driver's run is no trial
        else:
            assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= keys


def test_a_run_shorter_than_the_sampling_interval_still_carries_system_metrics(tmp_path, monkeypatch):
    """MLflow's sampler drops the sample in progress when a run ends; kdsweep writes a last one,
    so a trial faster than `tracking.system_metrics_interval` is not left without any."""
    from mlflow.tracking import MlflowClient

    from pipeline import tracking
    from support import sqlite_store

    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with tracking.run("short", "short-run", {"stage": "student"}, system_metrics=60) as log:
        run_id = log.run_id
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert {
        "system/cpu_utilization_percentage",
        "system/system_memory_usage_megabytes",
    } <= run.data.metrics.keys()


def test_the_chosen_student_is_registered_and_reproduces_its_test_predictions(served_sweep, tmp_path):
    import io

    import numpy as np
    from mlflow.tracking import MlflowClient

    uri, out = served_sweep.uri, served_sweep.stdout
    name = "study-wound-student"  # <study>-<dataset>-student; the study file is study.yaml
    model = _get(uri, "registered-models/get", name=name)["registered_model"]
    (version,) = model["latest_versions"]
    tags = _tags(version)
    assert tags["selection"].startswith("best mean dev dev/avg_f1") and tags["sweep_run_id"]
    run_id = version["run_id"]
    assert f"registered the chosen student as model {name!r} version 1 (run {run_id})" in out
    # the chosen run is the best on dev among the students, never picked on test
    exp = _get(uri, "experiments/get-by-name", experiment_name="kdsweep-wound")["experiment"]
    runs = _post(uri, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100})["runs"]
    dev = {
        r["info"]["run_id"]: {m["key"]: m["value"] for m in r["data"]["metrics"]}["dev/avg_f1"]
        for r in runs
        if _tags(r["data"])["stage"] == "student"
    }
    assert dev[run_id] == max(dev.values())
    # the description says what the model is, how it was chosen and that one seed's lead over
    # the runner-up is no evidence; the model's page shows it as the version's does
    text = version["description"]
    assert model["description"] == text
    chosen = next(r for r in runs if r["info"]["run_id"] == run_id)
    loss = _tags(chosen["data"])["loss"]
    assert text.startswith(
        "Student: vit_tiny_patch16_224 32px + distilbert, cross_attention fusion; dataset wound;"
    )
    assert f"loss {loss}" in text and "in study `study` on `wound`" in text
    best = {  # what selection reads: the restored best checkpoint on dev
        r["info"]["run_id"]: {m["key"]: m["value"] for m in r["data"]["metrics"]}["best_dev/avg_f1"]
        for r in runs
        if _tags(r["data"])["stage"] == "student"
    }
    assert f"dev dev/avg_f1 {best[run_id]:.4f}" in text
    other = ({"none", "vanilla"} - {loss}).pop()
    lead = best[run_id] - next(v for k, v in best.items() if k != run_id)
    assert f"runner-up `loss.name={other}`, lead {lead:+.4f}; one seed: cannot tell noise from effect" in text
    # the test split as the model's input matrix, built by kdsweep here (the loading process
    # below has neither kdsweep's config nor its data stage)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        from pipeline import tracking
        from pipeline.config.loader import load_experiment
        from pipeline.training.export import packed
        from pipeline.training.run import build_model, prepare

        cfg_path = tmp_path / "config.yaml"
        cfg_path.write_text(tracking.read_text(run_id, "config.yaml"))
        cfg = load_experiment(str(cfg_path))
        data, _ = prepare(cfg, say=lambda _: None)
        student = build_model(cfg.student, data, "student", cfg.seed + 1)
        module, matrix = packed(student, data, cfg)
        saved = pd.read_csv(io.StringIO(tracking.read_text(run_id, "predictions/test.csv")))
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")
    np.save(tmp_path / "x.npy", matrix.numpy())
    code = (
        "import sys, numpy as np, torch, mlflow.pytorch\n"
        f"m = mlflow.pytorch.load_model('models:/{name}/1')\n"
        f"assert type(mlflow.pytorch.load_model('runs:/{run_id}/student')) is type(m)\n"
        "with torch.no_grad():\n"
        f"    np.save(sys.argv[1], m(torch.from_numpy(np.load(r'{tmp_path / 'x.npy'}'))).numpy())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KDSWEEP")}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "p.npy")],
        cwd=tmp_path,  # not the project: the model brings its code (code_paths)
        env={**env, "MLFLOW_TRACKING_URI": uri},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    probs = np.load(tmp_path / "p.npy")
    assert list(saved.columns[saved.columns.str.contains("/p/")]) == module.columns
    np.testing.assert_allclose(probs, saved[module.columns].to_numpy(), atol=2e-6)
    client = MlflowClient(uri)
    assert client.get_run(run_id).data.tags["stage"] == "student"
