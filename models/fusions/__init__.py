"""Importing this package imports every fusion module in it, so each registers itself."""

import importlib
import pkgutil

from models.fusions.base import FUSIONS, Fusion, build_fusion

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["FUSIONS", "Fusion", "build_fusion"]
