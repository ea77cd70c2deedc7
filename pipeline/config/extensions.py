"""The extension registries as config validation sees them: read from their source, not imported.

`losses.LOSSES`, `models.fusions.FUSIONS`, `models.backbones.VISION` / `TEXT` and
`tasks.TASK_KINDS` fill themselves when their modules are imported, and those modules import
torch, timm and scikit-learn (~6 s on 2 cores): the sweep driver would pay that only to check
names in YAML files, and then again in every Ray worker. Every entry is one
`@REGISTRY.register("name")` decorator on a class or function of its package (core.registry),
so the names, and the class attributes validation reads (a loss's `uses_teacher` and `kinds`,
a task kind's `label_losses`), are read here from the source with `ast`, inherited ones
included. Whatever is not a plain literal there, and a loss's own `params` (its `Params`
dataclass lives beside its torch code), comes from the imported registry instead: slower,
never different. tests/test_startup.py checks this view against the imported registries.
"""

from __future__ import annotations

import ast
import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.registry import Registry

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# registry -> (the folder whose modules register into it, the module that imports them all)
SOURCES = {
    "LOSSES": ("losses", "losses"),
    "FUSIONS": ("models/fusions", "models.fusions"),
    "VISION": ("models", "models.backbones"),
    "TEXT": ("models", "models.backbones"),
    "MODELS3D": ("models", "models.volume3d"),
    "TASK_KINDS": ("tasks", "tasks"),
}
# bases outside the project that define none of the attributes read here
_NEUTRAL_BASES = {"object", "Module", "nn.Module", "ABC", "Generic", "Protocol"}
_COMPUTED = object()  # an attribute assigned something other than a literal


@dataclass(frozen=True)
class Entry:
    """One registered name: its registry, and the literal class attributes of its source."""

    registry: str
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)
    opaque: bool = False  # a base class outside its package: attributes come from the import

    def attr(self, attr: str) -> Any:
        """The attribute's value: the literal from the source, else the imported entry's."""
        value = self.attrs.get(attr, _COMPUTED)
        if value is _COMPUTED or self.opaque:
            return getattr(self.load(), attr)
        return value

    def load(self) -> Any:
        """The registered class or function itself (imports its module, and torch with it)."""
        return imported(self.registry).get(self.name)


def imported(registry: str) -> Registry:
    """The real registry: every module of its package imported."""
    return getattr(importlib.import_module(SOURCES[registry][1]), registry)


@functools.cache
def declared(registry: str) -> Registry[Entry]:
    """The registry as its source declares it: `get(name, key)` raises the same one-line
    ConfigError as the imported registry for an unknown name."""
    regs, kinds, classes = _read(SOURCES[registry][0])
    out: Registry[Entry] = Registry(kinds.get(registry, registry.lower()))
    for reg, name, node in regs:
        if reg == registry:
            attrs, opaque = _attrs(node, classes) if isinstance(node, ast.ClassDef) else ({}, False)
            out.register(name)(Entry(registry, name, attrs, opaque))
    return out


@functools.cache
def _read(folder: str) -> tuple[list[tuple[str, str, ast.AST]], dict[str, str], dict[str, Any]]:
    """(registry, name, decorated node) of every registration under `folder`, each registry's
    `kind` (from `NAME = Registry("kind")`), and the folder's classes by name (None: two
    classes share the name, so a base of that name cannot be told apart)."""
    regs: list[tuple[str, str, ast.AST]] = []
    kinds: dict[str, str] = {}
    classes: dict[str, Any] = {}
    for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AnnAssign) and _is_registry(node.value):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        kinds[t.id] = node.value.args[0].value
            if not isinstance(node, ast.ClassDef | ast.FunctionDef):
                continue
            if isinstance(node, ast.ClassDef):
                classes[node.name] = None if node.name in classes else node
            for dec in node.decorator_list:
                reg = _registration(dec)
                if reg:
                    regs.append((*reg, node))
    return regs, kinds, classes


def _is_registry(value: ast.AST | None) -> bool:
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "Registry"
        and len(value.args) == 1
        and isinstance(value.args[0], ast.Constant)
        and isinstance(value.args[0].value, str)
    )


def _registration(dec: ast.AST) -> tuple[str, str] | None:
    """('LOSSES', 'crd') for `@LOSSES.register("crd")`, else None."""
    if (
        isinstance(dec, ast.Call)
        and isinstance(dec.func, ast.Attribute)
        and dec.func.attr == "register"
        and isinstance(dec.func.value, ast.Name)
        and len(dec.args) == 1
        and isinstance(dec.args[0], ast.Constant)
        and isinstance(dec.args[0].value, str)
    ):
        return dec.func.value.id, dec.args[0].value
    return None


def _attrs(node: ast.ClassDef, classes: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The class's attributes set in its body or its bases' (nearest first), and whether a base
    could not be read (then every attribute is looked up on the imported class)."""
    out: dict[str, Any] = {}
    todo, seen, opaque = [node], set(), False
    while todo:
        cls = todo.pop(0)
        if cls.name in seen:
            continue
        seen.add(cls.name)
        for stmt in cls.body:
            value = stmt.value if isinstance(stmt, ast.Assign | ast.AnnAssign) else None
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
            for t in targets if value is not None else []:
                if isinstance(t, ast.Name):
                    out.setdefault(t.id, _literal(value))
        for base in cls.bases:
            name = ast.unparse(base).split("[")[0]
            if classes.get(name) is not None:
                todo.append(classes[name])
            elif name not in _NEUTRAL_BASES:
                opaque = True
    return out, opaque


def _literal(value: ast.AST) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _COMPUTED
