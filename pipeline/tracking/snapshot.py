"""A local snapshot of the finished runs a report read from a tracking server, so that the next
report over HTTP asks the server only for what is new or still running. Part of
pipeline.tracking.

A run that is FINISHED, FAILED or KILLED and has an end time does not change (kdsweep never
writes to a run after ending it), so its record (params, tags, latest metrics) and its metric
histories are kept, keyed by run id, in one JSON file per server:
``$KDSWEEP_CACHE/mlflow-snapshots/<hash>.json`` (default cache ``data/.cache``), the hash that of
the server's URI without credentials or query (and of MLFLOW_WORKSPACE). Neither the file nor
its name holds a credential. A run still RUNNING is never kept. Whether a kept run was deleted
since, or its experiment, is asked of the server on each read (pipeline.tracking.served).

Written atomically (a temporary file renamed over the old one, readable by its owner only);
a file that cannot be read is ignored with one line on stderr and rewritten. Two reports
writing at once: the last one's file wins, each a whole one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from pipeline.tracking.store import PROJECT_ROOT, public_uri

VERSION = 1  # bump when what is kept changes: an older file is then read as empty
FINAL = ("FINISHED", "FAILED", "KILLED")


def final(record: dict) -> bool:
    """True for a run that has ended (and so will not change)."""
    return record["status"] in FINAL and record["end_time"] is not None


def path_for(uri: str) -> Path:
    """The snapshot file of the server at `uri` (see the module's text)."""
    key = public_uri(uri).rstrip("/") + "|" + (os.environ.get("MLFLOW_WORKSPACE") or "")
    root = Path(os.environ.get("KDSWEEP_CACHE") or PROJECT_ROOT / "data" / ".cache")
    return root / "mlflow-snapshots" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


class Snapshot:
    """The kept runs of one server: `runs` (run id -> record) and `histories` (run id -> metric
    key -> [(step, timestamp, value)], an empty list where the run logged none of that key)."""

    def __init__(self, uri: str) -> None:
        self.uri, self.path = public_uri(uri).rstrip("/"), path_for(uri)
        self.runs: dict[str, dict] = {}
        self.histories: dict[str, dict[str, list[tuple]]] = {}
        self.dirty = False
        if self.path.is_file():
            try:
                self._load(json.loads(self.path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
                self.runs, self.histories, self.dirty = {}, {}, True
                print(
                    f"tracking: ignoring the unreadable snapshot {self.path} ({type(e).__name__}); "
                    f"reading every run from {self.uri}",
                    file=sys.stderr,
                )

    def _load(self, data: dict) -> None:
        if data.get("version") != VERSION or data.get("uri") != self.uri:
            self.dirty = True  # another layout (or, however unlikely, another server): start over
            return
        runs = data["runs"]
        for rid, rec in runs.items():
            if rec["run_id"] != rid or not final(rec) or not isinstance(rec["params"], dict):
                raise ValueError(f"run {rid}")
        self.runs = runs
        self.histories = {
            rid: {k: [tuple(p) for p in pts] for k, pts in keys.items()}
            for rid, keys in data["histories"].items()
            if rid in runs
        }

    def put(self, records: list[dict]) -> None:
        """Keep the runs of `records` that have ended (the others will change)."""
        for rec in records:
            if final(rec) and self.runs.get(rec["run_id"]) != rec:
                self.runs[rec["run_id"]] = rec
                self.dirty = True

    def drop(self, run_ids: list[str]) -> None:
        """Forget runs (deleted on the server): kept again only if read again."""
        for rid in run_ids:
            if self.runs.pop(rid, None) is not None:
                self.histories.pop(rid, None)
                self.dirty = True

    def history(self, run_id: str, key: str) -> list[tuple] | None:
        """The kept points of a kept run's metric ([] where it logged none), or None: not kept."""
        return self.histories.get(run_id, {}).get(key) if run_id in self.runs else None

    def put_history(self, run_id: str, key: str, points: list[tuple]) -> None:
        """Keep a metric's points of a kept (ended) run; those of a running run are not kept."""
        if run_id in self.runs:
            self.histories.setdefault(run_id, {})[key] = list(points)
            self.dirty = True

    def save(self) -> None:
        """Write the file if anything changed: whole or not at all (a rename), owner-only."""
        if not self.dirty:
            return
        data = {"version": VERSION, "uri": self.uri, "runs": self.runs, "histories": self.histories}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".snapshot-", suffix=".tmp")
        except OSError as e:  # a read-only cache: the report stands, the next one reads it all again
            print(
                f"tracking: cannot write the snapshot {self.path} ({e.strerror or type(e).__name__})",
                file=sys.stderr,
            )
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(data, separators=(",", ":")))  # dump() encodes in Python: 4x slower
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.dirty = False
