"""Importing this package imports every loss module in it, so each registers itself."""

import importlib
import pkgutil

from losses.base import LOSSES, DistillLoss, LossContext

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["LOSSES", "DistillLoss", "LossContext"]
