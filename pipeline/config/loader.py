"""Load an experiment once: YAML + profile + dataset + `key.sub=value` overrides -> typed config.

Composition order (later wins): schema defaults < profile file < experiment file < overrides.
`dataset: <name>` and `profile: <name>` name files under sweeps/datasets and sweeps/profiles;
strings may use ``${VAR:-default}`` so dataset roots come from the environment.
Every error is one line: ``<file>:<line>: <key>: <what was expected>``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError
from core.schema import DatasetConfig, ExperimentConfig
from core.validate import _convert_dataclass, _fail, _where, parse  # noqa: F401  (parse: re-exported)
from pipeline.config.overrides import Override, _merge, _set_path, parse_override

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_ENV = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def sweeps_dir() -> Path:
    return Path(os.environ.get("KDSWEEP_SWEEPS_DIR", PROJECT_ROOT / "sweeps"))


def available(kind: str) -> list[str]:
    """Names of the YAML files under sweeps/<kind>/ (datasets, profiles, experiments)."""
    return sorted(p.stem for p in (sweeps_dir() / kind).glob("*.yaml"))


# --------------------------------------------------------------------------- YAML with lines
def _expand_env(value: Any) -> Any:
    if isinstance(value, str):
        return _ENV.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    return value


def _node_lines(node: yaml.Node, prefix: str, out: dict[str, int]) -> None:
    """Dotted keys (``a.b``) and list items (``a[0]``, named as core.validate names them) ->
    their line: a study's `overrides` entries and `phases` are lists, each item on its own line."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}{key_node.value}"
            out[path] = key_node.start_mark.line + 1
            _node_lines(value_node, path + ".", out)
    elif isinstance(node, yaml.SequenceNode) and prefix:
        for i, item in enumerate(node.value):
            path = f"{prefix[:-1]}[{i}]"
            out[path] = item.start_mark.line + 1
            _node_lines(item, path + ".", out)


def read_yaml(path: Path, prefix: str = "") -> tuple[dict, dict[str, str]]:
    """A YAML mapping and, for each dotted key, 'file:line' (keys prefixed with `prefix`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
        lines: dict[str, int] = {}
        node = yaml.compose(text)
        if node is not None:
            _node_lines(node, prefix, lines)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping of keys, got {type(data).__name__}")
    shown = os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    return _expand_env(data), {k: f"{shown}:{n}" for k, n in lines.items()}


def _named_file(kind: str, name: str, key: str, where: str) -> Path:
    path = sweeps_dir() / kind / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"{where}: {key}: unknown {kind[:-1]} {name!r} (valid: {', '.join(available(kind))})"
        )
    return path


# --------------------------------------------------------------------------- composition
def load_experiment(
    path: str | Path, overrides: Iterable[str | Override] = (), named_at: str = "command line"
) -> ExperimentConfig:
    """The experiment at `path` (a file or a name under sweeps/experiments) with overrides
    (plain strings are the command line's); `named_at` is where the name was written."""
    path = Path(path)
    if not path.suffix and not path.exists():
        path = _named_file("experiments", str(path), "experiment", named_at)
    raw, origins = read_yaml(path)
    given = [o if isinstance(o, Override) else Override(o) for o in overrides]
    parsed = [(o.where, *parse_override(o.text, o.where)) for o in given]
    return compose(raw, origins, parsed, str(path))


def compose(
    raw: dict, origins: dict[str, str], overrides: list[tuple[str, str, Any]], where: str
) -> ExperimentConfig:
    """`overrides`: (where it was written, key, value), in order; later wins."""
    raw = dict(raw)
    for at, key, value in overrides:  # names first: they choose the files
        if key in ("dataset", "profile"):
            raw[key], origins[key] = value, at
    data: dict = {}
    profile = raw.get("profile", "tiny")
    if isinstance(profile, str):
        pdata, porigins = read_yaml(
            _named_file("profiles", profile, "profile", origins.get("profile", where))
        )
        data, origins = pdata, {**porigins, **origins}
    data = _merge(data, {k: v for k, v in raw.items() if k != "dataset"})
    dataset = raw.get("dataset")
    if isinstance(dataset, str):
        dpath = _named_file("datasets", dataset, "dataset", origins.get("dataset", where))
        ddata, dorigins = read_yaml(dpath, prefix="dataset.")
        data["dataset"] = {"name": dataset, **ddata}
        origins = {**dorigins, **origins}
        origins.pop("dataset", None)
        origins.setdefault("dataset.name", str(dpath))
    elif dataset is not None:
        data["dataset"] = dataset
    for at, key, value in overrides:
        if key not in ("dataset", "profile"):
            _set_path(data, key, value, at)
            origins[key] = at
    _absolute_root(data.get("dataset"))
    cfg = parse(ExperimentConfig, data, origins, where)
    check_extensions(cfg, origins, where)
    return resolve_loss(cfg, origins, where)


def resolve_loss(
    cfg: ExperimentConfig, origins: Mapping[str, str] | None = None, where: str = ""
) -> ExperimentConfig:
    """`cfg` with the loss's unset alpha, temperature and beta set to the chosen loss's own
    `defaults` and alpha checked against its convention (`LossConfig.resolved`), read from the
    losses' source (no torch). kdsweep's losses default to the numbers the schema had, so a
    config that sets none of them keeps its hash and its params."""
    from pipeline.config.extensions import declared

    entry = declared("LOSSES").get(cfg.loss.name, "loss.name")
    try:
        loss = cfg.loss.resolved(entry.attr("defaults"), entry.attr("convex"))
    except ValueError as e:
        key, msg = e.args
        raise _fail(f"loss.{key}", msg, origins or {}, where) from None
    return dataclasses.replace(cfg, loss=loss)


# --------------------------------------------------------------------------- outputs
def to_dict(obj: Any, for_hash: bool = False, for_params: bool = False) -> Any:
    """Plain data (dicts, lists, scalars) for YAML dumps; `for_hash` drops hash=False fields
    and hash="if_set" fields at their default; `for_params` drops param="if_set" fields at
    their default (MLflow params)."""
    if dataclasses.is_dataclass(obj):
        return {
            f.name: to_dict(getattr(obj, f.name), for_hash, for_params)
            for f in dataclasses.fields(obj)
            if not (for_hash and _unhashed(f, getattr(obj, f.name)))
            and not (for_params and _unlogged(f, getattr(obj, f.name)))
        }
    if isinstance(obj, Mapping):
        return {k: to_dict(v, for_hash, for_params) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [to_dict(v, for_hash, for_params) for v in obj]
    return obj


def _unhashed(f: dataclasses.Field, value: Any) -> bool:
    mode = f.metadata.get("hash")
    if mode != "if_set":
        return mode is False
    return _at_default(f, value)


def _unlogged(f: dataclasses.Field, value: Any) -> bool:
    return f.metadata.get("param") == "if_set" and _at_default(f, value)


def _at_default(f: dataclasses.Field, value: Any) -> bool:
    factory = f.default_factory
    return value == (f.default if factory is dataclasses.MISSING else factory())


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False, allow_unicode=True)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys -> scalars (lists become JSON), for MLflow params."""
    out: dict[str, Any] = {}
    data = to_dict(obj, for_params=True) if prefix == "" else obj
    for k, v in data.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, path + "."))
        elif isinstance(v, dict | list):
            out[path] = json.dumps(v)
        else:
            out[path] = v
    return out


def config_hash(obj: Any) -> str:
    """Stable across key order; ignores fields that do not change results (hash=False)."""
    blob = json.dumps(to_dict(obj, for_hash=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_dataset_config(name: str, overrides: Iterable[str] = ()) -> DatasetConfig:
    """A dataset file from sweeps/datasets by name, with `key=value` overrides (no prefix)."""
    path = _named_file("datasets", name, "dataset", "command line")
    data, origins = read_yaml(path)
    data = {"name": name, **data}
    for text in overrides:
        key, value = parse_override(text)
        _set_path(data, key, value, f"override {text!r}")
        origins[key] = f"override {text!r}"
    _absolute_root(data)
    return parse(DatasetConfig, data, origins, str(path))


def _absolute_root(dataset: Any) -> None:
    """A relative dataset root means "from where the command runs": resolve it now, once, so a
    trial in another working directory (a Ray job's, another node's) reads the same folder and
    a run's config (and hash) names the data unambiguously."""
    if isinstance(dataset, dict) and isinstance(dataset.get("root"), str) and dataset["root"]:
        dataset["root"] = os.path.abspath(dataset["root"])


def check_extensions(
    cfg: ExperimentConfig, origins: Mapping[str, str] | None = None, where: str = ""
) -> None:
    """Names that point into registries (fusions, losses, backbone sources, task kinds) and the
    chosen loss's and fusions' own `params`, checked before any work. The names come from the
    registries' source (pipeline.config.extensions), so validating imports no torch; only a
    non-empty `loss.params` or `fusion.params` imports its module, whose `Params` checks them."""
    from pipeline.config.extensions import declared as registry

    def declared(name: str) -> Any:  # an unknown name is reported at the line that wrote it
        return _Located(registry(name), origins or {}, where)

    for role in ("teacher", "student"):
        m = getattr(cfg, role)
        fusion = declared("FUSIONS").get(m.fusion.name, f"{role}.fusion.name")
        if m.fusion.params:  # like loss.params: only options that are set import their fusion
            key = f"{role}.fusion.params"
            _convert_dataclass(fusion.load().Params, dict(m.fusion.params), key, origins or {}, where)
        declared("VISION").get(m.vision.source, f"{role}.vision.source")
        declared("TEXT").get(m.text.source, f"{role}.text.source")
        if m.volume.name != "none":
            declared("MODELS3D").get(m.volume.name, f"{role}.volume.name")
    loss = declared("LOSSES").get(cfg.loss.name, "loss.name")
    if cfg.loss.params:  # empty ones are valid for every loss (tests/test_startup.py checks it)
        params = dict(cfg.loss.params)
        _convert_dataclass(loss.load().Params, params, "loss.params", origins or {}, where)
    kind = declared("TASK_KINDS").get(cfg.dataset.kind, "dataset.kind")
    if kind.name not in loss.attr("kinds"):
        at = (origins or {}).get("loss.name", where)
        raise ConfigError(
            f"{at}: loss.name: {cfg.loss.name!r} is for {', '.join(loss.attr('kinds'))} datasets, and "
            f"dataset {cfg.dataset.name!r} is {kind.name} (dataset.kind)"
        )
    label_losses = kind.attr("label_losses")
    if cfg.loss.label_loss not in label_losses:
        at = (origins or {}).get("loss.label_loss", where)
        raise ConfigError(
            f"{at}: loss.label_loss: {cfg.loss.label_loss!r} is not a label loss of {kind.name} tasks "
            f"(dataset.kind); valid: {', '.join(label_losses)}"
        )


class _Located:
    """A registry whose unknown-name error starts with where the name was written (file:line)."""

    def __init__(self, registry: Any, origins: Mapping[str, str], where: str) -> None:
        self.registry, self.origins, self.where = registry, origins, where

    def get(self, name: str, key: str) -> Any:
        try:
            return self.registry.get(name, key)
        except ConfigError as e:
            at = _where(key, self.origins, self.where)
            raise ConfigError(f"{at}: {e}" if at else str(e)) from None
