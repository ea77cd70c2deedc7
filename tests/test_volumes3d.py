"""3-D models on whole BraTS volumes (issue 17): the volume reader, the MONAI models, the folds
shared with DSMIL, and a tracked run whose metrics.json has a DSMIL run's keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import ConfigError, DataError
from core.schema import VolumeConfig
from pipeline.config.loader import load_experiment
from support import sqlite_store

MODS = ("flair", "t1ce", "t2")
SMALL = (24, 24, 12)  # the fixture's volumes: the synthetic generator's smallest useful size


@pytest.fixture(scope="module")
def synth_brats(tmp_path_factory) -> Path:
    from pipeline.data.synth.brats import generate_brats

    out = tmp_path_factory.mktemp("brats3d") / "brats"
    generate_brats(out, n_hgg=14, n_lgg=6, shape=SMALL, seed=0)
    return out


def _cfg(root: Path, experiment: str = "resnet3d", *extra: str):
    shape = f"[{', '.join(map(str, SMALL))}]"
    return load_experiment(
        experiment,
        [
            f"dataset.root={root}",
            f"teacher.volume.shape={shape}",
            f"student.volume.shape={shape}",
            "train.teacher_epochs=1",
            "train.student_epochs=1",
            "train.latency_runs=2",
            "train.device=cpu",
            *extra,
        ],
    )


def _record(root: Path, arrays: dict[str, np.ndarray], name: str = "BraTS19_X_1_1"):
    """One subject folder with the given modality volumes; its BagRecord."""
    import nibabel as nib

    from pipeline.data.bags import BagRecord

    folder = root / "HGG" / name
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for m, a in arrays.items():
        path = folder / f"{name}_{m}.nii.gz"
        nib.Nifti1Image(a.astype(np.float32), np.eye(4)).to_filename(path)
        paths.append(path)
    return BagRecord(name, "HGG", tuple(paths), str(folder))


def _brain(shape=(10, 12, 8), box=(slice(2, 6), slice(3, 10), slice(1, 4)), seed=0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for m in MODS:
        v = np.zeros(shape, dtype=np.float32)
        v[box] = rng.uniform(50, 500, size=v[box].shape)
        out[m] = v
    return out


# --------------------------------------------------------------------------- the volume reader
def test_volume_is_normalised_per_volume_and_cropped_to_the_brain(tmp_path):
    from pipeline.data.brats import normalise
    from pipeline.data.volumes import load_volume

    arrays = _brain()
    record = _record(tmp_path, arrays)
    box = (slice(2, 6), slice(3, 10), slice(1, 4))
    exact = load_volume(record, MODS, (4, 7, 3))  # the box's own size: nothing padded or resampled
    assert exact.dtype == np.uint8 and exact.shape == (3, 4, 7, 3)
    for c, m in enumerate(MODS):  # the slices' normalisation, statistics of the whole volume
        want = np.clip(np.rint(normalise(arrays[m], m)[box]), 0, 255)
        np.testing.assert_array_equal(exact[c], want)
    padded = load_volume(record, MODS, (8, 11, 9))  # centred in zeros
    np.testing.assert_array_equal(padded[:, 2:6, 2:9, 3:6], exact)
    assert padded.sum() == exact.sum()


def test_volume_fits_the_shape_by_shrinking_padding_or_resizing(tmp_path):
    from pipeline.data.volumes import brain_box, load_volume

    record = _record(tmp_path, _brain())
    shrunk = load_volume(record, MODS, (3, 3, 3))  # box 4x7x3: one factor 3/7 for every axis
    assert shrunk.shape == (3, 3, 3, 3)
    box = brain_box(shrunk)
    assert [s.stop - s.start for s in box][1] == 3  # the longest side fills its axis
    resized = load_volume(record, MODS, (6, 5, 4), "resize")  # exactly the shape, no zeros added
    assert resized.shape == (3, 6, 5, 4) and np.all(np.any(resized != 0, axis=0))


def test_flips_happen_in_training_batches_only(synth_brats):
    from pipeline.data.volumes import random_flips
    from pipeline.training.run import prepare

    v = torch.arange(2 * 1 * 2 * 3 * 4).reshape(2, 1, 2, 3, 4)
    torch.manual_seed(0)
    out = random_flips(v)
    for b in range(2):  # each volume is itself mirrored along some subset of the three axes
        assert any(
            torch.equal(out[b], v[b].flip(axes) if axes else v[b])
            for axes in [(), (1,), (2,), (3,), (1, 2), (1, 3), (2, 3), (1, 2, 3)]
        )
    data, _ = prepare(_cfg(synth_brats, "resnet3d", "train.augment=flip"), lambda _: None)
    stored = data.splits["train"].t["volume"]
    torch.manual_seed(0)
    train = list(data.loader("train", 4, shuffle=True))
    assert any(not torch.equal(b["volume"], stored[b["index"]]) for b in train)
    for name in ("dev", "test"):
        for b in data.loader(name, 4):
            assert torch.equal(b["volume"], data.splits[name].t["volume"][b["index"]])
    for b in data.loader("train", 4, plain=True):
        assert torch.equal(b["volume"], stored[b["index"]])


def test_decoded_volumes_are_cached(synth_brats, monkeypatch):
    import pipeline.data.volumes as volumes
    from pipeline.data.brats import read_brats

    records = read_brats(synth_brats, MODS)[:3]
    first = volumes.VolumeSet(records, MODS, SMALL, "pad")
    assert not first.cached
    first.save()

    def boom(*_a, **_k):
        raise AssertionError("decoded again instead of read from the cache")

    monkeypatch.setattr(volumes, "load_volume", boom)
    again = volumes.VolumeSet(records, MODS, SMALL, "pad")
    assert again.cached and all(np.array_equal(a, b) for a, b in zip(first.bags, again.bags, strict=True))
    with pytest.raises(AssertionError, match="decoded again"):  # another shape is another key
        volumes.VolumeSet(records, MODS, (12, 12, 12), "pad")


def test_bad_volumes_are_one_line_errors(tmp_path):
    from pipeline.data.volumes import load_volume

    empty = _record(tmp_path / "a", {m: np.zeros((6, 6, 6)) for m in MODS})
    with pytest.raises(DataError, match="every voxel is 0") as err:
        load_volume(empty, MODS, (6, 6, 6))
    assert "\n" not in str(err.value)
    broken = _record(tmp_path / "b", _brain())
    broken.instances[1].write_bytes(b"not a nifti")
    with pytest.raises(DataError, match=r"t1ce.nii.gz: cannot read NIfTI header") as err:
        load_volume(broken, MODS, (6, 6, 6))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"volume.shape: expected three sides"):
        load_volume(_record(tmp_path / "c", _brain()), MODS, (6, 6))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["student.volume.shape=[24, 24]"], r"student.volume.shape: expected three sides >= 1"),
        (
            ["student.volume.name=resnet"],
            r"student.volume.name: unknown 3-D model 'resnet' \(valid: resnet3d, swin3d\)",
        ),
        (
            ["student.volume.shape=[24, 24, 24]"],
            r"student.volume.shape: expected the teacher's shape and fit",
        ),
        (["train.augment=flip_crop"], r"train.augment: expected none or flip with a 3-D model"),
        (["student.mil.name=dsmil"], r"student.volume.name: a 3-D model reads whole BraTS volumes"),
        (["student.modalities=both"], r"student.volume.name: a 3-D model reads images only"),
    ],
)
def test_bad_3d_configs_are_one_line(synth_brats, extra, message):
    with pytest.raises(ConfigError, match=message) as err:
        _cfg(synth_brats, "resnet3d", *extra)
    assert "\n" not in str(err.value)


def test_a_3d_model_needs_brats_volumes():
    with pytest.raises(ConfigError, match=r"teacher.volume.name: .* needs dataset.format brats"):
        load_experiment("default", ["dataset=synthetic-wound", "teacher.volume.name=resnet3d"])


# --------------------------------------------------------------------------- the models
@pytest.mark.parametrize(("name", "width"), [("resnet3d", 128), ("swin3d", 192)])
def test_3d_models_give_logits_and_features(name, width):
    from models.model import KDModel
    from tasks import TASK_KINDS

    cfg = load_experiment(name).student  # the brats3d-tiny sizes
    kind = TASK_KINDS.get("multiclass")({"grade": ("HGG", "LGG")})
    torch.manual_seed(0)
    model = KDModel(cfg, kind, 0, 3, "student").eval()
    batch = {"volume": torch.randint(0, 256, (2, 3, 40, 40, 24), dtype=torch.uint8)}
    with torch.no_grad():
        out = model(batch)
    assert out.logits["grade"].shape == (2, 2) and out.fused.shape == (2, width)
    assert model.feature_dim == width and torch.isfinite(out.logits["grade"]).all()


def test_the_3d_registry_and_its_options_fail_in_one_line():
    from models.volume3d import MODELS3D, build_volume

    assert MODELS3D.names() == ["resnet3d", "swin3d"]
    with pytest.raises(
        ConfigError, match=r"student.volume.name: unknown 3-D model 'vit3d' \(valid: resnet3d, swin3d\)"
    ):
        build_volume(VolumeConfig(name="vit3d"), 3, "student.volume")
    with pytest.raises(ConfigError, match=r"teacher.volume.depth: expected one of 10, 18, 34, 50"):
        build_volume(VolumeConfig(name="resnet3d", depth=20), 3, "teacher.volume")
    with pytest.raises(ConfigError, match=r"volume.feature_size: expected a multiple of 12"):
        build_volume(VolumeConfig(name="swin3d", feature_size=16), 3)
    with pytest.raises(ConfigError, match=r"volume.num_heads\[1\]: expected a divisor of stage 1's width 24"):
        build_volume(VolumeConfig(name="swin3d", feature_size=12, num_heads=(3, 5, 12, 24)), 3)


# --------------------------------------------------------------------------- one protocol with DSMIL
def test_3d_models_get_exactly_dsmil_s_test_set_and_folds(synth_brats):
    from pipeline.training.run import prepare

    folds = 3
    seen_dev: list[str] = []
    for fold in range(folds):
        split = [f"split.folds={folds}", f"split.fold={fold}"]
        mil, _ = prepare(
            _cfg(synth_brats, "mil", "teacher.vision.image_size=24", "student.vision.image_size=24", *split),
            lambda _: None,
        )
        vol, _ = prepare(_cfg(synth_brats, "resnet3d", *split), lambda _: None)
        assert vol.case_ids == mil.case_ids and set(mil.case_ids) == {"train", "dev", "test"}
        for name in ("train", "dev", "test"):
            assert torch.equal(vol.splits[name].t["labels"]["grade"], mil.splits[name].t["labels"]["grade"])
        assert "image" in mil.splits["dev"].t and "image" not in vol.splits["dev"].t  # each its input
        seen_dev += mil.case_ids["dev"]
    pool = set(mil.case_ids["train"]) | set(mil.case_ids["dev"])
    assert sorted(seen_dev) == sorted(pool)  # the folds partition train+dev
    assert not pool & set(mil.case_ids["test"])


# --------------------------------------------------------------------------- tracked runs
@pytest.mark.slow
def test_resnet3d_run_writes_dsmil_s_metrics_json_and_teaches_dsmil(synth_brats, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from pipeline.training.run import run_experiment

    uri = sqlite_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)

    def summary(run_id: str) -> dict:
        path = client.download_artifacts(run_id, "metrics.json", str(tmp_path / run_id))
        return json.loads(Path(path).read_text())

    split = ["split.folds=3", "split.fold=1"]
    resnet = run_experiment(_cfg(synth_brats, "resnet3d", *split), say=lambda _: None)
    run = client.get_run(resnet.student_run_id)
    assert run.data.tags["vision"] == "resnet3d" and run.data.params["student.volume.name"] == "resnet3d"
    assert "data/train_bags/HGG" in run.data.metrics
    # the 3-D ResNet (the same teacher, reused) distils into a DSMIL student by bag-level KD
    kd = _cfg(
        synth_brats,
        "resnet3d",
        *split,
        "student.volume.name=none",
        "student.mil.name=dsmil",
        "student.vision.image_size=24",
        "loss.name=vanilla",
    )
    dsmil = run_experiment(kd, say=lambda _: None)
    assert dsmil.teacher_reused and dsmil.teacher_run_id == resnet.teacher_run_id
    assert client.get_run(dsmil.student_run_id).data.metrics["train/kd"] >= 0
    a, b = summary(resnet.student_run_id), summary(dsmil.student_run_id)
    assert set(a) == set(b) and a["classes"] == b["classes"] == ["HGG", "LGG"]
    assert sum(map(sum, a["confusion_matrix"])) == sum(map(sum, b["confusion_matrix"]))  # same test
