"""Studies on Ray Tune: the sweep driver, the one module that talks to Ray Tune
(`tune_runner`) and where trials run (`cluster`)."""
