"""Named loss terms never share a name: X-Lite with `label_loss: focal` keeps its (1 - alpha)
label term (`label_focal`) beside its lambda focal term (`focal`), and a collision is an error."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from core.schema import LossConfig
from losses import LOSSES, LossContext
from losses.composed import TermSpec
from losses.multilabel_terms import multilabel_kd
from losses.xlite_kd import XLiteKD
from models.outputs import ModelOutput
from pipeline.config.loader import parse
from pipeline.training.train import train_epoch
from tasks import TASK_KINDS

LABELS = ("Atelectasis", "Effusion", "Hernia", "Mass")
KIND = TASK_KINDS.get("multilabel")({"findings": LABELS})


def _ctx(y: torch.Tensor) -> LossContext:
    counts = {"findings": KIND.label_counts("findings", y)}
    return LossContext(("findings",), {"findings": len(LABELS)}, counts, 8, 8, len(y), KIND)


def _cfg(**kw) -> LossConfig:
    return parse(LossConfig, {"name": "xlite_kd", "label_loss": "focal", **kw})


def _out(z: torch.Tensor) -> ModelOutput:
    return ModelOutput(logits={"findings": z}, image=None, text=None, fused=torch.zeros(len(z), 8))


def test_xlite_with_focal_labels_keeps_both_terms():
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(12, len(LABELS), generator=g) < 0.4).float()
    z, zt = torch.randn(12, len(LABELS), generator=g), torch.randn(12, len(LABELS), generator=g)
    alpha, temp, lam, gamma, xa = 0.6, 3.0, 0.4, 1.5, 0.7
    cfg = _cfg(
        alpha=alpha, temperature=temp, focal_gamma=gamma, params={"focal_weight": lam, "focal_alpha": xa}
    )
    terms = LOSSES.get("xlite_kd")(cfg, _ctx(y))(_out(z), _out(zt), {"findings": y}, torch.arange(12))
    assert set(terms) == {"label_focal", "kd", "focal"}
    # by hand (torchvision's sigmoid focal loss): the label term at the kind's alpha 0.25, the
    # X-Lite term at focal_alpha; both at focal_gamma
    label = torchvision.ops.sigmoid_focal_loss(z, y, alpha=0.25, gamma=gamma, reduction="mean")
    xlite = torchvision.ops.sigmoid_focal_loss(z, y, alpha=xa, gamma=gamma, reduction="mean")
    kd = multilabel_kd(z, zt, temp)
    torch.testing.assert_close(terms["label_focal"], (1 - alpha) * label)
    torch.testing.assert_close(terms["focal"], lam * xlite)
    torch.testing.assert_close(sum(terms.values()), (1 - alpha) * label + alpha * kd + lam * xlite)


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, len(LABELS))

    def forward(self, batch: dict) -> ModelOutput:
        return _out(self.head(batch["x"]))


def test_both_focal_terms_are_logged_under_their_own_names():
    torch.manual_seed(0)
    y = (torch.rand(8, len(LABELS)) < 0.5).float()
    batch = {"x": torch.randn(8, 3), "labels": {"findings": y}, "index": torch.arange(8)}
    model = _Linear()
    loss_fn = LOSSES.get("xlite_kd")(_cfg(params={"focal_weight": 0.5}), _ctx(y))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the logged terms are of these weights
    with torch.no_grad():
        want = loss_fn(model(batch), None, batch["labels"], batch["index"])  # no teacher: no kd
    sums, n = train_epoch(model, loss_fn, opt, [batch], torch.device("cpu"), list(model.parameters()))
    assert set(sums) == {"label_focal", "focal", "loss"} and n == 8
    assert sums["label_focal"] / n == pytest.approx(float(want["label_focal"]), rel=1e-6)
    assert sums["focal"] / n == pytest.approx(float(want["focal"]), rel=1e-6)
    assert sums["label_focal"] != pytest.approx(sums["focal"])


def test_a_term_name_used_twice_fails_when_the_loss_is_built():
    """Names are known when the loss is built (its term list), so a clash never overwrites."""

    class Clashing(XLiteKD):
        def term_list(self):
            return [*super().term_list(), TermSpec(term="focal", name="label_focal")]

    y = torch.zeros(4, len(LABELS))
    with pytest.raises(
        ValueError, match=r"^loss xlite_kd: two terms named 'label_focal' \(give one a `name`\)$"
    ):
        Clashing(_cfg(), _ctx(y))
    XLiteKD(_cfg(), _ctx(y))  # the shipped loss builds
