"""Datasets: readers of the published formats (`medpix`, `chestxray`), decoding and caching
(`images`, `text`), batches (`dataset`), folds and synthetic generators."""
