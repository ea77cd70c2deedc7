"""Report stage: regenerates docs/*.md, the CSVs and the figures from the MLflow database.

Shared parts, one place each: `query` (the one reader of the store, through pipeline.tracking),
`groups` (a configuration's runs over seeds and folds), `phased` (studies in phases: X-Lite, MIL,
BraTS), `resample` (the bootstrap: F1 and AUC scorers), `stats` (cells, `Diff` and its verdict,
fold t-intervals), `matched` (the flat studies' comparisons on matched seeds), `markdown` (tables),
`sections` (header, seeds note, incomplete runs, failed trials), `plots/`, `csvs`.

Each study's document is one module under `studies/` (`studies/xlite` holds X-Lite's "Does KD
help?", `studies/loss.py` the loss study's), registered on `registry` by its study_kind;
`__main__` renders them in order and writes docs/index.md.
"""
