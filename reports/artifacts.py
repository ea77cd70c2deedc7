"""Text artifacts of a run, also from a store that was copied or moved.

A sqlite store records each run's artifact location as an absolute ``file://`` URI (see
`pipeline.tracking.experiment_id`): ``<dir of mlflow.db>/artifacts/<experiment_id>/<run_id>/artifacts``.
Copy ``mlruns/`` to another machine and that path no longer exists; the files are still beside the
database. Where the recorded folder is missing, the same relative path is looked up under the
folder of the database being read, and a line on stderr says so (the documents stay unchanged).
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

from pipeline import tracking

_SAID: set[tuple[str, str]] = set()  # (recorded, found) roots already reported on stderr


def store_dir() -> Path | None:
    """The folder of the sqlite database being read, or None for a tracking server."""
    db = tracking.sqlite_path(tracking.tracking_uri())
    return None if db is None else db.resolve().parent


def _local(artifact_uri: str) -> Path | None:
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and artifact_uri:
        return Path(artifact_uri)
    return None  # mlflow-artifacts:, s3://, ...: pipeline.tracking.artifact_text reads those


def relocated(run_id: str, artifact_uri: str) -> Path | None:
    """The run's artifact folder under the store being read when the recorded one is gone.

    The longest tail of the recorded path that still names the run (…/<run_id>/artifacts) and
    exists under the database's folder wins: the default layout and custom locations inside it.
    """
    recorded, root = _local(artifact_uri), store_dir()
    if recorded is None or root is None or recorded.exists():
        return None
    parts = recorded.parts
    if run_id not in parts:
        return None
    last = len(parts) - 1 - parts[::-1].index(run_id)
    for start in range(1, last + 1):  # longest tail first
        candidate = root.joinpath(*parts[start:])
        if candidate.is_dir():
            key = (str(Path(*parts[:start])), str(root))
            if key not in _SAID:
                _SAID.add(key)
                print(
                    f"reports: artifacts recorded under {key[0]} are not there (a copied or moved store); "
                    f"reading them from {root}",
                    file=sys.stderr,
                )
            return candidate
    return None


def read_text(run_id: str, artifact_uri: str, path: str) -> str | None:
    """A text artifact of a run, or None when it is missing (at the recorded place and beside the store)."""
    folder = relocated(run_id, artifact_uri)
    if folder is None:
        local = _local(artifact_uri)
        if local is None:  # a server's artifacts: its artifact endpoint, or MLflow's client (s3://...)
            return tracking.artifact_text(run_id, artifact_uri, path)
        if not local.is_dir():  # a local run without artifacts (a teacher's, say): nothing to read
            return None
        folder = local  # a local folder: read in place (MLflow's download costs two run lookups)
    file = folder / path
    return file.read_text(encoding="utf-8") if file.is_file() else None
