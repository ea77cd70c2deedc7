"""pyproject.toml and environment.yml pin the same stack (exact versions, Python 3.11)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]]+\])?==(?P<version>[^\s;,]+)$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: list[str], source: str) -> dict[str, str]:
    """name[extras] -> version; every requirement must be an exact `==` pin."""
    out = {}
    for req in requirements:
        m = PIN.match(req.strip())
        assert m, f"{source}: {req!r} is not an exact pin (name==version)"
        key = _normalise(m["name"]) + (m["extras"] or "")
        assert key not in out, f"{source}: {key} is listed twice"
        out[key] = m["version"]
    return out


def pyproject() -> dict:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def conda_env() -> dict:
    return yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))


def pyproject_pins() -> dict[str, str]:
    project = pyproject()["project"]
    return pins(project["dependencies"] + project["optional-dependencies"]["dev"], "pyproject.toml")


def conda_pip_pins() -> dict[str, str]:
    pip = [d for d in conda_env()["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml: expected one `pip:` list under dependencies"
    return pins(pip[0]["pip"], "environment.yml")


def test_environment_yml_pins_match_pyproject():
    ours, theirs = pyproject_pins(), conda_pip_pins()
    assert len(ours) > 10
    only_py = {k: v for k, v in ours.items() if k not in theirs}
    only_env = {k: v for k, v in theirs.items() if k not in ours}
    differ = {k: (ours[k], theirs[k]) for k in ours.keys() & theirs.keys() if ours[k] != theirs[k]}
    assert not only_py and not only_env and not differ, (
        f"pins drifted: only in pyproject {only_py}, only in environment.yml {only_env}, "
        f"different versions (pyproject, environment.yml) {differ}"
    )


def test_environment_yml_uses_python_311():
    deps = conda_env()["dependencies"]
    python = [d for d in deps if isinstance(d, str) and re.match(r"^python\s*[=<>]", d)]
    assert python == ["python=3.11"], f"environment.yml: expected python=3.11, got {python}"
    assert "pip" in deps
    assert pyproject()["project"]["requires-python"] == ">=3.11,<3.12"


def test_installed_packages_match_the_pins():
    """The interpreter running the tests has exactly the pinned versions (`make setup`)."""
    wrong = {}
    for key, version in pyproject_pins().items():
        name = key.split("[")[0]
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"installed versions differ from the pins (pinned, installed): {wrong}"
