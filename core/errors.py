"""User-facing errors: one line that says what to fix, and a non-zero exit.

Everything the user can get wrong (a config key, a data file, a dataset name) raises a
subclass of `KdsweepError`; the CLI prints its message on one line and exits with code 2.
Bugs (any other exception) keep their traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class KdsweepError(Exception):
    """An error caused by user input; its message is one line naming where and what."""

    def __init__(self, message: str) -> None:
        # Newlines in user data (captions, paths) must not break the one-line contract.
        super().__init__(" ".join(str(message).split()))


class ConfigError(KdsweepError):
    """A config file, key or value is invalid."""


class DataError(KdsweepError):
    """A dataset on disk is missing, malformed or inconsistent."""


class TrackingError(KdsweepError):
    """The MLflow store at MLFLOW_TRACKING_URI cannot be reached or written."""


class ClusterError(KdsweepError):
    """The Ray cluster at RAY_ADDRESS cannot be reached or refuses this client."""


def closest(name: str, valid: Iterable[str], n: int = 3) -> str:
    """'did you mean' text for an unknown name: the closest valid names, else all of them."""
    valid = sorted(valid)
    if not valid:
        return "this section takes no keys"
    near = difflib.get_close_matches(name, valid, n=n, cutoff=0.5)
    if near:
        return "closest: " + ", ".join(near)
    return "valid: " + ", ".join(valid)
