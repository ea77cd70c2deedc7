"""Unequal seed counts (issue 10): configurations are ranked and compared on the seeds they all
FINISHED, never a lucky single seed against others' means; short cells say how many they have."""

from __future__ import annotations

from test_report_runs import failed, loss_sweep, parent, student, toy_experiment

from support import sqlite_store


def test_ranking_uses_matched_seeds_and_cells_show_missing_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store(tmp_path / "mlflow.db"))
    from reports.__main__ import build

    # combined lost seed 1; alone its seed 0 (dev 0.68) beats vanilla's two-seed mean (0.65),
    # but on seed 0, the seed both have, vanilla (0.70) is better
    loss_sweep(
        [
            ("vanilla", 0, 0.70, 0.80),
            ("vanilla", 1, 0.60, 0.70),
            ("combined", 0, 0.68, 0.75),
            ("none", 0, 0.50, 0.60),
            ("none", 1, 0.50, 0.60),
        ],
        seeds=[0, 1],
        failures=["loss.name=combined seed=1"],
    )
    c, exp = toy_experiment()
    fusion = [  # the same trap in the fusion summary: film has seed 0 only
        student(
            c,
            exp,
            "h2",
            "vanilla",
            "gated",
            (0.7, 0.7),
            dev,
            5.0,
            0.8,
            seed=s,
            label=f"fusion.name=gated seed={s}",
        )
        for s, dev in ((0, 0.80), (1, 0.60))
    ] + [
        student(c, exp, "h2", "vanilla", "film", (0.9, 0.9), 0.75, 6.0, 0.8, label="fusion.name=film seed=0")
    ]
    parent(c, exp, "fusion", "fusion", "h2", fusion + [failed("fusion.name=film seed=1")], seeds=[0, 1])
    docs = tmp_path / "docs"
    build(docs)

    text = (docs / "loss_explore.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `toy")]
    assert [r.split("|")[2].strip() for r in rows] == ["vanilla", "combined", "none"]
    assert "| `toy-cross_attention-combined-s0` | combined | 0.7500 (1 of 2 seeds) |" in text
    assert rows[0].startswith("| `toy-cross_attention-vanilla (2 seeds)` | vanilla | 0.7500 ± 0.0707 |")
    assert "- Best on dev: `vanilla` (dev avg F1 0.7000, test avg F1 0.8000; seed 0)." in text
    assert "Top two on dev, `loss.name=vanilla` vs `loss.name=combined`" in text
    assert "(seed 0, 1000 resamples)" in text  # the bootstrap pairs seed 0 only
    assert "use only seed(s) 0, which every configuration FINISHED" in text
    assert "| toy | loss | `loss.name=combined seed=1` | no FINISHED run |" in text

    fusion_text = (docs / "toy_fusion_hp_summary.md").read_text()
    rows = [line for line in fusion_text.splitlines() if line.startswith(("| gated", "| film"))]
    assert rows[0].startswith("| gated | `fusion.name=gated` | ")  # 0.80 vs 0.75 on seed 0
    assert "0.900 (1 of 2 seeds)" in rows[1]
    assert "- `gated` is best on dev average F1 (0.800)" in fusion_text
