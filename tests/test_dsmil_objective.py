"""`mil.objective` (losses/dsmil_objective.py, models/model.py): the DSMIL paper's
0.5 * BCE(max) + 0.5 * BCE(bag) pinned against the formula written with plain torch ops; the
default keeps kdsweep's CE on the mean of the two streams (and its config hashes); under the
paper's objective the model predicts and is distilled from the bag score."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.errors import ConfigError
from losses import LOSSES, LossContext
from losses.dsmil_objective import dsmil_terms
from models.outputs import ModelOutput
from pipeline.config.loader import config_hash, load_experiment
from tasks import TASK_KINDS

K = 3


pytestmark = pytest.mark.usefixtures("one_thread")


def _scores(seed: int = 0, b: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, K, generator=g) * 3, torch.randn(b, K, generator=g) * 3


def _bce(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BCE with logits written out: mean of -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))]."""
    p = torch.sigmoid(z.double())
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


def test_terms_are_half_bce_of_each_stream_against_one_hot_targets():
    s_max, s_bag = _scores()
    y = torch.tensor([0, 2, 1, 2, 0])
    onehot = torch.zeros(5, K, dtype=torch.float64)
    onehot[torch.arange(5), y] = 1.0
    got = dsmil_terms(s_max, s_bag, y)
    assert list(got) == ["dsmil_max", "dsmil_bag"]
    torch.testing.assert_close(got["dsmil_max"].double(), 0.5 * _bce(s_max, onehot))
    torch.testing.assert_close(got["dsmil_bag"].double(), 0.5 * _bce(s_bag, onehot))
    # a multi-hot target (multilabel) is used as it is
    multi = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 0, 0]], dtype=torch.float64)
    got = dsmil_terms(s_max, s_bag, multi.long())
    torch.testing.assert_close(got["dsmil_bag"].double(), 0.5 * _bce(s_bag, multi))


def _ctx(objective: str | None) -> LossContext:
    kind = TASK_KINDS.get("multiclass")({"grade": ("a", "b", "c")})
    return LossContext(("grade",), {"grade": K}, {"grade": (4, 3, 2)}, 8, 8, 9, kind, objective)


def _out(s_max: torch.Tensor, logits: torch.Tensor) -> ModelOutput:
    f = torch.zeros(len(logits), 8)
    return ModelOutput({"grade": logits}, f, None, f, max_logits={"grade": s_max})


def test_the_loss_framework_logs_both_terms_and_distils_the_bag_score():

    cfg = load_experiment("mil", ["loss.name=vanilla", "loss.alpha=0.3"]).loss
    s_max, s_bag = _scores(1)
    t_logits = _scores(2)[1]
    y = {"grade": torch.tensor([2, 0, 1, 1, 0])}
    loss = LOSSES.get("vanilla")(cfg, _ctx("dsmil"))
    terms = loss(_out(s_max, s_bag), _out(s_max, t_logits), y, torch.arange(5))
    assert set(terms) == {"dsmil_max", "dsmil_bag", "kd"}  # no "ce": the paper's terms replace it
    want = dsmil_terms(s_max, s_bag, y["grade"])
    for name in ("dsmil_max", "dsmil_bag"):
        torch.testing.assert_close(terms[name], 0.7 * want[name])
    kd = TASK_KINDS.get("multiclass")({"grade": ("a", "b", "c")}).kd(s_bag, t_logits, cfg.temperature)
    torch.testing.assert_close(terms["kd"], 0.3 * kd)  # student.logits: the bag score
    # the default objective: CE on the model's logits, as before
    default = LOSSES.get("none")(cfg, _ctx("mean_ce"))(_out(s_max, s_bag), None, y, torch.arange(5))
    assert set(default) == {"ce"}
    torch.testing.assert_close(default["ce"], F.cross_entropy(s_bag, y["grade"]))


def test_the_model_predicts_from_the_bag_score_under_the_paper_objective():
    from models.model import KDModel

    kind = TASK_KINDS.get("multiclass")({"grade": ("HGG", "LGG")})
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.randint(0, 256, (2, 3, 3, 24, 24), dtype=torch.uint8, generator=g),
        "instance_mask": torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool),
    }
    outs = {}
    for objective in ("mean_ce", "dsmil"):
        cfg = load_experiment("mil", [f"student.mil.objective={objective}"]).student
        torch.manual_seed(0)
        model = KDModel(cfg, kind, 0, 3, "student").eval()
        assert model.mil_objective == objective
        with torch.no_grad():
            outs[objective] = (model(batch), model.mil(batch["image"], batch["instance_mask"]))
    (mean_out, raw), (paper_out, raw2) = outs["mean_ce"], outs["dsmil"]
    torch.testing.assert_close(raw.logits, raw2.logits)  # the same network and weights
    torch.testing.assert_close(mean_out.logits["grade"], raw.logits)  # (s_max + s_bag) / 2
    torch.testing.assert_close(paper_out.logits["grade"], raw.bag_logits)
    torch.testing.assert_close(paper_out.max_logits["grade"], raw.max_logits)


def test_the_default_keeps_config_hashes_and_the_paper_objective_needs_ce():
    base = load_experiment("mil")
    assert base.student.mil.objective == "mean_ce"
    assert config_hash(load_experiment("mil", ["student.mil.objective=mean_ce"])) == config_hash(base)
    assert config_hash(load_experiment("mil", ["student.mil.objective=dsmil"])) != config_hash(base)
    with pytest.raises(
        ConfigError, match=r"loss.label_loss: student.mil.objective dsmil .* expected label_loss ce"
    ):
        load_experiment("mil", ["student.mil.objective=dsmil", "loss.label_loss=focal"])
    with pytest.raises(ConfigError, match="mil.objective"):
        load_experiment("mil", ["student.mil.objective=bce"])


def test_reports_say_which_objective_each_configuration_trained_with():
    import pandas as pd

    from reports.groups import Folds, Group
    from reports.studies.mil.objective import objective_line, run_objective

    def model(key: str, *runs: dict) -> Folds:
        frame = pd.DataFrame([{"run_id": f"{key}{i}", **r} for i, r in enumerate(runs)])
        return Folds(key, [Group(key, frame, phase=key, fold=0)])

    paper = {"tags.stage": "student", "tags.mil_objective": "dsmil"}
    old = {"tags.stage": "student", "params.student.mil.name": "dsmil"}  # logged before the tag
    cnn3d = {"tags.stage": "student", "params.student.mil.name": "none"}
    assert run_objective(pd.Series(paper)) == "dsmil" and run_objective(pd.Series(old)) == "mean_ce"
    assert run_objective(pd.Series(cnn3d)) is None and run_objective(pd.Series(cnn3d), "mean_ce") == "mean_ce"
    models = [
        ("A", model("a", paper)),
        ("B", model("b", old)),
        ("3-D", model("c", cnn3d)),
        ("C", model("d", paper)),
    ]
    (line, blank) = objective_line(models)
    assert blank == "" and line == (
        "DSMIL objective: A, C: DSMIL paper: 0.5 BCE(max) + 0.5 BCE(bag), predicted from the bag score "
        "(`dsmil`); B: mean of max and bag scores under the run's label loss (kdsweep's default, `mean_ce`)."
    )
    assert objective_line([("3-D", model("c", cnn3d))]) == []  # no DSMIL run: nothing to say
