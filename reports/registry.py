"""The study reports: one module per study under reports/studies/, each registered with one
decorator on the project's registry (core.registry), keyed by the sweep's `study_kind` tag::

    @register("xlite", order=50, in_results_csv=False, per_dataset=True)
    def report(sweeps: list[Sweep], ctx: Context) -> list[Document]: ...

`python -m reports` renders the registered studies in `order` (the order of docs/index.md);
every module under reports/studies/ is imported by `studies()`, so a new study's report is one new
file there. An unknown kind raises a ConfigError that lists the registered ones.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.registry import Registry
from reports.query import Sweep


@dataclass
class Document:
    """A file a study report writes. Markdown: `lines` after the shared header, followed by the
    incomplete runs of `sweeps` (the sweeps its index row names). CSV (or another text file that
    carries its own header, such as an Optuna study's best configuration): `csv` as is, with
    `about` as its index row; `instead_of` names the study whose runs it holds instead of
    results.csv."""

    name: str
    sweeps: list[Sweep]
    lines: list[str] = field(default_factory=list)
    csv: str | None = None
    about: str = ""
    instead_of: str = ""


@dataclass
class Context:
    """What a study's report may read besides its own sweeps: the folder of the figures, every
    reported sweep (the KD document takes its baseline from the loss sweep) and --sweep-id."""

    img: Path
    found: list[Sweep]
    sweep_id: str | None = None

    def of(self, kind: str) -> list[Sweep]:
        return [s for s in self.found if s.kind == kind]


Render = Callable[[list[Sweep], Context], list[Document]]


@dataclass(frozen=True)
class StudyReport:
    """A registered study report. `order`: its place among the documents; `in_results_csv`: its
    runs are rows of docs/results.csv (whose columns describe the flat studies' students);
    `per_dataset`: one sweep per dataset is reported, the latest or the one --sweep-id names."""

    kind: str
    render: Render
    order: int
    in_results_csv: bool = True
    per_dataset: bool = False


STUDIES: Registry[StudyReport] = Registry("study report")


def register(
    kind: str, *, order: int, in_results_csv: bool = True, per_dataset: bool = False
) -> Callable[[Render], Render]:
    """Register `render` as the report of sweeps whose study_kind is `kind`."""

    def decorator(render: Render) -> Render:
        STUDIES.register(kind)(StudyReport(kind, render, order, in_results_csv, per_dataset))
        return render

    return decorator


@functools.cache  # once a process: the modules stay imported (and registered)
def _load() -> None:
    """Import every module of reports.studies: each registers its report on import."""
    import reports.studies as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")


def studies() -> list[StudyReport]:
    """Every registered study report, in document order."""
    _load()
    return sorted((STUDIES.get(k) for k in STUDIES.names()), key=lambda s: (s.order, s.kind))


def study(kind: str) -> StudyReport:
    """The report of `kind`; a ConfigError naming the registered kinds when there is none."""
    _load()
    return STUDIES.get(kind, "study_kind")


def in_results_csv(kind: str) -> bool:
    """Whether a sweep of `kind` has rows in results.csv: unregistered kinds do (their runs are
    students of a flat study without a document of its own)."""
    _load()
    return STUDIES.get(kind).in_results_csv if kind in STUDIES else True
