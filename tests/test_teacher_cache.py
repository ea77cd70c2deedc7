"""The teacher-output cache (pipeline.training.teacher_cache): a student distilled from cached
teacher outputs gets the same numbers as one whose teacher runs online; the cache is keyed so
that a retrained teacher, a changed image or a changed preprocessing key misses; random train
views never read it; a second process reads what the first wrote."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline.training import teacher_cache
from support import runs_by_stage, sqlite_store, tiny_overrides

REPO = Path(__file__).resolve().parents[1]


def _cfg(root: Path, *extra: str):
    from pipeline.config.loader import load_experiment

    return load_experiment("default", [*tiny_overrides(root, epochs=1), "train.student_epochs=2", *extra])


def test_cached_and_online_teachers_give_the_same_student(tmp_path, synth_wound, kdsweep_cache, monkeypatch):
    from pipeline.training.run import run_experiment

    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cached = run_experiment(_cfg(synth_wound), say=lambda s: None)
    online = run_experiment(_cfg(synth_wound, "train.teacher_cache=false"), say=lambda s: None)
    assert online.teacher_reused and online.teacher_run_id == cached.teacher_run_id
    timing = ("latency_ms", "latency_p90_ms", "peak_rss_mb")  # measured, not computed
    same = lambda m: {k: v for k, v in m.items() if k not in timing}  # noqa: E731
    assert same(cached.student) == same(online.student)  # every other metric, to the last bit
    client = MlflowClient(uri)
    tags = {r.info.run_id: r.data.tags["teacher_outputs"] for r in runs_by_stage(client, "student")}
    assert tags[cached.student_run_id] == "cached"
    assert tags[online.student_run_id] == "online (train.teacher_cache is off)"
    (folder,) = [p for p in (kdsweep_cache / "teacher-outputs").iterdir() if not p.name.startswith(".")]
    assert (folder / "done").read_text() == cached.teacher_run_id
    # published beside the teacher for students on other machines
    assert [a.path for a in client.list_artifacts(cached.teacher_run_id, "teacher_outputs")] == [
        f"teacher_outputs/{folder.name}"
    ]
    assert {p.name for p in folder.glob("*.npy")} >= {"logits.type.npy", "logits.severity.npy", "fused.npy"}


def test_random_views_run_the_teacher_online():
    assert teacher_cache.mode("none", True, "run") == (True, "cached")
    use, said = teacher_cache.mode("flip", True, "run")
    assert not use and said.startswith("online (train.augment=flip")
    assert teacher_cache.mode("none", True, "")[0] is False  # nothing to key by


def test_untracked_runs_never_share_a_cache(monkeypatch):
    # --no-track: every teacher's run id is "untracked"; a cache keyed by it would serve one
    # teacher's outputs to another's students
    monkeypatch.setenv("KDSWEEP_TRACKING", "off")
    assert teacher_cache.mode("none", True, "untracked") == (
        False,
        "online (no teacher run to key a cache by)",
    )


@pytest.fixture
def bundle(synth_wound, tmp_path, monkeypatch):
    from pipeline.training.run import prepare

    # a store of the test's own: a cache is published beside (and looked up at) its teacher run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp_path / "store" / "mlflow.db"))

    def data(root: Path, *extra: str):
        return prepare(_cfg(root, *extra), say=lambda s: None)[0]

    return data


def _teacher(data, *extra: str):
    from models.model import FrozenTeacher
    from pipeline.training.run import build_model

    return FrozenTeacher(build_model(_cfg(Path("."), *extra).teacher, data, "teacher", 0))


def test_a_retrained_teacher_a_changed_image_or_preprocessing_misses(
    tmp_path, synth_wound, kdsweep_cache, bundle
):
    copy = tmp_path / "wound"
    shutil.copytree(synth_wound, copy)
    data = bundle(copy)
    teacher, cpu = _teacher(data), torch.device("cpu")
    first = teacher_cache.cached_teacher(teacher, data, "run-a", 64, cpu)
    assert teacher_cache.cached_teacher(teacher, data, "run-a", 64, cpu).maps.keys() == first.maps.keys()
    teacher_cache.cached_teacher(teacher, data, "run-b", 64, cpu)  # a retrained teacher: its own run
    for image in copy.rglob("*.png"):  # changed image files (a trailing byte): another train digest
        image.write_bytes(image.read_bytes() + b"\0")
    changed = bundle(copy)
    assert changed.digests["train"] != data.digests["train"]
    teacher_cache.cached_teacher(_teacher(changed), changed, "run-a", 64, cpu)
    bigger = bundle(copy, "teacher.vision.image_size=48", "teacher.vision.kwargs.img_size=48")
    size = ("teacher.vision.image_size=48", "teacher.vision.kwargs.img_size=48")
    teacher_cache.cached_teacher(_teacher(bigger, *size), bigger, "run-a", 64, cpu)  # another input tensor
    folders = [p for p in (kdsweep_cache / "teacher-outputs").iterdir() if not p.name.startswith(".")]
    assert len(folders) == 4  # run-a, run-b, the changed images, the bigger input


def test_a_second_process_reads_the_cache(synth_wound, kdsweep_cache, bundle):
    data = bundle(synth_wound)
    teacher = _teacher(data)
    got = teacher_cache.cached_teacher(teacher, data, "run-x", 64, torch.device("cpu"))
    batch = next(iter(data.loader("train", 16, shuffle=True, seed=3)))
    want = teacher(batch)
    assert torch.allclose(got(batch).fused, want.fused, atol=1e-6)
    (folder,) = [p for p in (kdsweep_cache / "teacher-outputs").iterdir() if not p.name.startswith(".")]
    code = (
        "import sys, torch; from pathlib import Path; from pipeline.training.teacher_cache import CachedTeacher;"
        f"t = CachedTeacher(Path({str(folder)!r}), torch.device('cpu'));"
        f"o = t({{'index': torch.tensor({batch['index'].tolist()})}});"
        "print(repr(o.fused.sum().item()))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert float(out.stdout) == got(batch).fused.sum().item()


def test_a_student_on_another_machine_downloads_the_published_cache(
    tmp_path, synth_wound, kdsweep_cache, bundle, monkeypatch
):
    """The first builder logs the cache beside its teacher run; a student whose local cache is
    empty (another node) reads it from there instead of computing it: here a differently
    initialised teacher, whose own outputs would differ, gets the published ones."""
    from pipeline import tracking

    data = bundle(synth_wound)
    c = tracking.client()
    run = c.create_run(tracking.experiment_id(c, "kdsweep-cache-test")).info.run_id
    cpu = torch.device("cpu")
    first = teacher_cache.cached_teacher(_teacher(data), data, run, 64, cpu)
    published = [a.path for a in c.list_artifacts(run, "teacher_outputs")]
    assert len(published) == 1  # teacher_outputs/<key>
    monkeypatch.setenv("KDSWEEP_CACHE", str(tmp_path / "other-node"))
    other = _teacher(data, "teacher.fusion.layers=2")  # not the teacher that built it
    got = teacher_cache.cached_teacher(other, data, run, 64, cpu)
    batch = next(iter(data.loader("train", 8)))
    assert torch.equal(got(batch).fused, first(batch).fused)
    assert not torch.allclose(other(batch).fused, first(batch).fused)  # computing would differ
