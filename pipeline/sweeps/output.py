"""How much of Ray's and Ray Tune's own output a sweep shows.

By default none of it: kdsweep prints one line per trial event and epoch
(pipeline.sweeps.tune_runner.Progress) and the summary table, and Ray's INFO lines ("Started a
local Ray instance", where Tune wrote its state), Tune's status table and the trials' own
stdout/stderr stay out of the terminal; Ray's warnings and errors still show. KDSWEEP_VERBOSE=1
(`python -m pipeline sweep --verbose`, `make sweep VERBOSE=1`) brings all of it back.

Read when Ray starts and when each batch starts, not at import: the command line sets it after
this package was imported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

VERBOSE = "KDSWEEP_VERBOSE"
# where Ray 2.60's ray.init warns that it turned token authentication on for a new local Ray
AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
AUTH_NOTICE = "Token authentication is enabled for this Ray cluster"


def verbose() -> bool:
    """Whether Ray's and Ray Tune's own output is shown (KDSWEEP_VERBOSE set, and not 0)."""
    return os.environ.get(VERBOSE, "").strip().lower() not in ("", "0", "false", "no", "off")


def ray_init_options() -> dict[str, Any]:
    """ray.init's options for the driver's output: the trials' stdout/stderr forwarded, and the
    level of the driver's "ray" logger (Ray Tune's loggers are its children)."""
    loud = verbose()
    return {"log_to_driver": loud, "logging_level": logging.INFO if loud else logging.WARNING}


class _LocalAuthNotice(logging.Filter):
    """Drops Ray's notice that a Ray started by ray.init uses token authentication. Only the
    notice: authentication stays on (Ray's default, which kdsweep keeps), and the notice is
    addressed to someone who chose to start Ray, where kdsweep starts and stops its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return AUTH_NOTICE not in record.getMessage()


@contextmanager
def local_auth_notice_dropped() -> Iterator[None]:
    """Around the ray.init that starts kdsweep's own Ray on this machine, unless verbose: a
    cluster joined at RAY_ADDRESS keeps every message of Ray's about its authentication."""
    if verbose():
        yield
        return
    log, notice = logging.getLogger(AUTH_LOGGER), _LocalAuthNotice()
    log.addFilter(notice)
    try:
        yield
    finally:
        log.removeFilter(notice)
