"""Validate plain data (from YAML) into the frozen config dataclasses of core.schema.

Types come from the annotations (bool, int, float, str, Literal, tuple[...], Mapping[str, X],
X | None, nested dataclasses, Any); field metadata ``check`` adds range rules and a class's
``validate`` adds cross-field rules. Every failure is one `ConfigError` line: where the value
came from (file:line or the override), the dotted key, and what was expected.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from core.errors import ConfigError, closest

T = TypeVar("T")
FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse(cls: type[T], data: Any, origins: Mapping[str, str] | None = None, where: str = "") -> T:
    """Validate plain data (from YAML) into the dataclass `cls`, or raise a one-line ConfigError."""
    return _convert(cls, data, "", origins or {}, where)


def _where(key: str, origins: Mapping[str, str], default: str) -> str:
    if key and key not in origins:  # e.g. unknown section `lose` set by the override `lose.alpha=1`
        child = next((v for k, v in origins.items() if k.startswith(key + ".")), None)
        if child is not None:
            return child
    while key:
        if key in origins:
            return origins[key]
        key = key.rpartition(".")[0]
    return default


def _fail(key: str, msg: str, origins: Mapping[str, str], where: str) -> ConfigError:
    loc = _where(key, origins, where)
    return ConfigError(f"{loc}: {key}: {msg}" if loc else f"{key}: {msg}")


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, dict | list) else type(value).__name__


def _convert(tp: Any, value: Any, key: str, origins: Mapping[str, str], where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    fail = lambda msg: _fail(key, msg, origins, where)  # noqa: E731
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, key, origins, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _convert(next(a for a in args if a is not type(None)), value, key, origins, where)
    if tp is Any:
        return _freeze(value)
    if origin is typing.Literal:
        # Compare type too: `True in (1, 3)` and `1.0 in (1, 3)` hold in Python.
        if not any(value == a and type(value) is type(a) for a in args):
            raise fail(f"expected one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise fail(f"expected a list, got {_describe(value)}")
        return tuple(_convert(args[0], v, f"{key}[{i}]", origins, where) for i, v in enumerate(value))
    if origin in (Mapping, dict) or tp is Mapping:
        if not isinstance(value, Mapping):
            raise fail(f"expected a mapping, got {_describe(value)}")
        vt = args[1] if args else Any
        return types.MappingProxyType(
            {str(k): _convert(vt, v, f"{key}.{k}", origins, where) for k, v in value.items()}
        )
    if tp is bool:
        if not isinstance(value, bool):
            raise fail(f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, str) and FLOAT.match(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"expected a number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail(f"expected a string, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def _convert_dataclass(cls: type, value: Any, key: str, origins: Mapping[str, str], where: str) -> Any:
    prefix = f"{key}." if key else ""
    if not isinstance(value, Mapping):
        raise _fail(key, f"expected a section (mapping), got {_describe(value)}", origins, where)
    hints = typing.get_type_hints(cls)
    # an `internal` field is the program's own (where keys were written), never a config key
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for name in value:
        if name not in fields:
            k = f"{prefix}{name}"
            raise _fail(k, f"unknown key ({closest(str(name), fields)})", origins, where)
    kwargs = {}
    for name, f in fields.items():
        k = f"{prefix}{name}"
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _fail(k, "missing required key", origins, where)
            continue
        v = _convert(hints[name], value[name], k, origins, where)
        check = f.metadata.get("check")
        if check and not check[0](v):
            raise _fail(k, f"expected {check[1]}, got {v!r}", origins, where)
        kwargs[name] = v
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        try:
            obj.validate()
        except ValueError as e:
            sub, msg = e.args
            raise _fail(f"{prefix}{sub}", msg, origins, where) from None
    return obj
