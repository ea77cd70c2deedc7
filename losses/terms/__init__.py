"""Loss terms (losses/terms/base.py): importing this package registers every term in it."""

import importlib
import pkgutil

from losses.terms.base import TERMS, Projections, Term, TermContext

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["TERMS", "Projections", "Term", "TermContext"]
