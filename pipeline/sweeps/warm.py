"""Warm workers: on a Ray of the sweep's own, the workers that will run trials import the trial's
code (torch, timm, transformers, scikit-learn, Ray Tune: ~10 s of CPU on 2 cores) as soon as
Ray starts them, while the driver still opens MLflow and sets up Ray Tune.

Ray starts one worker per CPU with its node and hands them the first actors, so the first
trials' workers exist before the driver asks for them; but only for a job without a
runtime_env (with one, checked: Ray starts other workers for the trials and the prestarted ones
idle). The job's environment therefore reaches the workers by inheritance, set around ray.init
(pipeline.sweeps.cluster.connect), and so does the variable of Ray's worker_process_setup_hook,
which runs `warm` in each worker. Only the first `slots` workers import (as many as trials run
at once): on a machine with many cores the other prestarted workers stay small. A worker Ray
starts later (a new phase's trials) finds the slots taken and imports in its trial, as before.
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import tempfile
from collections.abc import Sequence

MODULES = "KDSWEEP_WARM"  # the modules to import, comma-separated
SLOTS = "KDSWEEP_WARM_SLOTS"  # "<count>:<folder>": one file per claimed slot in the folder


def environment(modules: Sequence[str], slots: int) -> dict[str, str]:
    """The variables that make the workers of a Ray started now import `modules`, at most
    `slots` of them (0: every worker); empty when there is nothing to import."""
    from ray._private import ray_constants  # the setup hook's variable has no public name

    hook = getattr(ray_constants, "WORKER_PROCESS_SETUP_HOOK_ENV_VAR", None)
    if not modules or hook is None:
        return {}
    folder = tempfile.mkdtemp(prefix="kdsweep-warm-")
    atexit.register(shutil.rmtree, folder, True)
    return {hook: f"{__name__}.warm", MODULES: ",".join(modules), SLOTS: f"{max(slots, 0)}:{folder}"}


def warm() -> None:
    """The setup hook: claim a slot, then import. Never raises (Ray would end the worker): an
    import that fails here fails again in the trial, which reports it."""
    count, _, folder = os.environ.get(SLOTS, "0:").partition(":")
    if not _claim(folder, int(count or 0)):
        return
    for name in filter(None, os.environ.get(MODULES, "").split(",")):
        try:
            importlib.import_module(name)
        except Exception:
            pass


def _claim(folder: str, count: int) -> bool:
    """One of `count` slots (0: no limit), taken by creating its file: atomic across processes."""
    if count <= 0:
        return True
    for i in range(count):
        try:
            os.close(os.open(os.path.join(folder, str(i)), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            continue
        except OSError:  # the folder is gone (the driver exited): nothing to warm up for
            return False
    return False
