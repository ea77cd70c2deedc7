"""Datasets: readers of the published formats (`medpix`, `csvtable` for the group's Wound-1-0
CSV layout, `chestxray`), the group's split (`splitter`), decoding and caching (`images`,
`text`), batches (`dataset`), folds and synthetic generators."""
