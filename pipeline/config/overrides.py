"""Overrides: ``key.sub=value`` text from the command line or a study file, parsed and set
into plain config data (pipeline.config.loader composes them over the files)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from core.errors import ConfigError
from core.validate import FLOAT


@dataclass(frozen=True)
class Override:
    """A `key.sub=value` override and where it was written: `origin` is ``file:line`` for one a
    study file holds (its `overrides` entries, its space's points), empty for the command
    line's. Errors name that place; only a command-line override is called "override"."""

    text: str
    origin: str = ""

    @property
    def where(self) -> str:
        return self.origin or f"override {self.text!r}"


def parse_override(text: str, where: str = "") -> tuple[str, Any]:
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise ConfigError(f"{where or f'override {text!r}'}: expected key.sub=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and FLOAT.match(raw.strip()):  # unquoted only: '007' stays a string
        value = float(value)  # YAML 1.1 reads 1e-3 as a string
    return key.strip(), value


def _set_path(data: dict, key: str, value: Any, where: str) -> None:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: {'.'.join(parts[: i + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _merge(base: dict, top: Mapping) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out
