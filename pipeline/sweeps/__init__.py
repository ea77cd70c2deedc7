"""Studies on Ray Tune: the sweep driver, the one module that talks to Ray Tune
(`tune_runner`) and where trials run (`cluster`)."""

import os

# Ray and Ray Tune read these when they are imported or started: set here, before any module of
# this package imports Ray (the one trials read travels with the job: cluster.PASS_ENV).
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Ray's classic status table (see Progress)
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# MLflow records every run: Tune's own CSV/JSON/TensorBoard files per trial would be a second
# copy that nothing reads, written by the driver on every result (and TensorBoard imported).
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# Trials run in the driver's working directory, so relative paths (dataset roots such as
# data/synthetic-wound, the sqlite store) mean the same thing in a trial as on the command line.
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
