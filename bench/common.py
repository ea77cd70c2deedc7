"""What the benchmark figures share: the scale (full or quick), the work folder, child processes.

Every measurement runs in a fresh child process (`python -m bench.child module:function`), so a
figure never inherits another's threads, caches, Ray session or memory high-water mark. The
parent only starts children, times them when the child's own start-up is part of the figure,
and collects what they return (JSON).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDPIX = REPO.parent / "shared" / "datasets" / "medpix-2.0-small"


@dataclass(frozen=True)
class Scale:
    """What `make bench` and `make bench-quick` differ in (quick: correctness only)."""

    name: str
    n_train: int
    n_eval: int  # dev and test each
    image_size: int
    epochs: int  # teacher and student epochs of the tiny trials
    orchestration_waves: int  # trials per concurrent slot in the orchestration figure
    reuse_students: int
    repeats: int  # alternating repetitions of the tracking and input-pipeline figures
    report_sizes: tuple[int, ...]
    latency_processes: int
    latency_runs: int
    paper_memory: bool


FULL = Scale("full", 1200, 300, 64, 4, 4, 5, 5, (100, 1000, 10000), 5, 100, True)
QUICK = Scale("quick", 60, 20, 32, 1, 1, 2, 1, (20, 60), 2, 5, False)


@dataclass(frozen=True)
class Context:
    """Where a figure works and at what scale; passed to every child as JSON."""

    scale: Scale
    work: str  # the bench work folder (its own MLflow store, cache and data)
    data_root: str  # the synthetic-wound copy the tiny figures train on
    real_data: bool

    @property
    def store(self) -> str:
        """The shared MLflow store of the tiny figures (one teacher serves several of them)."""
        return f"sqlite:///{Path(self.work) / 'mlruns' / 'mlflow.db'}"

    def overrides(self, epochs: int | None = None) -> list[str]:
        """The tiny profile on the bench dataset; patience = epochs so every trial runs them all
        (identical trials must cost the same)."""
        e = self.scale.epochs if epochs is None else epochs
        px = self.scale.image_size
        return [
            "dataset=synthetic-wound",
            f"dataset.root={self.data_root}",
            "profile=tiny",
            f"teacher.vision.image_size={px}",
            f"teacher.vision.kwargs.img_size={px}",
            f"student.vision.image_size={px}",
            f"student.vision.kwargs.img_size={px}",
            f"train.teacher_epochs={e}",
            f"train.student_epochs={e}",
            f"train.patience={e}",
            f"train.latency_runs={self.scale.latency_runs}",
            "train.device=cpu",
        ]

    def to_json(self) -> dict:
        return {**asdict(self), "scale": asdict(self.scale)}

    @classmethod
    def from_json(cls, d: dict) -> Context:
        scale = d["scale"]
        return cls(
            Scale(**{**scale, "report_sizes": tuple(scale["report_sizes"])}),
            d["work"],
            d["data_root"],
            d["real_data"],
        )


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 / 1024 if sys.platform == "darwin" else r / 1024


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start


def child(
    ctx: Context, target: str, env: dict[str, str] | None = None, timeout: float = 3600, **kwargs: Any
) -> dict:
    """Run `module:function(ctx, **kwargs)` in a fresh Python process; its JSON result, plus
    `wall_s` (the child's whole life, start-up included) and `peak_rss_mb`."""
    out = Path(ctx.work) / "results" / f"{target.replace(':', '.')}-{time.monotonic_ns()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    arg = json.dumps({"ctx": ctx.to_json(), "kwargs": kwargs})
    full_env = {**os.environ, "MLFLOW_TRACKING_URI": ctx.store, **(env or {})}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.child", target, arg, str(out)],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{target} exited {proc.returncode}:\n{tail}")
    result = json.loads(out.read_text())
    result["wall_s"] = wall
    return result


def write_study(path: Path, name: str, space: dict, extra: dict | None = None) -> Path:
    """A study YAML for a figure (same format as sweeps/*.yaml)."""
    import yaml

    study = {
        "description": f"benchmark study {name}",
        "experiment": "default",
        "space": space,
        "metric": "dev/avg_f1",
        "mode": "max",
        "search": {"algorithm": "grid"},
        "seeds": [0],
        "resources": {"cpu": 1, "gpu": 0},
        "retries": 0,
        **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def quiet(_: str) -> None:
    pass


@dataclass
class KDStep:
    """A student, its KD loss, its frozen teacher and an optimiser: what one training step needs
    (the same objects `pipeline.training.run.run_student` builds), for the figures that time the loop."""

    cfg: Any
    data: Any
    device: Any
    teacher: Any
    student: Any
    loss_fn: Any
    frozen: Any
    params: list
    opt: Any

    @classmethod
    def build(cls, overrides: list[str]) -> KDStep:
        from losses import LOSSES
        from models.model import FrozenTeacher
        from pipeline.config.loader import load_experiment
        from pipeline.training.run import build_model, loss_context, prepare
        from pipeline.training.train import optimizer

        cfg = load_experiment("default", overrides)
        data, device = prepare(cfg, quiet)
        teacher = build_model(cfg.teacher, data, "teacher", cfg.seed)
        student = build_model(cfg.student, data, "student", cfg.seed + 1)
        loss_fn = LOSSES.get(cfg.loss.name)(cfg.loss, loss_context(data, student, teacher))
        frozen = FrozenTeacher(teacher).to(device)
        params, opt = optimizer(student, loss_fn, cfg.train)
        return cls(cfg, data, device, teacher, student, loss_fn, frozen, params, opt)

    def epoch(self, batches) -> int:
        """One pass of `pipeline.training.train.train_epoch` over `batches`; the number of samples."""
        from pipeline.training.train import train_epoch

        s = self
        return train_epoch(
            s.student, s.loss_fn, s.opt, batches, s.device, s.params, s.cfg.train.grad_clip, s.frozen
        )[1]


# both arms run the teacher online: whichever ran first would otherwise build the teacher-output
# cache for the other (figure 13 measures the cache; this figure the orchestration around trials)
NO_CACHE = "train.teacher_cache=false"
