"""kdsweep's stages, one sub-package each, data flowing one way:
config (YAML + overrides -> validated config) -> data (datasets on disk -> batches) ->
training (teacher, student, evaluation, one tracked run) -> sweeps (studies on Ray Tune).
`pipeline.tracking` is the one package that talks to MLflow."""
