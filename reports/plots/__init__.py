"""Every figure of the documents, written byte-for-byte reproducibly: `render` (saving, the worker
that draws beside the statistics), `charts` (bars, Pareto fronts, sensitivity, loss and AUC
curves, heatmaps) and `roc` (ROC curves)."""

from reports.plots.charts import (
    auc_curves,
    bars,
    bars_caption,
    f1_bars,
    heatmap,
    lines,
    loss_plot,
    pareto_plot,
    seeds_phrase,
    sensitivity_plot,
)
from reports.plots.render import beside, draw, drawn, figure
from reports.plots.roc import roc_figure, roc_folds, roc_labels, roc_points

__all__ = [
    "auc_curves",
    "bars",
    "bars_caption",
    "beside",
    "draw",
    "drawn",
    "f1_bars",
    "figure",
    "heatmap",
    "lines",
    "loss_plot",
    "pareto_plot",
    "roc_figure",
    "roc_folds",
    "roc_labels",
    "roc_points",
    "seeds_phrase",
    "sensitivity_plot",
]
